"""The run store: atomic writes, corrupt or half-written folders, runs whose process died, deletion, bad roots."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from core.runs import store as runs
from core.config import ExperimentConfig, preset
from core.runs.store import RunStore, read_run, read_vocabulary
from tests.small_inputs import DATA, VOCABULARY, finished_run

def test_create_writes_a_complete_running_run(tmp_path):
    store = RunStore(tmp_path)
    run_dir = store.create(preset("seed"), VOCABULARY, DATA)
    assert run_dir.parent == tmp_path
    assert re.fullmatch(r"\d{8}-\d{6}-seed-[0-9a-f]{6}", run_dir.name)
    assert sorted(path.name for path in tmp_path.iterdir()) == [run_dir.name]  # no staging folder left
    info = store.load(run_dir.name)
    assert info.status == "running" and info.broken is None  # this process is alive
    assert info.config == preset("seed") and info.data == DATA
    assert info.history == {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    assert read_vocabulary(run_dir) == VOCABULARY
    record = json.loads((run_dir / "run.json").read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()


def test_run_ids_are_unique_and_listed_newest_name_first(tmp_path):
    store = RunStore(tmp_path)
    made = [store.create(preset("book-lstm"), VOCABULARY, DATA).name for _ in range(5)]
    assert len(set(made)) == 5
    assert all("-book-lstm-" in name for name in made)
    assert [run.run_id for run in store.list()] == sorted(made, reverse=True)  # newest first


def test_a_finished_run_reads_back_whole(tmp_path):
    run_dir = finished_run(RunStore(tmp_path))
    info = read_run(run_dir)
    assert info.status == "finished" and info.broken is None and info.has_model
    assert info.epochs_done == 2 and info.epochs_planned == 10
    assert info.metrics["test_accuracy"] == 0.8 and info.finished is not None


def test_json_writes_are_atomic(tmp_path):
    path = tmp_path / "history.json"
    runs.write_json(path, {"loss": [1.0]})
    # A write that fails half-way (here: an object JSON cannot hold) leaves the old file and no temporary file.
    with pytest.raises(TypeError):
        runs.write_json(path, {"loss": [1.0, object()]})
    assert json.loads(path.read_text()) == {"loss": [1.0]}
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_written_files_get_normal_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    run_dir = finished_run(RunStore(tmp_path))
    modes = {path.name: path.stat().st_mode & 0o777 for path in run_dir.iterdir()}
    assert modes == {name: 0o666 & ~umask for name in modes}, modes


def test_a_write_into_a_missing_folder_is_one_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"^cannot write in .*gone"):
        runs.write_json(tmp_path / "gone" / "history.json", {})


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: (d / "history.json").write_text('{"loss": [0.6, 0.'), "history.json is missing or corrupt"),
        (lambda d: (d / "history.json").write_text('{"loss": "many"}'), "history.json is missing or corrupt"),
        (lambda d: (d / "model.keras").write_bytes((d / "model.keras").read_bytes()[:200]), "model.keras is truncated"),
        (lambda d: (d / "model.keras").unlink(), "model.keras is missing"),
        (lambda d: (d / "config.json").write_text("{}}"), "config.json is missing or corrupt"),
        (lambda d: (d / "config.json").write_text('{"model": {"units": 0}}'), "config.json is invalid"),
        (lambda d: (d / "vocab.json").unlink(), "vocab.json is missing or corrupt"),
        (lambda d: (d / "metrics.json").write_text("[1, 2]"), "metrics.json is corrupt"),
        (lambda d: (d / "run.json").write_bytes(b"\xff\xfe"), "run.json is missing or corrupt"),
    ],
)
def test_a_damaged_run_is_listed_as_broken_with_the_reason(tmp_path, damage, reason):
    store = RunStore(tmp_path)
    healthy = finished_run(store)
    damaged = finished_run(store)
    damage(damaged)
    listed = {run.run_id: run for run in store.list()}
    assert listed[healthy.name].broken is None
    assert reason in listed[damaged.name].broken
    assert not listed[damaged.name].has_model or "model.keras" not in reason


def test_a_half_written_folder_and_stray_files_do_not_break_the_listing(tmp_path):
    store = RunStore(tmp_path)
    finished_run(store)
    (tmp_path / "20990101-000000-seed-aaaaaa").mkdir()  # a folder with nothing in it
    (tmp_path / "notes.txt").write_text("not a run")
    (tmp_path / ".creating-20990101-000000-seed-bbbbbb").mkdir()  # a create() that was killed
    listed = store.list()
    assert len(listed) == 2
    empty = listed[0]
    assert empty.status == "failed" and "run.json is missing" in empty.broken and empty.config is None


def test_listing_a_missing_root_gives_nothing(tmp_path):
    assert RunStore(tmp_path / "never-made").list() == []


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    "record_change",
    [
        {"pid": "dead"},
        {"host": "another-machine"},
        {"process_start": "1"},  # the pid is alive but belongs to a process started later: the pid was reused
    ],
)
def test_a_running_run_whose_process_is_gone_is_failed(tmp_path, record_change):
    store = RunStore(tmp_path)
    run_dir = store.create(preset("seed"), VOCABULARY, DATA)
    history = {"loss": [0.6, 0.5], "accuracy": [0.6, 0.7], "val_loss": [0.6, 0.55], "val_accuracy": [0.6, 0.7]}
    runs.write_history(run_dir, history)
    record = json.loads((run_dir / "run.json").read_text())
    record.update({key: _dead_pid() if value == "dead" else value for key, value in record_change.items()})
    runs.write_json(run_dir / "run.json", record)
    (info,) = store.list()
    assert info.status == "interrupted" and info.error == runs.DIED_MESSAGE and info.epochs_done == 2
    assert info.broken is None  # no model.keras yet is expected of a run that died mid-way


def test_a_running_run_of_a_live_process_is_running(tmp_path):
    run_dir = RunStore(tmp_path).create(preset("seed"), VOCABULARY, DATA)
    assert read_run(run_dir).status == "running"
    runs.set_status(run_dir, "cancelled")
    assert read_run(run_dir).status == "cancelled"
    with pytest.raises(ValueError, match="unknown run status"):
        runs.set_status(run_dir, "paused")


def test_delete_removes_a_run(tmp_path):
    store = RunStore(tmp_path)
    run_dir = finished_run(store)
    store.delete(run_dir.name)
    assert not run_dir.exists() and store.list() == []


def test_delete_refuses_anything_outside_the_root(tmp_path):
    store = RunStore(tmp_path / "runs")
    outside = finished_run(RunStore(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="refusing to delete"):
        store.delete(outside)
    with pytest.raises(ValueError, match="no run folder"):
        store.delete("../elsewhere")
    # A link inside the root that points outside it is not a run of this store either.
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="refusing to delete"):
        store.delete("link")
    assert outside.exists() and (outside / "model.keras").exists()


def test_delete_refuses_a_run_still_training(tmp_path):
    store = RunStore(tmp_path)
    run_dir = store.create(preset("seed"), VOCABULARY, DATA)
    with pytest.raises(ValueError, match="still training"):
        store.delete(run_dir.name)
    assert run_dir.exists()


def test_load_refuses_what_is_not_a_run(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="no run folder"):
        store.load("20990101-000000-seed-000000")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a run folder"):
        store.load("plain")


def test_an_unusable_root_is_one_clear_value_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = RunStore(blocker / "runs")
    with pytest.raises(ValueError, match=r"^cannot create the runs folder .*--runs or IMDB_RUNS$"):
        store.create(preset("seed"), VOCABULARY, DATA)


def test_a_read_only_root_is_one_clear_value_error():
    # Not even root may create files in /sys, so this holds for every user, unlike a chmod'ed folder.
    with pytest.raises(ValueError, match=r"^the runs folder /sys/kernel is not writable .*--runs or IMDB_RUNS$"):
        RunStore("/sys/kernel").create(preset("seed"), VOCABULARY, DATA)


def test_a_failing_create_leaves_nothing_half_written(tmp_path, monkeypatch):
    original = runs.write_json
    written = []

    def disk_full_at_the_vocabulary(path, data):
        written.append(path.name)
        if path.name == "vocab.json":
            raise ValueError(f"cannot write {path}: No space left on device")
        original(path, data)

    monkeypatch.setattr(runs, "write_json", disk_full_at_the_vocabulary)
    with pytest.raises(ValueError, match="No space left on device"):
        RunStore(tmp_path).create(preset("seed"), VOCABULARY, DATA)
    assert written == ["config.json", "vocab.json"]
    assert list(tmp_path.iterdir()) == []


def test_config_json_rebuilds_the_experiment(tmp_path):
    run_dir = RunStore(tmp_path).create(preset("book-gru"), VOCABULARY, DATA)
    assert ExperimentConfig.from_json((run_dir / "config.json").read_text()) == preset("book-gru")


# ---- checkpoints, partial runs and resuming ------------------------------------------------------------------------


def test_a_stopped_or_killed_run_is_partial_and_resumable_only_with_a_checkpoint(tmp_path):
    from core.runs.checkpoints import CHECKPOINT_DIR, STATE_NAME

    store = RunStore(tmp_path)
    run_dir = finished_run(store, epochs=2)
    assert read_run(run_dir).partial is None and not read_run(run_dir).resumable, "finished: nothing to resume"
    runs.set_status(run_dir, "cancelled")
    run = read_run(run_dir)
    assert run.partial == "partial: 2 of 10 epochs" and run.checkpoint_epoch is None and not run.resumable
    (run_dir / CHECKPOINT_DIR).mkdir()
    (run_dir / CHECKPOINT_DIR / STATE_NAME.format(epoch=1)).write_bytes(b"older")
    (run_dir / CHECKPOINT_DIR / STATE_NAME.format(epoch=2)).write_bytes(b"newer")
    (run_dir / CHECKPOINT_DIR / f".{STATE_NAME.format(epoch=3)}.x1y2.weights.h5").write_bytes(b"half written")
    run = read_run(run_dir)
    assert run.checkpoint_epoch == 2 and run.resumable, "a hidden temporary file is never a checkpoint"
    runs.set_failed_status(run_dir, "boom")
    assert read_run(run_dir).partial is None and not read_run(run_dir).resumable
    assert runs.partial_note(10, 10, "cancelled") is None, "stopped after its last epoch: complete"


def test_mark_resumed_cuts_the_history_and_takes_the_run_up_in_this_process(tmp_path):
    run_dir = finished_run(RunStore(tmp_path), epochs=3)
    runs.set_status(run_dir, "cancelled")
    (run_dir / "model.onnx").write_bytes(b"exported from the partial model")
    history = {key: values[:2] for key, values in read_run(run_dir).history.items()}
    runs.mark_resumed(run_dir, 2, history)
    run = read_run(run_dir)
    assert run.status == "running" and run.epochs_done == 2 and run.metrics is None and run.finished is None
    assert not (run_dir / "model.onnx").exists(), "a file exported from the partial model would outlive it"
    record = json.loads((run_dir / runs.RUN_FILE).read_text())
    assert record["pid"] == os.getpid() and record["resumed"][0]["from_epoch"] == 2
    assert runs.live_pid(run_dir) == os.getpid()
    runs.set_status(run_dir, "finished")
    assert runs.live_pid(run_dir) is None


def _live_run(store: RunStore):
    """A run whose training process is alive (this one), its files already there."""
    run_dir = finished_run(store)
    record = json.loads((run_dir / "run.json").read_text())
    record.update(status="running", pid=os.getpid(), host=socket.gethostname(), finished=None)
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


def _broken_run(store: RunStore):
    run_dir = finished_run(store)
    (run_dir / "model.keras").write_bytes(b"PK\x03\x04 cut short")
    return run_dir


def _run_without_weights(store: RunStore):
    """A training whose process died after one epoch, before it saved any weights."""
    run_dir = store.create(preset("seed"), VOCABULARY, DATA)
    runs.write_history(run_dir, {"loss": [0.6], "accuracy": [0.7], "val_loss": [0.5], "val_accuracy": [0.8]})
    record = json.loads((run_dir / "run.json").read_text())
    record.update(pid=2**22 + 1)  # a pid no process has: read as interrupted
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_live_run, "is still training: wait for it to end before you {action} it"),
        (_broken_run, "cannot be used to {action}: model.keras"),
        (_run_without_weights, "ended (interrupted) after 1 epoch without saving its weights, so there is nothing to"),
    ],
)
def test_one_rule_says_whether_a_runs_model_can_be_used_and_every_use_says_it_alike(tmp_path, make, reason):
    from core.evaluation import comparable_problem, evaluate
    from core.export import export_run
    from dashboard.widgets import run_problem

    run_dir = make(RunStore(tmp_path))
    run = read_run(run_dir)
    uses = {"evaluate": lambda: evaluate(str(run_dir))}
    if (run_dir / "model.keras").exists():  # without it, export says first that the folder is not a finished run
        uses["export"] = lambda: export_run(run_dir)
    for action, use in uses.items():
        said = run.why_unusable(action)
        assert said and said.startswith(f"run {run.run_id} ") and reason.format(action=action) in said, said
        with pytest.raises(ValueError) as refused:
            use()
        assert str(refused.value) == said
    # The pages say the same line, capitalized and escaped for markdown.
    assert run_problem(run, "look inside").replace("\\", "") == f"R{run.why_unusable('look inside')[1:]}."
    # Compare is stricter (finished or stopped runs only, and a classifier on top), never looser.
    assert comparable_problem(run) is not None
    if run.status == "finished":
        assert comparable_problem(run) == run.why_unusable("compare")
