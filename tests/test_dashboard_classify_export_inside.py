"""AppTest checks of the Classify, Export and Inside-the-RNN pages: results shown, bad input explained, nothing run as HTML."""

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import paths
from core.data.examples import EXAMPLE_REVIEWS
from core.data.text import tokenize
from tests.browser_support import APP, open_page, plotly_values, tiny_exported_run
from tests.float_checks import assert_close

# A tiny model is trained and converted once for the module: seconds, not milliseconds.
pytestmark = pytest.mark.slow

UPLOAD = "Upload an .onnx file"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return tiny_exported_run(tmp_path_factory.getbasetemp() / "tiny-dashboard-run")


@pytest.fixture()
def tiny_default(tiny_run, tmp_path, monkeypatch) -> Path:
    """The tiny run's runs folder in use, and its model.onnx standing in for the shipped default model."""
    monkeypatch.setenv("IMDB_RUNS", str(tiny_run.parent))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tiny_run / "model.onnx")
    return tiny_run


def _plain(markdown: str) -> str:
    """A message as people read it: the page escapes markdown characters in messages that quote user input."""
    return markdown.replace("\\", "")


def _metric(app: AppTest, label: str) -> str:
    return next(metric.value for metric in app.metric if metric.label == label)


def _classify(app: AppTest, text: str) -> AppTest:
    app.text_area(key="classify_review").input(text)
    app.button(key="classify_run").click().run()
    assert not app.exception, app.exception
    return app


def _no_html(app: AppTest) -> None:
    assert not app.get("html"), "no page element may render HTML"
    assert all(not markdown.proto.allow_html for markdown in [*app.markdown, *app.caption])


@pytest.mark.parametrize("page", ["classify", "export", "inside"])
def test_page_renders_without_exception(tiny_default, page):
    app = open_page(page)
    assert app.title[0].value


@pytest.mark.parametrize("page", ["classify", "export", "inside"])
def test_page_explains_when_there_is_no_model_or_run(tmp_path, monkeypatch, page):
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "no-runs"))
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "missing.onnx")
    app = open_page(page)
    assert app.info, "an empty runs folder gets a friendly note"


def test_classify_an_example_in_one_click(tiny_default):
    app = open_page("classify")
    assert app.selectbox(key="classify_model").value == "Shipped default model"
    app.button_group(key="classify_example").set_value("Warm and funny").run()
    assert not app.exception, app.exception
    assert app.text_area(key="classify_review").value.startswith("I went in expecting nothing")
    probability = _metric(app, "Positive probability")
    assert probability.endswith("%") and 0.0 <= float(probability[:-1]) <= 100.0
    assert _metric(app, "Label") in ("negative", "positive")
    assert _metric(app, "Latency").endswith(" ms")
    assert int(_metric(app, "Tokens used")) == len(tokenize(EXAMPLE_REVIEWS[0][1]))
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    steps = plotly_values(figure["data"][0]["y"])
    assert len(steps) == len(tokenize(EXAMPLE_REVIEWS[0][1])), "one point a word on the sentiment-over-time chart"
    assert steps[-1] == pytest.approx(float(probability[:-1]) / 100, abs=0.0006), "the last step is the prediction"
    _no_html(app)


def test_the_review_and_its_button_are_one_form_so_a_click_is_one_rerun(tiny_default):
    """Outside a form a text area sends its text when it loses focus, and a browser's type-then-click cost two reruns;
    in one the text goes with the click (bench/load_test.py measures the browsers)."""
    app = open_page("classify")
    form = app.text_area(key="classify_review").proto.form_id
    assert form and app.button(key="classify_run").proto.form_id == form
    assert app.button(key="classify_run").proto.is_form_submitter


def test_classify_separates_the_made_up_signal(tiny_default):
    app = open_page("classify")
    positive = float(_metric(_classify(app, "superb wonderful great loved brilliant"), "Positive probability")[:-1])
    negative = float(_metric(_classify(app, "awful boring terrible waste dull"), "Positive probability")[:-1])
    assert positive > 50.0 > negative


def test_classify_with_the_shipped_default_model(tmp_path, monkeypatch):
    if not paths.DEFAULT_MODEL.is_file():
        pytest.fail(f"{paths.DEFAULT_MODEL} is missing: the default model is shipped with the project (make default-model)")
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))
    app = open_page("classify")
    assert app.selectbox(key="classify_model").value == "Shipped default model"
    app.button_group(key="classify_example").set_value("Warm and funny").run()
    assert _metric(app, "Label") == "positive"
    app.button_group(key="classify_example").set_value("A waste of two hours").run()
    assert _metric(app, "Label") == "negative"


def test_empty_review_gets_a_message_not_an_exception(tiny_default):
    app = open_page("classify")
    for text in ("", "   \n\t "):
        _classify(app, text)
        assert [warning.value for warning in app.warning] == [
            "The review is empty: type or paste some text, or pick an example above."
        ]
        assert not [metric for metric in app.metric if metric.label == "Positive probability"]
    _classify(app, "great")
    assert _metric(app, "Label") in ("negative", "positive"), "the page keeps working after the message"


def test_script_tags_are_shown_as_text_never_run(tiny_default):
    app = open_page("classify")
    review = "<script>alert('owned')</script><b>great</b> <img src=x onerror=alert(1)> movie"
    _classify(app, review)
    assert app.text_area(key="classify_review").value == review
    assert _metric(app, "Tokens used") == str(len(tokenize(review)))
    _no_html(app)
    words = app.markdown[-1].value
    assert "<" not in words.replace("\\<", "") and "script" in words


def test_long_unknown_emoji_and_control_character_reviews(tiny_default):
    app = open_page("classify")
    _classify(app, "great movie " * 500_000)  # about 6 MB of text
    assert _metric(app, "Tokens used") == "60" and int(_metric(app, "Cut off").replace(",", "")) == 1_000_000 - 60
    # No word the model knows: no label, as for an empty review (the score would be the prior, or <unk>'s alone).
    _classify(app, "zyxwv qqqqq blorft")
    assert any("None of the review's words" in warning.value for warning in app.warning)
    assert not [metric for metric in app.metric if metric.label == "Label"]
    _classify(app, "😀🎬🍿 !!! ???")
    assert any("holds no words" in warning.value for warning in app.warning)
    assert not [metric for metric in app.metric if metric.label == "Label"]
    _classify(app, "gr\x00eat\x07 \x1b[31mmovie\r\n\u202e, a great movie")
    assert _metric(app, "Label") in ("negative", "positive")
    _classify(app, "Très bien! 素晴らしい映画 великолепно, a great movie")
    assert _metric(app, "Label") in ("negative", "positive")
    _no_html(app)


def _no_metadata_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _external_data_model(tiny_run: Path) -> bytes:
    import onnx
    from onnx import TensorProto

    model = onnx.load(tiny_run / "model.onnx")
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    return model.SerializeToString()


def test_bad_model_uploads_get_one_clear_message(tiny_default):
    app = open_page("classify")
    app.selectbox(key="classify_model").set_value(UPLOAD).run()
    assert not app.exception and not app.error, "no message before a file is given"
    cases = [
        (b"this is not a model at all", "is not an ONNX"),
        (bytes(range(256)) * 40, "ONNX"),
        (_no_metadata_model(), "not one exported by this project"),
        (_external_data_model(tiny_default), "external data"),
    ]
    for data, expected in cases:
        app.file_uploader(key="classify_model_upload").set_value(("model.onnx", data, "application/octet-stream")).run()
        assert not app.exception, app.exception
        assert len(app.error) == 1 and expected in _plain(app.error[0].value), [error.value for error in app.error]
        assert "uploads" not in app.error[0].value, "the server-side path of the upload is not shown"
    good = (tiny_default / "model.onnx").read_bytes()
    app.file_uploader(key="classify_model_upload").set_value(("mine.onnx", good, "application/octet-stream")).run()
    assert not app.error
    _classify(app, "great superb")
    assert _metric(app, "Label") in ("negative", "positive")


def _upload_csv(app: AppTest, data: bytes, name: str = "reviews.csv") -> AppTest:
    app.file_uploader(key="classify_csv").set_value((name, data, "text/csv")).run()
    app.button(key="classify_csv_run").click().run()
    assert not app.exception, app.exception
    return app


def test_batch_csv_table_and_download(tiny_default):
    app = open_page("classify")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "review"])
    writer.writerows([[1, "great superb wonderful"], [2, "awful boring"], [3, "   "], [4, "<script>x</script> loved it"]])
    _upload_csv(app, buffer.getvalue().encode("utf-8"))
    table = app.dataframe[0].value
    assert list(table["row"]) == [1, 2, 3, 4]
    assert table["label"].isna().tolist() == [False, False, True, False]
    assert table["error"].tolist()[2] == "review is empty"
    assert _plain(app.success[0].value).startswith("4 reviews from reviews.csv: ")
    assert app.get("download_button")[0].proto.label == "Download predictions as CSV"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"title,stars\nnice,5\n", "no text or review column"),
        (b"", "is empty"),
        (b"text\n\xff\xfe\xfa bad bytes\n", "not UTF-8"),
        (bytes(range(256)) * 20, "UTF-8"),
        (b"[click me](http://example.invalid),**stars**\nnice,5\n", "no text or review column"),
    ],
)
def test_bad_csvs_get_one_clear_message(tiny_default, data, expected):
    app = open_page("classify")
    _upload_csv(app, data, "mine.csv")
    message = _plain(app.error[0].value)
    assert len(app.error) == 1 and expected in message, [error.value for error in app.error]
    assert "uploads" not in message and "mine.csv" in message
    if b"[click me]" in data:
        assert "\\[click me\\]" in app.error[0].value and "\\*\\*stars" in app.error[0].value, "no link, no bold"
    assert not app.dataframe
    _classify(app, "great")
    assert _metric(app, "Label") in ("negative", "positive"), "the page keeps working"


def test_csv_with_a_header_and_no_rows_gets_a_warning(tiny_default):
    app = _upload_csv(open_page("classify"), b"text,label\n\n", "header-only.csv")
    assert [_plain(warning.value) for warning in app.warning] == ["header-only.csv has a header but no reviews."]
    assert not app.dataframe and not app.error


def _parquet_upload(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, row_group_size=2)
    return buffer.getvalue()


def test_batch_parquet_upload_scores_like_the_predictor_and_downloads_both_formats(tiny_default):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.scoring.predictor import Predictor

    texts = ["great superb wonderful", "awful boring", None, "loved it", "dull plot"]
    app = open_page("classify")
    app.file_uploader(key="classify_csv").set_value(
        ("mine.parquet", _parquet_upload({"id": list(range(5)), "text": texts}), "application/octet-stream")
    ).run()
    app.button(key="classify_csv_run").click().run()
    assert not app.exception and not app.error, [error.value for error in app.error]
    table = app.dataframe[0].value
    assert list(table["row"]) == [1, 2, 3, 4, 5] and table["error"].tolist()[2] == "review is empty"
    present = [text for text in texts if text]
    expected = [item.score for item in Predictor.from_file(tiny_default / "model.onnx").predict(present)]
    assert_close(table["score"].dropna().tolist(), expected)  # the page's batches and one call: float32 rounding
    assert _plain(app.success[0].value).startswith("5 reviews from mine.parquet: ")
    buttons = {button.proto.label: button for button in app.get("download_button")}
    assert set(buttons) == {"Download predictions as CSV", "Download predictions as Parquet"}
    # The Parquet download is the file the CLI writes: typed columns, rows in order.
    assert buttons["Download predictions as Parquet"].proto.url, "the download has data"
    from core.scoring.table_io import output_schema

    batch = app.session_state["classify_batch"]
    downloaded = pq.read_table(io.BytesIO(batch["parquet"]))
    assert downloaded.schema == output_schema()
    scores = [score for score in downloaded.column("score").to_pylist() if score is not None]
    assert scores == table["score"].dropna().tolist(), "the table's scores, exactly"
    assert pa.Table.from_pandas(table, preserve_index=False).num_rows == 5


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PAR1 this is not a parquet file at all", "not a readable Parquet file"),
        ("title", "no text or review column"),
        ("numbers", "not text"),
    ],
)
def test_bad_parquet_uploads_get_one_clear_message(tiny_default, data, expected):
    if data == "title":
        data = _parquet_upload({"title": ["nice"], "stars": [5]})
    elif data == "numbers":
        data = _parquet_upload({"text": [1, 2]})
    app = open_page("classify")
    app.file_uploader(key="classify_csv").set_value(("mine.parquet", data, "application/octet-stream")).run()
    app.button(key="classify_csv_run").click().run()
    assert not app.exception, app.exception
    message = _plain(app.error[0].value)
    assert len(app.error) == 1 and expected in message and "mine.parquet" in message and "uploads" not in message
    assert not app.dataframe
    _classify(app, "great")
    assert _metric(app, "Label") in ("negative", "positive"), "the page keeps working"


def test_a_csv_upload_offers_the_csv_download_only(tiny_default):
    app = _upload_csv(open_page("classify"), b"text\ngreat\n")
    assert [button.proto.label for button in app.get("download_button")] == ["Download predictions as CSV"]


def test_export_shows_native_ops_parity_and_downloads(tiny_default):
    app = open_page("export")
    app.toggle(key="export_trajectory").set_value(True)
    app.button(key="export_start").click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    assert "Exported in" in app.success[0].value
    assert _metric(app, "Native recurrent ops") == "1 RNN"
    message = app.success[0].value
    whole, converting = (float(value) for value in re.findall(r"([0-9.]+) s", message)[:2])
    assert converting <= whole and "the rest loading TensorFlow" in message
    captions = [caption.value for caption in app.caption]
    assert any(re.match(r"Nodes as the graph holds them, \d+ RNN nodes for 1 layer: an If", text) for text in captions)
    assert _metric(app, "Generic loop nodes") == "0"
    assert float(_metric(app, "Parity (max difference)")) <= 1e-5
    labels = [button.proto.label for button in app.get("download_button")]
    assert sorted(labels) == [
        "Download model.onnx",
        "Download model.text.onnx (raw reviews in)",
        "Download the run as a zip",
    ]
    metadata = next(frame.value for frame in app.dataframe if "key" in frame.value.columns)
    keys = set(metadata["key"])
    assert {"vocabulary", "sequence_length", "normalization", "threshold", "parity_max_abs_diff"} <= keys
    # The HTTP API's commands name this run's file and the run as the model (tests/test_serving.py runs them).
    serve = next(block.value for block in app.code if "make serve" in block.value)
    assert f"/{tiny_default.name}/model.onnx NAME={tiny_default.name} " in serve
    assert f"/v2/models/{tiny_default.name}/infer" in serve


def test_run_zip_holds_config_history_csv_and_both_models(tiny_default):
    from dashboard.resources import run_archive

    with zipfile.ZipFile(io.BytesIO(run_archive(tiny_default))) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        history = list(csv.reader(io.StringIO(archive.read(f"{tiny_default.name}/history.csv").decode())))
    assert {"config.json", "vocab.json", "history.csv", "model.keras", "model.onnx"} <= names
    assert history[0][:3] == ["epoch", "loss", "accuracy"] and len(history) == 5


def test_inside_moves_through_steps_and_matches_keras_and_onnxruntime(tiny_default):
    app = open_page("inside")
    app.selectbox(key="inside_review").set_value("My own review").run()
    app.text_area(key="inside_review_text").input("the plot was great and moving").run()
    assert _metric(app, "Token at this step") == "moving", "a new review starts at its last step"
    app.slider(key="inside_step").set_value(2).run()
    assert not app.exception
    assert _metric(app, "Token at this step") == "the"
    # Two NumPy expressions of one state: equal within rounding (rounding both to 4 places could split them).
    assert_close(app.dataframe[0].value["tanh(sum)"], app.dataframe[0].value["state_t (loop)"])
    app.button(key="inside_compare").click().run()
    assert not app.exception, app.exception
    table = app.dataframe[-1].value
    assert table["implementation"].tolist() == ["NumPy (this page)", "Keras", "onnxruntime"]
    assert float(_metric(app, "Largest difference")) <= 1e-5
    per_word = next(caption.value for caption in app.caption if "step_probability" in caption.value)
    assert float(per_word.rstrip(".").rsplit(" ", 1)[1]) <= 1e-5


def test_inside_own_review_and_empty_review(tiny_default):
    app = open_page("inside")
    app.selectbox(key="inside_review").set_value("My own review").run()
    assert app.info and not app.exception
    app.text_area(key="inside_review_text").input("great").run()
    assert _metric(app, "Token at this step") == "great"


def test_numpy_weights_read_without_tensorflow_match_keras(tiny_default):
    import keras

    from core.model.keras_archive import read_model_weights
    from core.model.numpy_loop import extract_weights, run_reference

    ids = np.random.default_rng(0).integers(0, 200, size=(4, 60))
    mine = run_reference(read_model_weights(tiny_default / "model.keras"), ids)
    theirs = run_reference(extract_weights(keras.models.load_model(tiny_default / "model.keras", compile=False)), ids)
    np.testing.assert_array_equal(mine.probability, theirs.probability)
    np.testing.assert_array_equal(mine.states[0], theirs.states[0])


def test_classify_page_never_imports_tensorflow(tiny_run, tmp_path):
    script = f"""
import sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file({str(APP)!r}, default_timeout=60).run()
app.text_area(key="classify_review").input("a great superb film")
app.button(key="classify_run").click().run()
assert not app.exception, app.exception
assert [metric.value for metric in app.metric if metric.label == "Positive probability"], "no result"
print(sorted(name for name in ("tensorflow", "keras", "tf2onnx") if name in sys.modules))
"""
    environment = {**os.environ, "IMDB_RUNS": str(tiny_run.parent), "IMDB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment, cwd=APP.parent.parent
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_uploaded_model_with_an_endless_loop_costs_one_time_limit_and_the_page_goes_on(tiny_default, monkeypatch):
    import time

    from core.scoring import run_guard
    from tests.hand_built_file import endless_loop_model

    monkeypatch.setattr(run_guard.WATCH, "seconds", 1.0)  # the same guard, a tenth of its time limit
    app = open_page("classify")
    app.selectbox(key="classify_model").set_value(UPLOAD).run()
    hostile = endless_loop_model().SerializeToString()
    app.file_uploader(key="classify_model_upload").set_value(("loop.onnx", hostile, "application/octet-stream")).run()
    started = time.perf_counter()
    _classify(app, "great superb")
    first = time.perf_counter() - started
    assert [_plain(error.value) for error in app.error][-1].endswith("a run took more than 1 s and was stopped; "
                                                                       "this file cannot be used")
    started = time.perf_counter()
    _classify(app, "a second review")  # the same file: refused at once
    assert time.perf_counter() - started < first and "was stopped" in _plain(app.error[-1].value)
    app.selectbox(key="classify_model").set_value(next(iter(app.selectbox(key="classify_model").options))).run()
    _classify(app, "great superb")  # another model: the page works
    assert _metric(app, "Label") in ("negative", "positive")
