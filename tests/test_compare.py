"""The comparison of presets and runs: rows, compare.json, the CLI and its errors, LSTM and GRU parity, the page."""

from __future__ import annotations

import csv
import json
import random
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import pytest

from core import config as config_module
from core.cli import main
from core.evaluation.compare import (
    BOOK_PRESETS,
    CompareCallbacks,
    Comparison,
    compare,
    compare_runs,
    default_selection,
    latency_ids,
    load_comparison,
    plan_comparison,
)
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, TrainConfig
from core.export.convert import export_model, op_counts
from core.model.build import build_model, describe
from core.export.parity import random_ids
from core.runs.store import RunStore, read_run, write_history
from core.data.text import Vocabulary, tokenize
from core.training.trainer import TrainingCallbacks

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TOLERANCE = 1e-5
CELLS = {"seed": "simple_rnn", "book-lstm": "lstm", "book-gru": "gru"}
NATIVE = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
GOOD, BAD = "great wonderful superb loved".split(), "awful boring terrible waste".split()
FILLER = "the movie film was a and it this plot acting story of".split()
# The real presets, kept before the tiny_presets fixture replaces them for the trainings of this module.
BOOK = {name: config_module.PRESETS[name] for name in CELLS}


def _tiny(cell: str) -> ExperimentConfig:
    """The book preset's shape, shrunk so that a training and an export take a second or two."""
    model = ModelConfig(
        vocabulary_size=100, sequence_length=40, embedding_dim=8, recurrent_layers=(RecurrentLayerConfig(cell, 8),)
    )
    return ExperimentConfig(model, TrainConfig(batch_size=32, epochs=3, learning_rate=0.01))


def _write_csv(path: Path, reviews: int = 240) -> Path:
    """Made-up reviews whose label shows in a few words, so a tiny model learns something in two epochs."""
    generator = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for index in range(reviews):
            label = index % 2
            words = [generator.choice(FILLER) for _ in range(generator.randint(5, 30))]
            words += [generator.choice(GOOD if label else BAD) for _ in range(3)]
            generator.shuffle(words)
            writer.writerow([" ".join(words), label])
    return path


@pytest.fixture(scope="module")
def tiny_presets():
    """seed, book-lstm and book-gru replaced by tiny models of the same cells for this module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, cell in CELLS.items():
            patch.setitem(config_module.PRESETS, name, _tiny(cell))
        yield


@pytest.fixture(scope="module")
def compared(tiny_presets, tmp_path_factory):
    """compare() of the three tiny presets on a tiny CSV, 2 epochs: (comparison, runs folder, steps heard, csv)."""
    folder = tmp_path_factory.mktemp("compare")
    data = _write_csv(folder / "tiny.csv")
    steps, epochs = [], []
    callbacks = CompareCallbacks(
        on_step=steps.append, training=TrainingCallbacks(on_epoch_end=lambda epoch, logs: epochs.append(epoch))
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_CACHE", str(folder / "cache"))
        comparison = compare(BOOK_PRESETS, data, epochs=2, runs=folder / "runs", callbacks=callbacks)
    return {"comparison": comparison, "runs": folder / "runs", "steps": steps, "epochs": epochs, "data": data}


# ---- compare() -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_row_per_preset_in_order_with_sane_values(compared):
    comparison = compared["comparison"]
    assert [row.name for row in comparison.rows] == list(BOOK_PRESETS)
    assert compared["epochs"] == [1, 2] * 3, "every training's epochs reach the caller"
    for row in comparison.rows:
        run = read_run(row.run_dir)
        assert run.status == "finished" and run.config.train.epochs == 2, "--epochs overrides every preset"
        assert run.config.model == config_module.PRESETS[row.name].model
        assert row.parameters == describe(run.config.model).total_params
        assert row.epochs_run == 2 and len(row.history["val_accuracy"]) == 2
        assert row.best_val_accuracy == max(row.history["val_accuracy"])
        assert row.history["val_accuracy"][row.best_val_epoch - 1] == row.best_val_accuracy
        assert 0.0 <= row.test_accuracy <= 1.0 and row.test_n == 48
        assert len(row.epoch_seconds) == 2 and row.seconds_per_epoch == pytest.approx(
            statistics.median(row.epoch_seconds), abs=1e-3
        )
        assert 0 < row.seconds_per_epoch < 120
        assert 0 < row.latency_ms < 1000
        assert row.file_bytes == Path(row.onnx_path).stat().st_size and Path(row.onnx_path).parent == run.path
        assert row.problem is None
    parameters = [row.parameters for row in comparison.rows]
    assert parameters[0] < parameters[2] < parameters[1], "SimpleRNN < GRU < LSTM"
    assert not comparison.notes, "same data and budget: nothing to warn about"
    assert any(step.startswith("training book-gru (3 of 3)") for step in compared["steps"])


@pytest.mark.slow
def test_compare_json_is_written_in_the_runs_folder_and_reads_back(compared):
    path = compared["runs"] / "compare.json"
    assert json.loads(path.read_text())["rows"][1]["name"] == "book-lstm"
    loaded = load_comparison(compared["runs"])
    assert loaded is not None and loaded.to_dict() == compared["comparison"].to_dict()
    assert not list(compared["runs"].glob(".compare.json*")), "no temporary file left behind"
    (compared["runs"] / "broken").mkdir(exist_ok=True)
    (compared["runs"] / "broken" / "compare.json").write_text("{not json")
    assert load_comparison(compared["runs"] / "broken") is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["book-lstm", "book-gru"])
def test_lstm_and_gru_runs_export_to_their_native_op_with_keras_parity(compared, name):
    import keras

    row = next(row for row in compared["comparison"].rows if row.name == name)
    proto = onnx.load(row.onnx_path)
    counts = op_counts(proto)
    cell = CELLS[name]
    assert counts.get(NATIVE[cell]) == 1, counts
    assert not {"Loop", "Scan"} & set(counts) and sum(counts.get(op, 0) for op in NATIVE.values()) == 1, counts
    run = read_run(row.run_dir)
    model = keras.saving.load_model(run.model_path, compile=False)
    ids = random_ids(run.config.model, 48, seed=11)
    session = onnxruntime.InferenceSession(row.onnx_path, providers=["CPUExecutionProvider"])
    (got,) = session.run(["probability"], {session.get_inputs()[0].name: ids})
    assert float(np.max(np.abs(got - model.predict(ids, verbose=0)))) <= TOLERANCE
    recorded = float(session.get_modelmeta().custom_metadata_map["parity_max_abs_diff"])
    assert 0 <= recorded <= TOLERANCE


def _vocabulary(num_words: int) -> Vocabulary:
    return Vocabulary.build([tokenize(" ".join(GOOD + BAD + FILLER))], num_words)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["book-lstm", "book-gru"])
def test_the_book_presets_at_full_size_export_with_parity(name, tmp_path):
    """The real presets (10,000 words, 500 steps, 32 units) with trained-looking random weights, not the tiny ones."""
    experiment = BOOK[name]
    keras.utils.set_random_seed(5)  # the initializers' draws, whatever ran before: the same weights in every run
    model = build_model(experiment.model)
    generator = np.random.default_rng(5)
    model.set_weights([w + generator.normal(0, 0.2, w.shape).astype("float32") for w in model.get_weights()])
    result = export_model(model, experiment, _vocabulary(10_000), {}, tmp_path / f"{name}.onnx")
    cell = experiment.model.recurrent_layers[0].cell
    assert result.op_counts.get(NATIVE[cell]) == 1 and "Loop" not in result.op_counts and "Scan" not in result.op_counts
    assert result.parity_max_abs_diff <= TOLERANCE
    ids = random_ids(experiment.model, 16, seed=3)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["probability"], {"input_ids": ids})
    assert float(np.max(np.abs(got - model.predict(ids, verbose=0)))) <= TOLERANCE


def test_the_book_presets_share_the_seeds_budget_and_differ_only_in_the_cell():
    seed = BOOK["seed"]
    for name in ("book-lstm", "book-gru"):
        assert BOOK[name].train == seed.train, "same optimizer, epochs, batch, validation split and seed"
        assert replace(BOOK[name].model, recurrent_layers=seed.model.recurrent_layers) == seed.model
        assert [layer.cell for layer in BOOK[name].model.recurrent_layers] == [CELLS[name]]
    assert describe(BOOK["book-lstm"].model).total_params == 320_000 + 4 * 32 * (32 + 32 + 1) + 33
    # Keras 3's GRU (reset_after) keeps two bias vectors: 3 * 32 * (32 + 32 + 2).
    assert describe(BOOK["book-gru"].model).total_params == 320_000 + 3 * 32 * (32 + 32 + 2) + 33


def test_latency_input_fills_the_sequence_without_padding():
    ids = latency_ids(500, 10_000)
    assert ids.shape == (1, 500) and ids.dtype == np.int32 and ids[0, 0] == 1
    assert ids[0, 1:].min() >= 3 and ids[0].max() < 10_000
    assert np.array_equal(ids, latency_ids(500, 10_000)), "every file is timed on the same review"


@pytest.mark.slow
def test_compare_runs_takes_finished_runs_and_notes_a_different_budget(compared, tmp_path):
    rows = compared["comparison"].rows
    copy = tmp_path / rows[0].run_id
    shutil.copytree(rows[0].run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["train"]["epochs"] = 5
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "model.onnx").unlink()
    comparison = compare_runs([copy, rows[1].run_dir], export=False, latency=lambda path: 1.5)
    first, second = comparison.rows
    assert first.latency_ms is None and "no model.onnx" in first.problem and first.file_bytes is None
    assert second.latency_ms == 1.5 and second.problem is None
    assert any("different settings (epochs)" in note for note in comparison.notes), comparison.notes
    assert "note: seed: no model.onnx" in comparison.table()
    assert not (tmp_path / "compare.json").exists(), "saved only when asked"


@pytest.mark.slow
def test_a_cancel_ends_the_comparison_after_that_run(tiny_presets, compared, tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(compared["data"].parent / "cache"))
    training = TrainingCallbacks()
    # Cancelled at the end of the first epoch: the first run stops, the other presets are never trained.
    callbacks = CompareCallbacks(training=replace(training, on_epoch_end=lambda epoch, logs: training.cancel.set()))
    comparison = compare(BOOK_PRESETS, compared["data"], runs=tmp_path, callbacks=callbacks, export=False)
    (row,) = comparison.rows
    assert row.name == "seed" and row.status == "cancelled" and row.epochs_run <= 1
    assert len(RunStore(tmp_path).list()) == 1


def test_compare_refuses_bad_presets_before_training(tmp_path):
    for presets, message in (
        (["seed", "nope"], "unknown preset 'nope'"),
        (["seed-rnn"], "no classifier"),
        (["seed", "seed"], "named twice"),
        ([], "at least one preset"),
    ):
        with pytest.raises(ValueError, match=message):
            compare(presets, tmp_path / "none.csv", runs=tmp_path / "runs")
    assert not (tmp_path / "runs").exists(), "nothing was written"


def _listed(run_id: str, preset_name: str):
    from core.config import preset
    from core.runs.store import RunInfo

    return RunInfo(run_id, Path(run_id), "finished", preset(preset_name), {}, {}, {}, None, None, None, None)


def test_the_page_starts_on_the_saved_comparison_else_the_newest_of_each_book_preset():
    comparable = [
        _listed("4-gru", "book-gru"), _listed("3-seed", "seed"), _listed("2-gru", "book-gru"), _listed("1-lstm", "book-lstm")
    ]
    assert default_selection(comparable, None) == ["3-seed", "1-lstm", "4-gru"]
    saved = Comparison.from_dict({"created": "now", "rows": [_row_dict("2-gru"), _row_dict("1-lstm")]})
    assert default_selection(comparable, saved) == ["2-gru", "1-lstm"]
    gone = Comparison.from_dict({"created": "now", "rows": [_row_dict("0-deleted")]})
    assert default_selection(comparable, gone) == ["3-seed", "1-lstm", "4-gru"]
    others = [_listed(f"{index}-stacked", "seed-stacked") for index in range(5)]
    assert default_selection(others, None) == ["0-stacked", "1-stacked", "2-stacked"]


def _row_dict(run_id: str) -> dict:
    return {
        "name": "x", "run_id": run_id, "run_dir": run_id, "status": "finished", "parameters": 1, "epochs_run": 1,
        "best_val_accuracy": None, "best_val_epoch": None, "test_accuracy": None, "test_n": 0,
        "seconds_per_epoch": None, "epoch_seconds": [], "latency_ms": None, "file_bytes": None, "onnx_path": None,
        "history": {},
    }


def test_a_plan_checks_the_request_before_anything_is_trained(tmp_path):
    plan = plan_comparison("seed,book-gru", None, epochs=2, runs_folder=str(tmp_path / "runs"))
    assert plan.presets == ("seed", "book-gru") and plan.epochs_each == 2 and plan.folder == tmp_path / "runs"
    from core.config import preset

    assert plan_comparison("seed", None, runs_folder=str(tmp_path)).epochs_each == preset("seed").train.epochs
    with pytest.raises(ValueError, match="--epochs applies only when training --presets"):
        plan_comparison(None, ["some-run"], epochs=2, runs_folder=str(tmp_path))
    with pytest.raises(ValueError, match="no run folder at"):
        plan_comparison(None, ["some-run"], runs_folder=str(tmp_path))
    with pytest.raises(ValueError, match="--presets needs comma-separated preset names"):
        plan_comparison("seed,", None, runs_folder=str(tmp_path))
    assert not (tmp_path / "runs").exists(), "nothing was written"


# ---- the command line ----------------------------------------------------------------------------------------------


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["compare", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_error(status: int, err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--presets", "seed,book-lstm,nope"], "unknown preset 'nope'"),
        (["--presets", "seed,,book-gru"], "comma-separated preset names"),
        (["--presets", "seed,seed"], "named twice"),
        ([], "one of the arguments --presets --run is required"),
        (["--presets", "seed", "--run", "x"], "not allowed with"),
        (["--run", "x", "--epochs", "2"], "--epochs applies only when training"),
        (["--run", "no-such-run"], "no run folder at"),
        (["--presets", "seed", "--epochs", "two"], "invalid int value"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(capsys, argv, fragment):
    _one_error(*_cli(capsys, *argv)[::2], fragment)


def test_cli_refuses_when_another_training_holds_the_runs_folder(capsys, tmp_path):
    with RunStore(tmp_path).training_lock():
        status, _, err = _cli(capsys, "--presets", "seed", "--runs", str(tmp_path), "--data", str(tmp_path / "x.csv"))
    _one_error(status, err, "another training is running")
    status, _, err = _cli(capsys, "--presets", "seed", "--limit", "0", "--runs", str(tmp_path))
    _one_error(status, err, "--limit must be a positive number")


def test_cli_refuses_a_run_that_cannot_be_compared(capsys, tmp_path):
    run = tmp_path / "20260101-000000-seed-abcdef"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
    (run / "config.json").write_text(json.dumps(ExperimentConfig().to_dict()))
    write_history(run, {"loss": [0.6]})
    _one_error(*_cli(capsys, "--run", str(run))[::2], "is failed: out of memory")


@pytest.mark.slow
def test_cli_compares_finished_runs_and_prints_where_the_json_went(compared, capsys, tmp_path):
    runs = tmp_path / "runs"
    for row in compared["comparison"].rows[1:]:
        shutil.copytree(row.run_dir, runs / row.run_id)
    ids = [row.run_id for row in compared["comparison"].rows[1:]]
    status, out, err = _cli(capsys, "--runs", str(runs), "--run", ids[0], "--run", ids[1])
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == str(runs / "compare.json") and (runs / "compare.json").is_file()
    assert lines[0].split()[:3] == ["Model", "Params", "Epochs"]
    assert lines[2].startswith("book-lstm") and lines[3].startswith("book-gru")
    assert "latency: median of 50 runs of one review of 40 ids" in out
    status, out, err = _cli(capsys, "--runs", str(runs), "--run", ids[1], "--json")
    saved = Comparison.from_dict(json.loads(out))
    assert status == 0 and [row.name for row in saved.rows] == ["book-gru"] and "saved: " in err


# ---- the Compare page ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_compare_page_shows_the_saved_comparison_and_exports_on_demand(compared, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    runs = tmp_path / "runs"
    shutil.copytree(compared["runs"], runs, ignore=shutil.ignore_patterns(".*"))
    lstm = next(row for row in compared["comparison"].rows if row.name == "book-lstm")
    (runs / lstm.run_id / "model.onnx").unlink()
    monkeypatch.setenv("IMDB_RUNS", str(runs))
    monkeypatch.setenv("IMDB_CACHE", str(compared["data"].parent / "cache"))
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page("views/compare.py").run()
    assert not app.exception, app.exception
    # The runs of the saved comparison are picked, in its order.
    assert app.multiselect(key="compare_runs").value == [row.run_id for row in compared["comparison"].rows]
    table = app.dataframe[0].value
    assert list(table["Model"]) == list(BOOK_PRESETS)
    assert list(table["Parameters"]) == [row.parameters for row in compared["comparison"].rows]
    assert table["Latency (ms)"].isna().tolist() == [False, True, False], "book-lstm has no model.onnx yet"
    # Accuracies in percent with one decimal, as everywhere else on the pages ("52.1%", never "51%" beside "52.14%").
    tested = [100 * row.test_accuracy for row in compared["comparison"].rows]
    assert table["Test accuracy"].tolist() == pytest.approx(tested)
    columns = json.loads(app.dataframe[0].proto.columns)
    assert columns["Test accuracy"]["type_config"]["format"] == "%.1f%%"
    assert len(app.get("plotly_chart")) == 2
    app.button(key="compare_export").click().run()
    assert not app.exception, app.exception
    assert (runs / lstm.run_id / "model.onnx").is_file()
    table = app.dataframe[0].value
    assert not table["Latency (ms)"].isna().any() and (table["Latency (ms)"] > 0).all()
    assert not app.button, "nothing left to export"


def test_the_compare_page_without_runs_says_how_to_train_them(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("views/compare.py").run()
    assert not app.exception, app.exception
    assert app.info[0].value.startswith("No finished runs to compare")
    assert "python -m core compare --presets seed,book-lstm,book-gru" in app.code[0].value
