"""The static web page (core.export.web_page, web/page) and the Node example (web/classify_csv.mjs): the exported text
file scored by onnxruntime-web, in Chromium from a plain static server and under Node, against the Predictor."""

import contextlib
import csv
import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from core.cli import main
from core.data.load import read_reviews
from core.export.model_file import STEPS_SWITCH_NAME, session_options
from core.export.passes.text_front import TEXT_INPUT_NAME
from core.export.web_page import BUNDLE_FILES, WEB_DIR, WebPageError, runtime_folder, write_web_page
from core.paths import DEFAULT_MODEL
from core.scoring.files import predict_csv
from core.scoring.predictor import Predictor
from core.scoring.explanation import baseline, trajectory
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, ROOT

NODE_EXAMPLE = WEB_DIR / "classify_csv.mjs"
ARTIFACTS = ROOT / "test-artifacts"
TOLERANCE = 1e-5  # |onnxruntime-web - onnxruntime|: two builds of the same kernels
# Made-up reviews (never IMDB's) with what a CSV can hold: commas, quotes, line breaks, empty and blank rows.
MADE_UP_ROWS = [
    ["1", "A wonderful, moving film: I loved it."],
    ["2", 'The "best" film of the year? Boring,\nwooden and far too long.'],
    ["3", ""],
    ["4", "   "],
    ["5", "!!! ??? 🙂"],
    ["6", "zzqx wwvq"],
    ["7", " ".join(["great acting and a dull plot"] * 120)],
]


@pytest.fixture(scope="module")
def page_folder(tmp_path_factory) -> Path:
    return write_web_page(DEFAULT_MODEL, tmp_path_factory.mktemp("web") / "page").folder


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_file(DEFAULT_MODEL)


def _made_up_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "Review"])
        writer.writerows(MADE_UP_ROWS[:3])
        file.write("\r\n")  # a blank line: a row number, no record
        writer.writerows(MADE_UP_ROWS[3:])
    return path


def _node(*args: str, cwd: Path = WEB_DIR) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "Node.js is missing: the web page tests need node and npm (make web)"
    return subprocess.run([node, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _python_records(predictor: Predictor, path: Path) -> list[dict]:
    return [prediction.to_dict() for prediction in predict_csv(predictor, path)]


def _assert_same_records(node_records: list[dict], python_records: list[dict]) -> None:
    """Rows, counts, errors and labels the same; scores within TOLERANCE (a label may differ only at the threshold)."""
    assert [record["row"] for record in node_records] == [record["row"] for record in python_records]
    for ours, theirs in zip(node_records, python_records):
        assert set(ours) == set(theirs), (ours, theirs)
        for key in ("tokens", "unknown_tokens", "truncated", "error"):
            assert ours.get(key) == theirs.get(key), (key, ours, theirs)
        if theirs["score"] is None:
            assert ours["score"] is None and ours["label"] is None
            continue
        assert abs(ours["score"] - theirs["score"]) <= TOLERANCE, (ours, theirs)
        assert ours["label"] == theirs["label"] or abs(theirs["score"] - 0.5) <= TOLERANCE


def test_the_page_folder_holds_the_page_the_runtime_and_a_text_file_whose_switch_is_required(page_folder, predictor):
    assert sorted(path.name for path in page_folder.iterdir()) == sorted(BUNDLE_FILES)
    _, version = runtime_folder()
    assert json.loads((WEB_DIR / "package.json").read_text())["dependencies"]["onnxruntime-web"] == version
    model = onnx.load(page_folder / "model.text.onnx")
    onnx.checker.check_model(model, full_check=True)
    # onnxruntime-web feeds only inputs without a default: the page's copy has no default for the steps switch.
    assert STEPS_SWITCH_NAME in {value.name for value in model.graph.input}
    assert STEPS_SWITCH_NAME not in {tensor.name for tensor in model.graph.initializer}
    assert {prop.key: prop.value for prop in model.metadata_props}["threshold"] == str(predictor.metadata.threshold)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    assert {value.name for value in session.get_inputs()} == {TEXT_INPUT_NAME, STEPS_SWITCH_NAME}
    text = "A wonderful, moving film: I loved it."
    probability, steps = session.run(
        ["probability", "step_probability"],
        {TEXT_INPUT_NAME: np.array([text], dtype=object), STEPS_SWITCH_NAME: np.array(True)},
    )
    assert abs(float(probability[0, 0]) - predictor.predict(text)[0].score) <= TOLERANCE
    words, expected = trajectory(predictor, text)
    np.testing.assert_allclose(steps[0, -len(words) :], expected, rtol=0, atol=TOLERANCE)


def test_a_page_replaces_a_page_but_never_other_files(page_folder, tmp_path):
    again = write_web_page(DEFAULT_MODEL, page_folder)
    assert again.folder == page_folder and not [p for p in page_folder.iterdir() if p.name.startswith(".web-page")]
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(WebPageError, match="holds other files \\(notes.txt\\)"):
        write_web_page(DEFAULT_MODEL, tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(WebPageError, match="is a file"):
        write_web_page(DEFAULT_MODEL, tmp_path / "notes.txt")


def test_without_npm_the_page_says_in_one_line_to_run_make_web(tmp_path, capsys):
    shutil.copytree(WEB_DIR / "page", tmp_path / "web" / "page")
    shutil.copy(WEB_DIR / "package.json", tmp_path / "web" / "package.json")
    with pytest.raises(WebPageError, match="needs onnxruntime-web 1\\.30\\.0 in .*: run `make web`") as error:
        write_web_page(DEFAULT_MODEL, tmp_path / "page", web_dir=tmp_path / "web")
    assert "\n" not in str(error.value) and not (tmp_path / "page").exists()


def test_the_cli_writes_the_page_and_prints_its_folder_last(tmp_path, capsys):
    assert main(["web-page", "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == str(tmp_path / "site") and "onnxruntime-web 1.30.0" in out[0]
    assert (tmp_path / "site" / "index.html").is_file()
    assert main(["web-page", "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no model file at {tmp_path / 'none.onnx'}"


def test_the_node_example_writes_the_lines_python_writes_for_a_made_up_csv(predictor, tmp_path):
    path = _made_up_csv(tmp_path / "reviews.csv")
    done = _node(str(NODE_EXAMPLE), str(ROOT / "models" / "imdb_simplernn.text.onnx"), str(path))
    assert done.returncode == 0, done.stderr
    node_records = [json.loads(line) for line in done.stdout.splitlines()]
    expected = _python_records(predictor, path)
    assert [record["row"] for record in expected] == [1, 2, 3, 5, 6, 7, 8]  # the blank line is row 4
    _assert_same_records(node_records, expected)
    assert done.stderr.strip() == '2 of 7 rows had no review text (an "error" line each)'
    # Python's separators, so the lines read alike; the values parse the same.
    assert done.stdout.splitlines()[1].startswith('{"row": 2, "label": "negative", "score": ')


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text-column", "body"], "has no column 'body'; its columns: id, Review"),
        ([], None),
    ],
)
def test_the_node_example_says_what_is_wrong_in_one_line(tmp_path, args, message):
    path = _made_up_csv(tmp_path / "reviews.csv")
    if message is None:  # the ids file: it reads ids, not text
        done = _node(str(NODE_EXAMPLE), str(DEFAULT_MODEL), str(path))
        message = "reads ids, not text: give its text file (model.text.onnx)"
    else:
        done = _node(str(NODE_EXAMPLE), str(ROOT / "models" / "imdb_simplernn.text.onnx"), str(path), *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and message in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.data
def test_the_node_example_scores_real_test_reviews_as_the_predictor_does(imdb_archive, predictor, tmp_path):
    reviews = [review.text for review in read_reviews(imdb_archive, "test")][::50]  # 500, positive and negative
    path = tmp_path / "test_reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["text"], *([text] for text in reviews)])
    done = _node(str(NODE_EXAMPLE), str(ROOT / "models" / "imdb_simplernn.text.onnx"), str(path))
    assert done.returncode == 0, done.stderr
    node_records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(node_records) == len(reviews) == 500
    _assert_same_records(node_records, _python_records(predictor, path))


# The page in Chromium, served by a plain static server on 127.0.0.1.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002: the base class's name
        pass


@contextlib.contextmanager
def _static_server(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served_page(page_folder):
    from playwright.sync_api import sync_playwright

    with _static_server(page_folder) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        context.set_default_timeout(120_000)
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_selector("body[data-ready], body[data-error]")
        assert page.get_attribute("body", "data-error") is None, page.get_attribute("body", "data-error")
        try:
            yield page, context, url, requests, errors
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)
            raise
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.data
def test_the_page_classifies_200_real_reviews_offline_as_the_predictor_does(served_page, imdb_archive, predictor):
    page, context, url, requests, errors = served_page
    reviews = [" ".join(review.text.split()) for review in read_reviews(imdb_archive, "test")][::100]  # 250
    context.set_offline(True)  # loaded once: the rest needs no network
    page.fill("#many", "\n".join(reviews))
    page.click("#classify-many")
    page.wait_for_function("document.querySelectorAll('#scores tbody tr').length === %d" % len(reviews))
    rows = page.query_selector_all("#scores tbody tr")
    scores = [float(row.get_attribute("data-score")) for row in rows]
    cells = [[cell.inner_text() for cell in row.query_selector_all("td")] for row in rows]
    expected = predictor.predict(reviews)
    assert len(scores) == len(reviews) >= 200
    worst = float(np.max(np.abs(np.array(scores) - [p.score for p in expected])))
    assert worst <= TOLERANCE
    assert [int(cell[3]) for cell in cells] == [p.tokens for p in expected]
    assert [int(cell[4]) for cell in cells] == [p.unknown_tokens for p in expected]
    labels = [(cell[1], p.label, p.score) for cell, p in zip(cells, expected)]
    assert all(ours == theirs or abs(score - 0.5) <= TOLERANCE for ours, theirs, score in labels)
    context.set_offline(False)
    assert requests and all(request.startswith(url) for request in requests), requests
    assert not errors
    load_ms = float(page.get_attribute("#status", "data-load-ms"))
    per_review_ms = float(page.get_attribute("#many-status", "data-ms-per-review"))
    ARTIFACTS.mkdir(exist_ok=True)
    timing = {"reviews": len(reviews), "page_load_ms": load_ms, "ms_per_review": per_review_ms, "max_abs_diff": worst}
    (ARTIFACTS / "web_page_timing.json").write_text(json.dumps(timing, indent=2))
    print(f"web page: {timing}")


@pytest.mark.browser
def test_one_review_shows_its_score_label_and_the_probability_after_each_word(served_page, predictor):
    page, _, url, requests, errors = served_page
    text = "A wonderful, moving film: I loved it.<br /><br />Don\u2019t miss the ending!"
    page.fill("#review", text)
    page.click("#classify")
    page.wait_for_function(
        "(text) => { const svg = document.querySelector('#chart svg'); return svg && svg.dataset.text === text; }",
        arg=text,
    )
    (expected,) = predictor.predict(text)
    assert f"{100 * expected.score:.1f}%" in page.inner_text("#result")
    assert expected.label in page.inner_text("#result strong")
    svg = page.query_selector("#chart svg")
    words, steps = trajectory(predictor, text)
    assert json.loads(svg.get_attribute("data-words")) == ["(start)", *words]
    shown = json.loads(svg.get_attribute("data-steps"))
    np.testing.assert_allclose(shown, [baseline(predictor), *steps], rtol=0, atol=TOLERANCE)
    assert len(svg.query_selector_all("circle")) == len(words) + 1
    for typed, warning in [
        ("!!! ??? \U0001f642", "No word at all"),
        ("zzqx wwvq", "knows none of these words"),
        ("   ", "this one is empty"),
    ]:
        page.fill("#review", typed)
        page.click("#classify")
        page.wait_for_function("(w) => document.querySelector('#result').textContent.includes(w)", arg=warning)
    assert all(request.startswith(url) for request in requests) and not errors
