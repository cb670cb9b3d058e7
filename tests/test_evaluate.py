"""The threshold in the model file (write, read back, labels follow) and `python -m core evaluate --report`."""

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

from core.cli import main
from core.scoring.predictor import ModelFileError, Predictor
from core.evaluation.metrics import ThresholdSweep
from core.export.model_file import with_threshold, write_threshold
from tests.hand_built_file import WORDS, build_model

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["good movie", "awful boring plot, bad actors", "I loved it!", "great great actors", "boring it was"]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory) -> Path:
    """Made-up reviews of the tiny model's words with a split column: 60 train and 40 test rows."""
    generator = random.Random(3)
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label", "split"])
        for index in range(100):
            words = [generator.choice(WORDS) for _ in range(generator.randint(2, 15))]
            writer.writerow([" ".join(words), generator.randint(0, 1), "test" if index % 5 < 2 else "train"])
    return path


def _test_rows(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(encoding="utf-8") as stream:
        rows = [row for row in csv.DictReader(stream) if row["split"] == "test"]
    return [row["text"] for row in rows], np.array([int(row["label"]) for row in rows])


def _props(path: Path) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(path).metadata_props}


# ---- the threshold in the file ---------------------------------------------------------------------------------------


def test_a_written_threshold_is_read_back_and_changes_labels_and_nothing_else(model_file):
    before = onnx.load(model_file)
    predictor = Predictor.from_file(model_file)
    first = predictor.predict(TEXTS)
    # A threshold on the other side of one review's score: that review's label must change.
    score = next(p.score for p in first if 0.02 < p.score < 0.98)
    threshold = (score + 1) / 2 if score >= 0.5 else score / 2
    assert write_threshold(model_file, threshold) == 0.5, "the previous threshold is returned"
    reloaded = Predictor.from_file(model_file)
    assert reloaded.metadata.threshold == threshold
    after = reloaded.predict(TEXTS)
    assert [p.score for p in after] == [p.score for p in first], "scores do not change"
    assert [p.label for p in after] == [reloaded.metadata.labels[p.score >= threshold] for p in after]
    assert [p.label for p in after] != [p.label for p in first]
    changed = onnx.load(model_file)
    old, new = ({prop.key: prop.value for prop in m.metadata_props} for m in (before, changed))
    assert {key for key in old if old[key] != new[key]} == {"threshold"} and old.keys() == new.keys()
    assert float(new["threshold"]) == threshold
    assert changed.graph.SerializeToString() == before.graph.SerializeToString()
    assert (changed.opset_import, changed.ir_version) == (before.opset_import, before.ir_version)
    assert not list(model_file.parent.glob(".*")), "no temporary file left behind"


def test_a_written_threshold_reaches_the_text_file_beside_the_model_too(model_file):
    from core.export.model_file import text_path
    from core.export.text_file import write_text_file

    text_file = write_text_file(model_file).path
    assert text_file == text_path(model_file)
    write_threshold(model_file, 0.7)
    thresholds = [Predictor.from_file(path).metadata.threshold for path in (model_file, text_file)]
    assert thresholds == [0.7, 0.7]
    assert _props(text_file)["threshold"] == _props(model_file)["threshold"]


def test_with_threshold_returns_a_copy_and_leaves_the_file_alone(model_file, tmp_path):
    original = model_file.read_bytes()
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(with_threshold(model_file, 0.3))
    assert model_file.read_bytes() == original
    assert Predictor.from_file(copy).metadata.threshold == 0.3


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.2, 1.5, float("nan"), float("inf"), True, "abc", None])
def test_bad_thresholds_are_refused_in_one_line_and_the_file_is_unchanged(model_file, bad):
    original = model_file.read_bytes()
    with pytest.raises(ValueError, match="threshold must be") as raised:
        write_threshold(model_file, bad)
    assert "\n" not in str(raised.value)
    assert model_file.read_bytes() == original


def test_files_this_project_did_not_export_are_refused(tmp_path):
    plain = tmp_path / "plain.onnx"
    onnx.save(build_model(metadata=False), plain)
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    originals = {path: path.read_bytes() for path in (plain, text)}
    for path, message in [
        (plain, "not one exported by this project"),
        (text, "is not an ONNX file"),
        (tmp_path / "missing.onnx", "no model file"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(ModelFileError, match=message) as raised:
            write_threshold(path, 0.6)
        assert "\n" not in str(raised.value)
    assert {path: path.read_bytes() for path in originals} == originals


def _predict_in_a_subprocess(model: Path, text: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "core", "predict", "--model", str(model), text],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_cli_writes_the_threshold_and_predict_then_uses_it(model_file, capsys):
    text = "great great actors"
    before = _predict_in_a_subprocess(model_file, text)
    threshold = round((before["score"] + 1) / 2 if before["label"] == "positive" else before["score"] / 2, 6)
    status, stdout, _ = _run(["evaluate", "--model", str(model_file), "--write-threshold", str(threshold)], capsys)
    assert status == 0 and stdout.strip() == f"threshold {threshold:g} (was 0.5) written to {model_file}"
    after = _predict_in_a_subprocess(model_file, text)
    # Two processes: equal within float32 rounding (the threshold sits far from the score on either side).
    assert after["score"] == pytest.approx(before["score"], rel=1e-5, abs=1e-6) and after["label"] != before["label"]
    status, stdout, _ = _run(["evaluate", "--model", str(model_file), "--write-threshold", "0.5", "--json"], capsys)
    written = {"path": str(model_file), "threshold": 0.5, "previous_threshold": threshold}
    assert status == 0 and json.loads(stdout) == written
    assert _predict_in_a_subprocess(model_file, text)["label"] == before["label"]


# ---- evaluate --report -----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))


def test_report_json_matches_the_models_own_predictions(model_file, reviews_csv, capsys):
    argv = ["evaluate", "--model", str(model_file), "--data", str(reviews_csv), "--report", "--json"]
    status, stdout, _ = _run(argv, capsys)
    assert status == 0
    report = json.loads(stdout)
    texts, labels = _test_rows(reviews_csv)
    scores = np.array([p.score for p in Predictor.from_file(model_file).predict(texts)])
    assert report["n"] == len(texts) == 40
    assert (report["positives"], report["negatives"]) == (labels.sum(), len(labels) - labels.sum())
    assert report["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-6)
    assert report["average_precision"] == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-6)
    at = report["at_threshold"]
    assert at["threshold"] == 0.5 == report["threshold"] and report["at_file_threshold"] == at
    assert at["accuracy"] == report["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == labels))
    assert at["f1"] == pytest.approx(sk.f1_score(labels, scores >= 0.5, zero_division=0))
    assert report["scored_with"] == f"{model_file} (onnxruntime)"
    # The plain command's accuracy and loss are the report's.
    status, stdout, _ = _run(["evaluate", "--model", str(model_file), "--data", str(reviews_csv), "--json"], capsys)
    plain = json.loads(stdout)
    assert plain["accuracy"] == pytest.approx(report["accuracy"]) and plain["loss"] == pytest.approx(report["loss"])


def test_report_at_another_threshold_and_its_table(model_file, reviews_csv, capsys):
    texts, labels = _test_rows(reviews_csv)
    scores = np.array([p.score for p in Predictor.from_file(model_file).predict(texts)])
    threshold = float(np.round(np.median(scores), 3))
    expected = ThresholdSweep.build(labels, scores).at(threshold)
    base = ["evaluate", "--model", str(model_file), "--data", str(reviews_csv), "--threshold", str(threshold)]
    status, stdout, _ = _run([*base, "--report", "--json"], capsys)
    report = json.loads(stdout)
    assert status == 0 and report["threshold"] == threshold
    assert (report["at_threshold"]["tp"], report["at_threshold"]["fp"]) == (expected.tp, expected.fp)
    assert report["at_default_threshold"]["threshold"] == 0.5
    status, stdout, _ = _run([*base, "--json"], capsys)
    assert status == 0 and json.loads(stdout)["accuracy"] == pytest.approx(expected.accuracy)
    status, stdout, _ = _run([*base, "--report"], capsys)
    lines = stdout.splitlines()
    assert status == 0 and lines[0] == f"scored with {model_file} (onnxruntime)"
    assert lines[1].startswith("40 test reviews: ") and lines[2].startswith("ROC AUC 0.")
    # One row a distinct threshold, named by its roles: "0.5 (the file's, default)  0.5250  ...".
    rows = {line.split("(")[1].split(")")[0]: line.split(")")[1].split() for line in lines[3:] if line[:1].isdigit()}
    assert set(rows) == {"--threshold", "the file's, default"}
    figures = (expected.accuracy, expected.precision, expected.recall, expected.f1)
    assert rows["--threshold"][:4] == [f"{value:.4f}" for value in figures]
    assert rows["--threshold"][4:] == [f"{value:,}" for value in (expected.tp, expected.fp, expected.tn, expected.fn)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threshold", "0.4", "--write-threshold", "0.6", "--model", "{model}"], "not both"),
        (["--write-threshold", "0.6"], "--write-threshold needs the file to change"),
        (["--write-threshold", "1.5", "--model", "{model}"], "argument --write-threshold: T must be strictly between"),
        (["--threshold", "0", "--model", "{model}"], "argument --threshold: T must be strictly between"),
        (["--threshold", "half", "--model", "{model}"], "T must be a number"),
        (["--write-threshold", "0.6", "--model", "{plain}"], "not one exported by this project"),
        (["--write-threshold", "0.6", "--model", "{missing}"], "no model file"),
    ],
)
def test_threshold_mistakes_exit_2_with_one_line(argv, message, model_file, tmp_path, capsys):
    plain = tmp_path / "plain.onnx"
    onnx.save(build_model(metadata=False), plain)
    original = model_file.read_bytes()
    argv = [item.format(model=model_file, plain=plain, missing=tmp_path / "missing.onnx") for item in argv]
    status, stdout, stderr = _run(["evaluate", *argv], capsys)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1 and message in stderr, stderr
    assert model_file.read_bytes() == original


@pytest.mark.slow
def test_a_run_reports_through_keras_until_it_is_exported_then_through_its_file(reviews_csv, tmp_path, capsys):
    from tests.small_inputs import write_keras_run  # a tiny Keras run folder

    run_dir = write_keras_run(tmp_path / "runs" / "run-1")
    base = ["evaluate", str(run_dir), "--data", str(reviews_csv)]
    status, _, stderr = _run([*base, "--write-threshold", "0.6"], capsys)
    assert status == 2 and "has no model.onnx to write the threshold into" in stderr
    status, stdout, _ = _run([*base, "--report", "--json"], capsys)
    keras_report = json.loads(stdout)
    assert status == 0 and keras_report["scored_with"].endswith("model.keras (Keras; the run has no model.onnx)")
    status, stdout, _ = _run([*base, "--json"], capsys)
    plain = json.loads(stdout)
    assert plain["accuracy"] == pytest.approx(keras_report["accuracy"])
    assert plain["loss"] == pytest.approx(keras_report["loss"], abs=1e-4)
    # An exported file (a hand-built one here) is what --report and --write-threshold use from then on.
    onnx.save(build_model(), run_dir / "model.onnx")
    status, stdout, _ = _run([*base, "--write-threshold", "0.7", "--report", "--json"], capsys)
    report = json.loads(stdout)
    assert status == 0 and report["scored_with"] == f"{run_dir / 'model.onnx'} (onnxruntime)"
    assert report["threshold"] == 0.7 and Predictor.from_run(run_dir).metadata.threshold == 0.7
    status, stdout, _ = _run([*base, "--json"], capsys)
    assert json.loads(stdout) == plain, "plain evaluate of a run stays Keras's"


# ---- core.evaluation.evaluation: the decisions behind the command -------------------------------------------------------------


def test_evaluate_in_core_returns_what_the_command_prints(model_file, reviews_csv):
    from core.evaluation.evaluation import EvaluationCallbacks, evaluate

    notes, imported = [], []
    callbacks = EvaluationCallbacks(on_note=notes.append, before_tensorflow=lambda: imported.append(1))
    plain = evaluate(model=str(model_file), data=str(reviews_csv), callbacks=callbacks)
    assert plain.written is None and plain.report is None and plain.summary["n"] == 40
    full = evaluate(model=str(model_file), data=str(reviews_csv), report=True, write_threshold=0.6, callbacks=callbacks)
    assert full.written.previous_threshold == 0.5 and full.written.threshold == 0.6
    # The written threshold is announced before the report, which is evaluated at it.
    assert notes == [f"threshold 0.6 (was 0.5) written to {model_file}"]
    assert full.report.threshold == 0.6 and full.summary["accuracy"] == full.report.accuracy
    assert full.scored_with == f"{model_file} (onnxruntime)" and imported == [], "an .onnx file needs no TensorFlow"
    only = evaluate(model=str(model_file), write_threshold=0.5)
    assert only.summary is None and only.written.to_dict()["previous_threshold"] == 0.6


def test_evaluate_in_core_refuses_a_run_and_a_model_together(model_file):
    from core.evaluation.evaluation import evaluate

    with pytest.raises(ValueError, match="not both"):
        evaluate("runs/some-run", str(model_file))
    with pytest.raises(ValueError, match="is an exported model, not a run folder"):
        evaluate(str(model_file))


def test_each_distinct_threshold_is_one_row_named_by_its_roles(model_file, reviews_csv):
    from core.evaluation.evaluation import evaluate, thresholds_by_role

    report = evaluate(model=str(model_file), data=str(reviews_csv), threshold=0.3, report=True).report
    rows = [(metrics.threshold, names) for metrics, names in thresholds_by_role(report, threshold_given=True)]
    assert rows == [(0.3, ["--threshold"]), (0.5, ["the file's", "default"])]
    same = evaluate(model=str(model_file), data=str(reviews_csv), report=True).report
    assert [names for _, names in thresholds_by_role(same, threshold_given=False)] == [["the file's", "default"]]
