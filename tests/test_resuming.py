"""Checkpoints and --resume: a real training killed with kill -9, resumed to the end; every refusal leaves the run
folder as it was; a failed checkpoint write leaves the previous one usable; a partial run evaluates and exports."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.runs import checkpoints
from core.runs import store as runs
from core.runs.checkpoints import checkpoint_epoch, latest_state
from core.cli import main
from core.runs.store import RunStore, read_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.small_inputs import TINY_CONFIG, build_archive  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
EPOCHS = 12
# Batches of two make an epoch last long enough (a fraction of a second) to be killed after a given one.
SLOW_CONFIG = {**TINY_CONFIG, "train": {"batch_size": 2, "epochs": EPOCHS, "learning_rate": 0.01}}


def folder_digest(path: Path) -> str:
    """A hash of every file's name and bytes under path: equal digests mean the folder was not changed."""
    digest = hashlib.sha256()
    for entry in sorted(path.rglob("*")):
        digest.update(str(entry.relative_to(path)).encode())
        if entry.is_file():
            digest.update(entry.read_bytes())
    return digest.hexdigest()


def assert_one_error_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def cli(env: dict, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *argv], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A real CLI training killed with kill -9 once its second epoch is checkpointed; a copy kept before resuming."""
    folder = tmp_path_factory.mktemp("resume")
    archive = build_archive(folder / "aclImdb_v1.tar.gz", per_class=60)
    config = folder / "slow.json"
    config.write_text(json.dumps(SLOW_CONFIG))
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "IMDB_CACHE": str(folder / "cache"), "IMDB_RUNS": str(folder / "x")}
    root = folder / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--config", str(config), "--data", str(archive), "--runs", str(root)],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = RunStore(root).list()
            if found and (checkpoint_epoch(found[0].path) or 0) >= 2:
                break
            assert process.poll() is None, "the training ended before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("no second epoch within 180 s")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    before = process.stdout.read()
    (run,) = RunStore(root).list()
    copy = folder / "copies" / run.run_id
    shutil.copytree(run.path, copy)
    return {"folder": folder, "archive": archive, "env": env, "run": run.path, "copy": copy, "stdout": before}


def epoch_numbers(stdout: str) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in stdout.splitlines() if line.startswith("epoch ")]


@pytest.mark.slow
def test_a_killed_training_resumes_to_a_finished_run_without_a_gap_or_a_repeat(killed):
    run = read_run(killed["run"])
    done = checkpoint_epoch(run.path)
    assert run.status == "interrupted" and done >= 2 and run.resumable
    assert run.partial == f"partial: {run.epochs_done} of {EPOCHS} epochs"
    kept = {key: values[:done] for key, values in run.history.items()}

    resumed = cli(killed["env"], "train", "--resume", str(run.path))
    assert resumed.returncode == 0, resumed.stderr
    before, after = epoch_numbers(killed["stdout"]), epoch_numbers(resumed.stdout)
    print(f"epochs before the kill: {before}; checkpoint {done}; epochs after --resume: {after}")
    assert before[:done] == list(range(1, done + 1))
    assert after == list(range(done + 1, EPOCHS + 1)), "the resumed run starts after its checkpoint"
    assert "status: finished" in resumed.stdout and resumed.stdout.strip().endswith(str(run.path))

    run = read_run(run.path)
    assert run.status == "finished" and run.broken is None and run.partial is None
    assert all(len(values) == EPOCHS for values in run.history.values()), "every epoch once"
    assert {key: values[:done] for key, values in run.history.items()} == kept, "the finished epochs are kept"
    assert run.metrics["resumed_from_epoch"] == done and run.metrics["epochs_run"] == EPOCHS
    assert run.metrics["test_accuracy"] > 0.9 and run.metrics["test_n"] == 120
    assert json.loads((run.path / runs.RUN_FILE).read_text())["resumed"][0]["from_epoch"] == done
    assert checkpoint_epoch(run.path) == EPOCHS

    from core.training.trainer import load_run_model

    model = load_run_model(run)
    assert model.predict(np.zeros((1, 20), dtype="int32"), verbose=0).shape == (1, 1)


@pytest.mark.slow
def test_an_interrupted_run_evaluates_and_exports_its_best_epoch_marked_partial(killed, tmp_path):
    copy = tmp_path / "runs" / killed["copy"].name
    shutil.copytree(killed["copy"], copy)
    run = read_run(copy)
    assert run.status == "interrupted" and run.has_model, "model.keras holds the best epoch so far"
    evaluated = cli(killed["env"], "evaluate", str(copy), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["n"] == 120
    assert f"is {run.partial}" in evaluated.stderr

    from core.export.convert import export_run
    from core.export.graph import model_props

    import onnx

    out = tmp_path / "partial.onnx"
    export_run(copy, out)
    metrics = json.loads(model_props(onnx.load(str(out)))["metrics"])
    assert metrics["partial"] == run.partial


@pytest.mark.slow
def test_resuming_a_finished_run_a_run_without_checkpoint_or_data_or_while_training_changes_nothing(
    killed, tmp_path, capsys
):
    root = tmp_path / "runs"
    interrupted = root / killed["copy"].name
    shutil.copytree(killed["copy"], interrupted)

    finished = root / "20260101-000000-finished"
    shutil.copytree(killed["copy"], finished)
    record = json.loads((finished / runs.RUN_FILE).read_text())
    (finished / runs.RUN_FILE).write_text(json.dumps({**record, "status": "finished"}))

    no_checkpoint = root / "20260101-000001-nocheckpoint"
    shutil.copytree(killed["copy"], no_checkpoint)
    shutil.rmtree(no_checkpoint / checkpoints.CHECKPOINT_DIR)

    data_gone = root / "20260101-000002-datagone"
    shutil.copytree(killed["copy"], data_gone)
    record["data"]["path"] = str(tmp_path / "moved-away.tar.gz")
    (data_gone / runs.RUN_FILE).write_text(json.dumps(record))

    cases = [
        (finished, ("is finished",)),
        (no_checkpoint, ("has no checkpoint",)),
        (data_gone, ("moved-away.tar.gz", "is gone")),
        (tmp_path / "nowhere", ("no run folder",)),
    ]
    for path, fragments in cases:
        digest = folder_digest(root)
        status = main(["train", "--resume", str(path)])
        assert_one_error_line(status, capsys.readouterr().err, *fragments)
        assert folder_digest(root) == digest, path.name

    # Another training holds the runs folder: refused before anything is written.
    digest = folder_digest(interrupted)
    with RunStore(root).training_lock():
        status = main(["train", "--resume", str(interrupted)])
    assert_one_error_line(status, capsys.readouterr().err, "another training is running")
    assert folder_digest(interrupted) == digest

    # --resume takes the run's own settings: other settings are a mistake, not silently dropped.
    status = main(["train", "--resume", str(interrupted), "--epochs", "3"])
    assert_one_error_line(status, capsys.readouterr().err, "drop --epochs")
    assert folder_digest(interrupted) == digest


# ---- atomic writes -------------------------------------------------------------------------------------------------


def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(), loss="mse")
    model.fit(np.ones((8, 4)), np.ones(8), verbose=0)
    return model


def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_one_usable(tmp_path, monkeypatch):
    model = _tiny_model()
    callback = checkpoints.state_callback(tmp_path)
    callback.set_model(model)
    callback.on_epoch_end(0)  # epoch 1 checkpointed
    saved = [weights.copy() for weights in model.get_weights()]
    optimizer_saved = [variable.numpy().copy() for variable in model.optimizer.variables]
    assert latest_state(tmp_path)[0] == 1

    model.fit(np.ones((8, 4)), np.zeros(8), verbose=0)  # the weights move on

    def crash(path, overwrite=True):
        Path(path).write_bytes(b"half a weights file")  # a write cut short...
        raise OSError(28, "No space left on device")  # ...by a full disk

    monkeypatch.setattr(model, "save_weights", crash)
    with pytest.raises(ValueError, match=r"epoch-0002\.weights\.h5: No space left on device"):
        callback.on_epoch_end(1)
    epoch, path = latest_state(tmp_path)
    assert epoch == 1 and sorted(entry.name for entry in path.parent.iterdir()) == ["epoch-0001.weights.h5"]

    fresh = _tiny_model()
    fresh.load_weights(path)
    for loaded, expected in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(loaded, expected)
    for variable, expected in zip(fresh.optimizer.variables, optimizer_saved):
        np.testing.assert_array_equal(variable.numpy(), expected)  # the optimizer state too, to go on from


def test_the_best_model_is_renamed_into_place_and_a_crashed_write_is_never_taken_for_it(tmp_path):
    model = _tiny_model()
    callback = checkpoints.best_model_callback(tmp_path, runs.MODEL_FILE)
    callback.set_model(model)
    (tmp_path / checkpoints.BEST_STAGING).write_bytes(b"left by a killed process")
    callback.on_train_begin()
    assert not (tmp_path / checkpoints.BEST_STAGING).exists()
    callback.on_epoch_end(0, {"val_loss": 0.5})
    assert runs.model_problem(tmp_path / runs.MODEL_FILE) is None
    first = (tmp_path / runs.MODEL_FILE).read_bytes()
    callback.on_epoch_end(1, {"val_loss": 0.7})  # worse: the best model stays
    assert (tmp_path / runs.MODEL_FILE).read_bytes() == first
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [runs.MODEL_FILE]


def test_a_best_model_write_that_fails_keeps_the_previous_best(tmp_path, monkeypatch):
    model = _tiny_model()
    callback = checkpoints.best_model_callback(tmp_path, runs.MODEL_FILE)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 0.5})
    first = (tmp_path / runs.MODEL_FILE).read_bytes()

    def crash(path, overwrite=True, **options):
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(ValueError, match=r"model\.keras: No space left on device"):
        callback.on_epoch_end(1, {"val_loss": 0.4})
    assert (tmp_path / runs.MODEL_FILE).read_bytes() == first
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [runs.MODEL_FILE]
