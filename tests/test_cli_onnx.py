"""The ONNX commands of `python -m core`: export, predict, evaluate --model, bench; JSON shapes and exit codes."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from core import paths
from core.cli import main
from core.data.examples import EXAMPLE_REVIEWS
from core.scoring.predictor import Predictor
from tests.hand_built_file import build_model as build_tiny_model  # a hand-built file: no TensorFlow needed
from tests.small_inputs import KERAS_RUN_CONFIG, write_keras_run

PREDICTION_KEYS = {"label", "score", "tokens", "unknown_tokens", "truncated"}
def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One run exported through the CLI: (run folder, the export command's stdout, its exit status)."""
    run_dir = write_keras_run(tmp_path_factory.mktemp("runs") / "run-1")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("IMDB_DATA", raising=False)  # parity on the example reviews: no archive tokenizing here
        status = main(["export", str(run_dir), "--trajectory"])
    return run_dir, status


@pytest.mark.slow
def test_export_writes_the_file_and_prints_its_path_last(exported, capsys, monkeypatch, tmp_path):
    run_dir, status = exported
    assert status == 0 and (run_dir / "model.onnx").is_file()
    monkeypatch.delenv("IMDB_DATA", raising=False)
    out = tmp_path / "copy.onnx"
    status, stdout, stderr = _run(["export", str(run_dir), "--out", str(out)], capsys)
    lines = stdout.strip().splitlines()
    assert status == 0 and lines[-1] == str(out) and out.is_file()
    # Which stage it is in, on stderr as each starts; stdout keeps the results alone.
    stages = [line for line in stderr.splitlines() if line.startswith("export: ")]
    assert [stage.split()[1] for stage in stages] == ["loading", "reading", "converting", "checking", "making"], stderr
    assert not any(line.startswith("export: ") for line in lines)
    assert any("1 RNN" in line for line in lines) and any("parity" in line for line in lines)
    assert any(line.startswith(f"text file (raw reviews in): {tmp_path / 'copy.text.onnx'}") for line in lines)
    assert not Predictor.from_file(out).has_trajectory and Predictor.from_run(run_dir).has_trajectory


@pytest.mark.slow
def test_export_with_web_writes_the_page_and_refuses_a_folder_in_use_before_exporting(exported, capsys, tmp_path):
    run_dir, _ = exported
    site, out = tmp_path / "site", tmp_path / "with_page.onnx"
    status, stdout, _ = _run(["export", str(run_dir), "--trajectory", "--out", str(out), "--web", str(site)], capsys)
    lines = stdout.strip().splitlines()
    assert status == 0 and lines[-1] == str(out)
    assert any(line.startswith(f"web page: {site}, ") for line in lines)
    assert (site / "index.html").is_file() and (site / "ort-wasm-simd-threaded.wasm").is_file()
    page_file = onnx.load(site / "model.text.onnx")
    assert "with_steps" in {value.name for value in page_file.graph.input}
    assert "with_steps" not in {tensor.name for tensor in page_file.graph.initializer}
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep")
    again = tmp_path / "again.onnx"
    status, stdout, stderr = _run(["export", str(run_dir), "--out", str(again), "--web", str(tmp_path / "used")], capsys)
    assert status == 2 and "holds other files (mine.txt)" in stderr and not again.exists()


@pytest.mark.slow
def test_predict_prints_one_json_line_a_review_in_input_order(exported, capsys):
    run_dir, _ = exported
    model = str(run_dir / "model.onnx")
    texts = [text for _, text in EXAMPLE_REVIEWS[:5]]
    status, stdout, _ = _run(["predict", "--model", model, *texts], capsys)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert status == 0 and len(lines) == 5
    assert all(set(line) == PREDICTION_KEYS for line in lines)
    expected = Predictor.from_file(model).predict(texts)
    assert [line["score"] for line in lines] == pytest.approx([p.score for p in expected], abs=1e-6)
    assert [line["label"] for line in lines] == [p.label for p in expected]


@pytest.mark.slow
def test_predict_a_csv_to_a_file_keeps_row_order_and_flags_empty_rows(exported, capsys, tmp_path):
    run_dir, _ = exported
    reviews = tmp_path / "reviews.csv"
    with reviews.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "comment"])
        for index in range(30):
            writer.writerow([index, "" if index == 4 else f"{EXAMPLE_REVIEWS[index % 12][1]} ({index})"])
    out = tmp_path / "out" / "predictions.jsonl"
    argv = ["predict", "--model", str(run_dir / "model.onnx"), "--csv", str(reviews), "--text-column", "comment"]
    status, stdout, stderr = _run([*argv, "--out", str(out)], capsys)
    assert status == 0 and stdout.strip() == str(out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"] for line in lines] == list(range(1, 31))
    assert lines[4]["error"] == "review is empty" and lines[4]["score"] is None
    assert all(set(line) == PREDICTION_KEYS | {"row"} for index, line in enumerate(lines) if index != 4)
    assert "1 of 30 rows" in stderr


@pytest.mark.slow
def test_evaluate_model_reports_accuracy_loss_and_count_on_the_test_split(exported, capsys, tmp_path, monkeypatch):
    run_dir, _ = exported
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "labelled.csv"
    rows = [(f"{text} {title}", index % 2, "test" if index >= 8 else "train") for index, (title, text) in
            enumerate(EXAMPLE_REVIEWS * 2)]
    with data.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label", "split"])
        writer.writerows(rows)
    model = str(run_dir / "model.onnx")
    status, stdout, _ = _run(["evaluate", "--model", model, "--data", str(data), "--json"], capsys)
    result = json.loads(stdout)
    assert status == 0 and set(result) == {"accuracy", "loss", "n"}
    test = [(text, label) for text, label, split in rows if split == "test"]
    assert result["n"] == len(test)
    predictions = Predictor.from_file(model).predict([text for text, _ in test])
    expected = np.mean([(p.label == "positive") == bool(label) for p, (_, label) in zip(predictions, test)])
    assert result["accuracy"] == pytest.approx(expected)
    scores = np.clip([p.score for p in predictions], 1e-7, 1 - 1e-7)
    labels = np.array([label for _, label in test])
    cross_entropy = -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    assert result["loss"] == pytest.approx(cross_entropy, abs=1e-5)


@pytest.mark.slow
def test_bench_json_has_the_documented_shape(exported, capsys):
    run_dir, _ = exported
    status, stdout, _ = _run(["bench", "--model", str(run_dir / "model.onnx"), "--json"], capsys)
    result = json.loads(stdout)
    implementations = {"keras_predict", "keras_function", "onnx_loop", "onnx_native", "numpy"}
    assert status == 0
    assert set(result) == {"single_review_ms", "batch_reviews_per_s", "batch_size", "sequence_length"}
    assert set(result["single_review_ms"]) == implementations == set(result["batch_reviews_per_s"])
    assert all(value > 0 for value in [*result["single_review_ms"].values(), *result["batch_reviews_per_s"].values()])
    assert (result["batch_size"], result["sequence_length"]) == (1024, KERAS_RUN_CONFIG.sequence_length)


@pytest.mark.slow
def test_an_empty_review_argument_exits_2_with_one_line(exported, capsys):
    run_dir, _ = exported
    status, stdout, stderr = _run(["predict", "--model", str(run_dir / "model.onnx"), "good", "  "], capsys)
    assert (status, stdout) == (2, "")
    assert stderr == "error: review 2 is empty\n"


def test_without_a_shipped_model_predict_says_how_to_make_one(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "models" / "imdb_simplernn.onnx")
    for argv in (["predict", "a fine film"], ["bench"]):
        status, _, stderr = _run(argv, capsys)
        assert status == 2
        assert stderr.startswith("error: no model at ") and "python -m core export RUN_DIR" in stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "--model", "{bad}"], "give at least one review"),
        (["predict", "--model", "{bad}", "text", "--csv", "x.csv"], "not both"),
        (["predict", "--model", "{bad}", "text", "--text-column", "body"], "--text-column only applies"),
        (["predict", "--model", "{bad}", "--csv", "{missing}"], "no CSV file"),
        (["predict", "--model", "{bad}", "a review"], "is not an ONNX file"),
        (["predict", "--model", "{missing}", "a review"], "no model file"),
        (["bench", "--model", "{bad}"], "is not an ONNX file"),
        (["evaluate", "--model", "{bad}"], "is not an ONNX file"),
        (["evaluate", "somerun", "--model", "{bad}"], "not both"),
        (["export", "{missing}"], "no run folder"),
    ],
)
def test_user_mistakes_exit_2_with_one_error_line(argv, message, capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    argv = [item.format(bad=bad, missing=tmp_path / "missing") for item in argv]
    status, stdout, stderr = _run(argv, capsys)
    assert status == 2 and stdout == ""
    assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    import onnx

    path = tmp_path / "tiny.onnx"
    onnx.save(build_tiny_model(), path)
    return path


def test_predict_csv_mistakes_and_out_file_permissions(tiny_model, capsys, tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("review\ngood movie\nbad plot\n")
    out = tmp_path / "out" / "predictions.jsonl"
    model = str(tiny_model)
    for argv, message in [
        (["--csv", str(tmp_path)], "is a folder, not a CSV file"),
        (["--csv", str(header_only), "--out", str(out)], "has a header but no rows"),
        (["--csv", str(reviews), "--out", str(tmp_path)], "is a folder: give the path of the file to write"),
        (["--csv", str(reviews), "--text-column", "body"], "has no column 'body'"),
        (["--csv", str(reviews), "--out", f"{tmp_path / 'new'}/"], "names a folder: give the path of the file"),
    ]:
        status, stdout, stderr = _run(["predict", "--model", model, *argv], capsys)
        assert status == 2 and stdout == "" and stderr.count("\n") == 1 and message in stderr, stderr
    assert not out.exists() and not list(out.parent.glob(".*"))  # no file, no temporary left behind
    assert not (tmp_path / "new").exists()  # a trailing slash is a folder, not a file named "new"

    status, stdout, _ = _run(["predict", "--model", model, "--csv", str(reviews), "--out", str(out)], capsys)
    assert status == 0 and stdout.strip() == str(out)
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == [1, 2]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temporary file


def test_export_out_with_a_trailing_slash_is_a_folder_not_a_file_name(capsys, tmp_path):
    status, stdout, stderr = _run(["export", str(tmp_path), "--out", f"{tmp_path / 'models'}/"], capsys)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1 and "names a folder" in stderr, stderr
    assert not (tmp_path / "models").exists()


def test_export_of_a_file_says_it_is_not_a_run_folder(capsys, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not a run")
    status, stdout, stderr = _run(["export", str(model)], capsys)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1, stderr
    assert f"{model} is a file, not a run folder" in stderr


def test_text_file_writes_the_raw_text_copy_of_a_file_and_predict_reads_it(capsys, tmp_path):
    out = tmp_path / "shipped.text.onnx"
    status, stdout, _ = _run(["text-file", "--out", str(out)], capsys)
    assert status == 0 and stdout.strip().splitlines()[-1] == str(out) and out.is_file()
    assert "max |text - ids file| = " in stdout
    status, stdout, _ = _run(["predict", "--model", str(out), "a moving film", "dull and long"], capsys)
    from_text = [json.loads(line) for line in stdout.splitlines()]
    status_ids, stdout_ids, _ = _run(["predict", "a moving film", "dull and long"], capsys)
    from_ids = [json.loads(line) for line in stdout_ids.splitlines()]
    assert status == status_ids == 0 and [row["label"] for row in from_text] == [row["label"] for row in from_ids]
    assert [row["score"] for row in from_text] == pytest.approx([row["score"] for row in from_ids], abs=1e-5)
    status, _, stderr = _run(["text-file", "--model", str(out), "--out", str(tmp_path / "again.onnx")], capsys)
    assert status == 2 and stderr.startswith("error: this file already reads text") and len(stderr.splitlines()) == 1
    assert not (tmp_path / "again.onnx").exists()
