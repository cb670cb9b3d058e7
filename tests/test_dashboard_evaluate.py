"""AppTest checks of the Evaluate page on a hand-built model (no TensorFlow): metrics, slider, save, mistakes."""

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn import metrics as sk
from streamlit.testing.v1 import AppTest

from core import paths
from core.scoring.predictor import Predictor
from core.data.text import tokenize
from tests.browser_support import open_page, plotly_values
from tests.hand_built_file import SEQUENCE_LENGTH, WORDS, build_model

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
RUN_LABEL = "Run run-1"


def _write_reviews(path: Path) -> Path:
    """Made-up reviews of the tiny model's words, with HTML and markdown in them; 50 train and 50 test rows."""
    generator = random.Random(11)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label", "split"])
        for index in range(100):
            words = [generator.choice(WORDS) for _ in range(generator.randint(3, 12))]
            text = " ".join(words) + " <script>alert(1)</script> **bold**<br /><br />[link](http://x.invalid)"
            writer.writerow([text, generator.randint(0, 1), "test" if index % 2 else "train"])
    return path


@pytest.fixture
def setup(tmp_path, monkeypatch) -> dict:
    """The hand-built model as the shipped default and as one exported run; made-up reviews as the data."""
    default = tmp_path / "models" / "default.onnx"
    default.parent.mkdir()
    onnx.save(build_model(), default)
    run_model = tmp_path / "runs" / "run-1" / "model.onnx"
    run_model.parent.mkdir(parents=True)
    onnx.save(build_model(), run_model)
    reviews = _write_reviews(tmp_path / "reviews.csv")
    monkeypatch.setattr(paths, "DEFAULT_MODEL", default)
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMDB_DATA", str(reviews))
    with reviews.open(encoding="utf-8") as stream:
        test = [row for row in csv.DictReader(stream) if row["split"] == "test"]
    return {"default": default, "run_model": run_model, "test": test}


def _metric(app: AppTest, label: str) -> str:
    return next(metric.value for metric in app.metric if metric.label == label)


def _figure(app: AppTest, kind: str) -> dict:
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["data"] and spec["data"][0]["type"] == kind:
            return spec
    raise AssertionError(f"no {kind} chart on the page")


def _expected(setup) -> tuple[np.ndarray, np.ndarray]:
    texts = [row["text"] for row in setup["test"]]
    labels = np.array([int(row["label"]) for row in setup["test"]])
    scores = np.array([p.score for p in Predictor.from_file(setup["default"]).predict(texts)])
    return labels, scores


def test_metrics_match_the_models_predictions_and_the_slider_moves_the_confusion_matrix(setup):
    app = open_page("evaluate")
    assert app.title[0].value == "Evaluate a model"
    assert app.slider(key="evaluate_threshold").value == pytest.approx(0.5), "the slider starts at the file's threshold"
    labels, scores = _expected(setup)
    assert _metric(app, "Test reviews") == "50"
    assert _metric(app, "ROC AUC") == f"{sk.roc_auc_score(labels, scores):.4f}"
    assert _metric(app, "Average precision") == f"{sk.average_precision_score(labels, scores):.4f}"
    assert _metric(app, "Accuracy") == f"{np.mean((scores >= 0.5) == labels):.2%}"
    assert _metric(app, "F1") == f"{sk.f1_score(labels, scores >= 0.5, zero_division=0):.2%}"
    before = _figure(app, "heatmap")["data"][0]["z"]
    tn, fp, fn, tp = sk.confusion_matrix(labels, scores >= 0.5).ravel()
    assert before == [[tn, fp], [fn, tp]]

    # A threshold between the scores, so that some reviews change sides.
    threshold = round(float(np.quantile(scores, 0.7)), 3)
    app.slider(key="evaluate_threshold").set_value(threshold).run()
    assert not app.exception, app.exception
    after = _figure(app, "heatmap")["data"][0]["z"]
    tn, fp, fn, tp = sk.confusion_matrix(labels, scores >= threshold).ravel()
    assert after == [[tn, fp], [fn, tp]] and after != before
    assert _metric(app, "Accuracy") == f"{np.mean((scores >= threshold) == labels):.2%}"
    roc = _figure(app, "scatter")
    marker = roc["data"][-1]
    assert marker["x"][0] == pytest.approx(fp / (fp + tn)) and marker["y"][0] == pytest.approx(tp / (tp + fn))


def test_the_mistakes_browser_lists_confident_mistakes_first_and_opens_one(setup):
    app = open_page("evaluate")
    labels, scores = _expected(setup)
    table = app.dataframe[0].value
    wrong = (scores >= 0.5) != (labels == 1)
    assert len(table) == wrong.sum()
    distance = np.abs(np.asarray(table["score"]) - (np.asarray(table["true label"]) == "positive"))
    assert list(distance) == sorted(distance, reverse=True), "most confident mistakes first"
    assert [predicted == "positive" for predicted in table["predicted"]] == [score >= 0.5 for score in table["score"]]
    app.selectbox(key="evaluate_mistake").set_value(1).run()
    assert not app.exception, app.exception
    shown = table.iloc[1]
    assert _metric(app, "True label") == shown["true label"] and _metric(app, "Predicted") == shown["predicted"]
    text = next(markdown.value for markdown in app.markdown if "script" in markdown.value)
    # Escaped: the review's HTML and markdown are shown as typed, never run or rendered.
    assert "\\<script\\>" in text and "\\*\\*bold\\*\\*" in text and "\\[link\\]" in text
    assert " ".join(text.replace("\\", "").split()).startswith(shown["first words"].removesuffix(" ..."))
    assert not app.get("html") and all(not markdown.proto.allow_html for markdown in app.markdown)
    # The sentiment-over-time chart: one point a word the model read, the review's last words (pre-truncation).
    trajectory = json.loads(app.get("plotly_chart")[-1].proto.spec)
    words = trajectory["data"][0]["text"]  # the word of each point, as on Classify
    tokens = tokenize(text.replace("\\", ""))
    assert len(words) == len(plotly_values(trajectory["data"][0]["y"])) == min(len(tokens), SEQUENCE_LENGTH)
    assert words == tokens[-len(words):]


def test_saving_the_threshold_into_a_runs_file_and_a_copy_for_the_shipped_model(setup, monkeypatch):
    from dashboard import scored_split

    scored = []
    original = scored_split.score_split
    monkeypatch.setattr(scored_split, "score_split", lambda *args, **kwargs: scored.append(1) or original(*args, **kwargs))
    app = open_page("evaluate")
    with pytest.raises(KeyError):
        app.button(key="evaluate_save")  # the shipped model is never changed in place
    downloads = [button.proto.label for button in app.get("download_button")]
    assert downloads == ["Download a copy with threshold 0.500"]
    app.selectbox(key="evaluate_model").set_value(RUN_LABEL).run()
    app.slider(key="evaluate_threshold").set_value(0.42).run()
    app.button(key="evaluate_save").click().run()
    assert not app.exception, app.exception
    assert Predictor.from_file(setup["run_model"]).metadata.threshold == 0.42
    assert "Threshold 0.420 saved" in app.success[0].value
    assert _metric(app, "Threshold in the file") == "0.42"
    assert len(scored) == 2, "one scoring a model; saving a threshold keeps the scores"
    assert Predictor.from_file(setup["default"]).metadata.threshold == 0.5


def test_without_data_or_model_the_page_explains_in_one_line(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "nowhere.tar.gz"))
    app = open_page("evaluate")
    assert len(app.error) == 1 and "does not exist" in app.error[0].value and "\n" not in app.error[0].value
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "missing.onnx")
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "no-runs"))
    app = open_page("evaluate")
    assert app.info and "No model yet" in app.info[0].value and not app.error


def test_the_evaluate_page_never_imports_tensorflow(setup):
    script = f"""
import sys
from core import paths
paths.DEFAULT_MODEL = paths.Path({str(setup["default"])!r})
from streamlit.testing.v1 import AppTest
app = AppTest.from_file({str(APP)!r}, default_timeout=60).run()
app.switch_page("views/evaluate.py").run()
assert not app.exception, app.exception
assert [metric.value for metric in app.metric if metric.label == "ROC AUC"], "no result"
print(sorted(name for name in ("tensorflow", "keras", "tf2onnx") if name in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=dict(os.environ), cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
