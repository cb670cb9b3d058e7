"""Training in its own process: start, follow through the run folder, Stop by SIGTERM, kill -9 seen as interrupted
and resumed, one training at a time across processes, a launch that fails explained in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.training import process as training_process
from core.config import ExperimentConfig
from core.runs.store import RunStore, read_run
from core.training.process import LaunchSlot
from core.training.process import current_training as current  # the training a store shows now

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.small_inputs import TINY_CONFIG, build_archive  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("process") / "aclImdb_v1.tar.gz", per_class=60)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))


def experiment(epochs: int, batch_size: int = 2) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {**TINY_CONFIG, "train": {"batch_size": batch_size, "epochs": epochs, "learning_rate": 0.01}}
    )


def wait_for(condition, seconds: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {seconds:.0f} s")


def finish(launch, seconds: float = 180.0) -> None:
    try:
        launch.process.wait(timeout=seconds)
    finally:
        if launch.process.poll() is None:
            launch.process.kill()
            launch.process.wait()


@pytest.mark.slow
def test_a_killed_training_process_shows_as_interrupted_within_seconds_and_resumes_to_finished(archive, tmp_path):
    store = RunStore(tmp_path / "runs")
    slot = LaunchSlot()
    launch = slot.start(experiment(12), store, data=str(archive))
    try:
        state = wait_for(
            lambda: (s := current(store, slot.launch)) is not None and s.epochs_done >= 2 and s, what="two epochs"
        )
        assert state.active and state.status == "running" and state.run_dir is not None
        progress = json.loads((state.run_dir / training_process.PROGRESS_FILE).read_text())
        assert progress["epochs"] == 12 and 1 <= progress["epoch"] <= 12 and 0 <= progress["fraction"] <= 1
        # One training at a time: a second start is refused, naming the run and its epoch.
        with pytest.raises(ValueError, match=rf"already running \(run {state.run_dir.name}, epoch \d+ of 12\)"):
            slot.start(experiment(1), store, data=str(archive))
        os.kill(launch.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        ended = wait_for(lambda: (s := current(store, slot.launch)) is not None and not s.active and s, 10, "interrupted")
        print(f"seen as interrupted {time.monotonic() - killed_at:.2f} s after kill -9")
    finally:
        finish(launch, 30)
    assert ended.status == "interrupted" and ended.run.resumable
    done = ended.run.checkpoint_epoch

    again = slot.resume(ended.run_dir)
    finish(again)
    assert again.process.returncode == 0, again.log.read_text()
    run = read_run(ended.run_dir)
    assert run.status == "finished" and run.epochs_done == 12 and run.metrics["resumed_from_epoch"] == done
    assert current(store, slot.launch).status == "finished"


@pytest.mark.slow
def test_stop_sends_sigterm_and_the_run_is_kept_as_cancelled(archive, tmp_path):
    store = RunStore(tmp_path / "runs")
    launch = training_process.start_training(experiment(500), store, data=str(archive))
    try:
        state = wait_for(lambda: (s := current(store, launch)) is not None and s.epochs_done >= 1 and s, what="an epoch")
        assert training_process.stop_training(state.run_dir, launch)
        launch.process.wait(timeout=60)
    finally:
        finish(launch, 30)
    assert launch.process.returncode == 0, launch.log.read_text()
    run = read_run(state.run_dir)
    assert run.status == "cancelled" and 1 <= run.epochs_done < 500 and run.has_model
    assert run.partial == f"partial: {run.epochs_done} of 500 epochs" and run.metrics["partial"] == run.partial
    assert run.resumable
    assert not training_process.stop_training(state.run_dir, launch), "nothing left to stop"


@pytest.mark.slow
def test_a_training_started_from_the_command_line_is_seen_and_blocks_another(archive, tmp_path):
    root = tmp_path / "runs"
    config = tmp_path / "slow.json"
    config.write_text(json.dumps(experiment(500).to_dict()))
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--config", str(config), "--data", str(archive), "--runs", str(root)],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        state = wait_for(lambda: (s := current(RunStore(root))) is not None and s.epochs_done >= 1 and s, what="an epoch")
        assert state.active and state.epochs_total == 500
        with pytest.raises(ValueError, match=rf"already running \(run {state.run_dir.name}, epoch \d+ of 500\)"):
            LaunchSlot().start(experiment(1), RunStore(root), data=str(archive))
        process.send_signal(signal.SIGTERM)  # what the page's Stop sends
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert read_run(state.run_dir).status == "cancelled"


def test_a_launch_that_fails_before_its_run_is_explained_in_one_line(tmp_path):
    store = RunStore(tmp_path / "runs")
    launch = training_process.start_training(experiment(1), store, data=str(tmp_path / "missing.csv"))
    finish(launch, 120)
    state = current(store, launch)
    assert state.status == "failed" and not state.active and state.run_dir is None
    assert "missing.csv" in state.error and "\n" not in state.error
    assert store.list() == []


@pytest.mark.slow
def test_a_training_process_gets_no_admin_password_and_leaves_the_server_a_core(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_ADMIN_PASSWORD", "not for the trainer")
    monkeypatch.setenv("admin_password", "nor this copy")  # what Streamlit makes of a top-level secret
    store = RunStore(tmp_path / "runs")
    for _ in range(10):
        launch = training_process.start_training(experiment(1), store, data=str(tmp_path / "missing.csv"))
        try:
            environment = Path(f"/proc/{launch.process.pid}/environ").read_bytes().split(b"\0")
        finally:
            finish(launch, 120)
        if environment != [b""]:
            break  # a child that has already ended (its data is missing) shows an empty environment: start another
    variables = dict(item.split(b"=", 1) for item in environment if b"=" in item)
    assert b"PYTHONPATH" in variables, "the child's environment was read"
    assert b"IMDB_ADMIN_PASSWORD" not in variables and b"admin_password" not in variables
    # The server keeps a core of its own: TensorFlow in the child computes on the others.
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        assert variables[b"TF_NUM_INTRAOP_THREADS"] == str(cores - 1).encode()
