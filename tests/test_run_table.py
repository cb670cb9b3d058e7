"""Runs as people see them (core.runs.table, core.runs.archive), a training's progress line and outcome, and what the
Data and Export pages compute in core (core.data.summary, core.export.file_summary)."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest

from core.runs import store as runs
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, preset
from core.data.summary import coverage, label_counts, length_summary, review_as_read
from core.export.file_summary import file_notes, file_problem, generic_loops, io_rows, metadata_rows, shape_text
from core.training.progress import JobSnapshot
from core.paths import DEFAULT_MODEL
from core.runs.archive import history_csv, run_zip
from core.runs.table import (
    BEST_EPOCH_COLUMN,
    PEAK_COLUMN,
    config_differences,
    listed_runs,
    run_record,
    run_row,
    runs_table,
    training_seconds,
)
from core.runs.store import RunStore, read_run
from core.data.splits import Dataset, Split
from core.data.text import Vocabulary
from core.training.trainer import outcome_lines, prepare_training
from tests.small_inputs import finished_run

HISTORY = {
    "loss": [0.6, 0.4, 0.3],
    "accuracy": [0.7, 0.8, 0.9],
    "val_loss": [0.5, 0.3, 0.4],
    "val_accuracy": [0.70, 0.80, 0.90],
}


@pytest.fixture
def run_dir(tmp_path):
    path = finished_run(RunStore(tmp_path))
    runs.write_history(path, HISTORY)
    return path


def test_a_row_shows_the_peak_val_accuracy_and_the_best_epoch_apart(run_dir):
    row = run_row(read_run(run_dir))
    assert row.peak_val_accuracy == 0.90  # epoch 3, the highest
    assert row.best_epoch.epoch == 2 and row.best_epoch.val_accuracy == 0.80  # the lowest val loss
    assert (row.status, row.epochs, row.test_accuracy, row.problem) == ("finished", "3/10", 0.8, "")
    assert PEAK_COLUMN == "Peak val accuracy" and BEST_EPOCH_COLUMN == "Best epoch (lowest val loss)"


def test_the_command_line_table_names_the_peak_and_the_json_record_keeps_everything(run_dir):
    run = read_run(run_dir)
    lines = runs_table([run]).splitlines()
    assert lines[0].split() == ["Run", "Status", "Epochs", "Peak", "val", "acc", "Test", "acc", "Note"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == [run.run_id, "finished", "3/10", "0.9000", "0.8000"]
    record = run_record(run)
    assert json.loads(json.dumps(record))["history"] == HISTORY
    assert record["config"] == preset("seed").to_dict() and record["broken"] is None


def test_training_time_falls_back_to_start_and_end_and_a_file_is_not_a_runs_folder(run_dir, tmp_path):
    run = read_run(run_dir)
    runs.write_metrics(run_dir, {})
    record = json.loads((run_dir / "run.json").read_text())
    record.update(created="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:01:30+00:00")
    (run_dir / "run.json").write_text(json.dumps(record))
    assert training_seconds(read_run(run_dir)) == 90.0
    assert training_seconds(run) is None or training_seconds(run) >= 0
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a runs folder"):
        listed_runs(str(tmp_path / "file"))
    root, found = listed_runs(str(tmp_path))
    assert root == tmp_path and [info.path for info in found] == [run_dir]


def test_config_differences_name_each_changed_field_and_a_missing_layer():
    seed = preset("seed")
    stacked = ExperimentConfig(
        ModelConfig(recurrent_layers=(RecurrentLayerConfig(), RecurrentLayerConfig(cell="gru", units=16))), seed.train
    )
    differences = dict((name, (one, other)) for name, one, other in config_differences(seed, stacked))
    assert differences["model.recurrent_layers (count)"] == ("1", "2")
    assert differences["model.recurrent_layers[1].cell"] == ("-", "gru")
    assert config_differences(seed, seed) == []


def test_the_zip_holds_the_files_and_the_history_as_csv(run_dir):
    with zipfile.ZipFile(io.BytesIO(run_zip(run_dir))) as archive:
        names = set(archive.namelist())
        table = list(csv.reader(io.StringIO(archive.read(f"{run_dir.name}/history.csv").decode())))
    assert {f"{run_dir.name}/{name}" for name in ("config.json", "history.json", "model.keras")} <= names
    assert table[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"] and table[3][0] == "3"
    assert history_csv({"loss": [0.5, 0.4], "val_loss": [0.6]}).splitlines()[-1] == "2,0.4,"


def _snapshot(**changes) -> JobSnapshot:
    values = dict(
        status="running", run_dir=None, epochs_done=0, epochs_total=3, history={}, epoch=2, epoch_fraction=0.5,
        seconds_per_batch=0.1, seconds_left_in_epoch=12.4, error=None, run=None,
    )
    return JobSnapshot(**{**values, **changes})


def test_the_progress_line_says_the_epoch_its_share_and_the_time_left():
    assert _snapshot().progress_text == "Epoch 2 of 3: 50% of its batches, about 12 s left in this epoch"
    assert _snapshot(seconds_left_in_epoch=0.3).progress_text.endswith("under a second left in this epoch")
    assert _snapshot(epoch_fraction=1.0).progress_text.endswith(", validating")
    assert _snapshot(status="starting").progress_text.startswith("Starting")
    building = _snapshot(epoch=1, epoch_fraction=0.0, seconds_left_in_epoch=None, preparing=True).progress_text
    assert building.startswith("Epoch 1 of 3: TensorFlow is building the training step (tracing it, and compiling")


def test_until_its_first_batch_a_training_says_it_builds_the_step_then_its_share_of_the_epoch(tmp_path):
    """The training process writes progress.json at once (ProgressFile.run_created): follow() says the step is being
    built until a batch reports, for a resumed run from the epoch it resumes at, and never for an ended run."""
    from core.runs.store import RunStore
    from core.training.process import ProgressFile, follow
    from tests.small_inputs import DATA, VOCABULARY

    run_dir = RunStore(tmp_path).create(preset("seed"), VOCABULARY, {**DATA, "reviews": 1000})
    progress = ProgressFile()
    progress.run_created(run_dir)
    state = follow(run_dir)
    assert state.preparing and state.epoch == 1 and state.epoch_fraction == 0.0
    assert "building the training step" in state.progress_text
    progress.batch(1, 0.25)
    state = follow(run_dir)
    assert not state.preparing and state.progress_text.startswith("Epoch 1 of 10: 25% of its batches")

    runs.write_history(run_dir, {"loss": [0.5, 0.4], "accuracy": [0.7, 0.8], "val_loss": [0.6, 0.5]})
    progress = ProgressFile()
    progress.run_created(run_dir)  # taken up again after two epochs
    state = follow(run_dir)
    assert state.preparing and state.epoch == 3
    runs.set_status(run_dir, "cancelled")
    assert not follow(run_dir).preparing


def test_after_the_last_epoch_the_progress_line_says_the_test_reviews_are_scored_and_the_bar_is_full():
    testing = _snapshot(epochs_done=3, epoch=3, epoch_fraction=0.0, seconds_left_in_epoch=None)
    assert testing.testing and testing.done_share == 1.0
    assert testing.progress_text == "All 3 epochs done: saving the model and scoring the test reviews..."
    assert not _snapshot().testing and _snapshot().done_share == 0.5
    assert not _snapshot(status="finished", epochs_done=3).testing


def test_a_run_that_ended_in_its_launch_shows_ended_while_the_process_writes_its_last_lines(tmp_path):
    """The process outlives its run's end by its last writes: the page shows the ended run, not "Starting"; a resume
    whose run still reads as it ended before the launch shows "starting"."""
    import subprocess
    import sys
    import time

    from core.training.process import RUN_FOLDER_PREFIX, Launch, current_training

    store = RunStore(tmp_path / "runs")
    run_dir = finished_run(store)
    log = tmp_path / "train.log"
    log.write_text(f"{RUN_FOLDER_PREFIX}{run_dir}\n")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ended = current_training(store, Launch(process, log, started=time.time() - 60))
        assert ended.status == "finished" and ended.run is not None
        resumed = current_training(store, Launch(process, log, started=time.time() + 60))
        assert resumed.status == "starting"
    finally:
        process.kill()
        process.wait()


def test_the_outcome_names_the_best_epoch_by_its_rule(run_dir):
    runs.write_metrics(
        run_dir,
        {"best_epoch": 2, "best_val_loss": 0.3, "best_val_accuracy": 0.8, "test_accuracy": 0.79, "test_loss": 0.45,
         "test_n": 1000, "train_seconds": 12.0},
    )
    lines = outcome_lines(read_run(run_dir))
    assert lines == [
        "best epoch (lowest val loss) 2: val_loss 0.3000, val_accuracy 0.8000",
        "test accuracy 0.7900, loss 0.4500 on 1,000 reviews; fit took 12 s",
    ]


def test_prepare_training_refuses_mistakes_before_reading_any_data(tmp_path):
    with pytest.raises(ValueError, match="--limit must be a positive"):
        prepare_training(preset("seed"), limit=0, data=str(tmp_path / "none.csv"), runs_folder=str(tmp_path))
    with pytest.raises(ValueError, match="no classifier on top"):
        prepare_training(preset("seed-rnn"), data=str(tmp_path / "none.csv"), runs_folder=str(tmp_path))
    with pytest.raises(ValueError, match="epochs"):
        prepare_training(preset("seed"), epochs=0, data=str(tmp_path / "none.csv"), runs_folder=str(tmp_path))


def _split(sequences, labels) -> Split:
    return Split.from_lists([np.array(ids, dtype=np.int32) for ids in sequences], labels)


def test_data_counts_lengths_coverage_and_one_review_as_the_model_reads_it():
    vocabulary = Vocabulary(words=("<unused>", "good", "bad"), num_words=5)
    oov = vocabulary.oov_id
    train = _split([[1, 3, 4, oov], [1, 4]], [1, 0])
    dataset = Dataset("toy", "csv", vocabulary, train, _split([[1, 3]], [1]))
    assert label_counts(dataset)[0] == {"Split": "train", "negative": 1, "positive": 1, "Total": 2}
    lengths = length_summary(train, sequence_length=3)
    assert (lengths.median, lengths.longest, lengths.cut_share) == (3, 4, 0.5)
    assert length_summary(_split([], []), 3).median is None
    assert coverage(train, vocabulary) == pytest.approx(3 / 4)  # the start ids left out, one <unk> of four words
    model = ModelConfig(sequence_length=3, truncating="pre")
    read = review_as_read(train, 0, model, vocabulary)
    assert list(read.cut) == [1] and list(read.kept) == [3, 4, oov] and read.unknown == 1 and read.words == 3
    post = review_as_read(train, 0, ModelConfig(sequence_length=3, truncating="post"), vocabulary)
    assert list(post.kept) == [1, 3, 4] and list(post.cut) == [oov]
    short = review_as_read(train, 1, model, vocabulary)
    assert short.pad_added == 1 and not len(short.cut) and short.label == "negative"


def test_the_shipped_files_metadata_and_inputs_read_as_rows():
    from core.scoring.predictor import Predictor

    predictor = Predictor.from_file(DEFAULT_MODEL)
    rows = {row["key"]: row["value"] for row in metadata_rows(predictor.metadata.to_props())}
    assert rows["vocabulary"].startswith("9,996 words: the, and, a,") and "config" not in rows and "metrics" not in rows
    io_table = io_rows(predictor)
    assert [row["direction"] for row in io_table][0] == "input" and io_table[0]["name"] == "input_ids"
    assert shape_text(["batch", 500]) == "[any, 500]"
    assert generic_loops({"Scan": 2, "If": 2}) == 0 and generic_loops({"Loop": 1, "Scan": 1}) == 2


def test_a_files_notes_and_what_makes_it_untrustworthy():
    notes = file_notes({"If": 2, "RNN": 2}, {"method": "sequence_lens"}, 500)
    # The note names the If, not a count of Ifs: a file with the steps switch holds one If more than it has layers.
    assert notes[0].startswith("Each SimpleRNN layer runs as onnxruntime's RNN op") and "chosen by an If" in notes[0]
    assert "sequence_lens" in notes[1] and notes[1].endswith("on 500 ids.")
    assert file_notes({"LSTM": 1}, None, 500) == []
    assert len(notes) == 2  # no clean-rows path unless the file has one
    (clean,) = file_notes({"If": 4, "RNN": 2}, {"method": "sequence_lens"}, 500, clean_rows=True)[2:]
    assert clean.startswith("A batch of 16 or more rows padded before the review") and "at most 500 ids" in clean
    assert file_problem({"LSTM": 1}, 1e-7) is None
    assert "generic Loop nodes" in file_problem({"Loop": 1}, 1e-7)
    assert file_problem({"RNN": 1}, 3e-4).startswith("Parity 3.0e-04 is above 1e-05")
