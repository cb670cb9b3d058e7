"""A training in its own process: `python -m core train` started detached, followed through its run folder, stopped
with a signal. The dashboard trains this way so that a training never shares the web server's interpreter or fate.

Both sides live here: the child's (a progress file written every half second, SIGTERM turned into a clean stop) and
the parent's (start, follow, stop). The run folder is the whole contract between them: run.json (status, pid),
history.json (finished epochs) and progress.json (the epoch in progress).
"""

from __future__ import annotations

import json
import os
import signal
# The one child this module starts is this interpreter running `-m core train` with arguments built here, never a
# shell: the user's values (a path, a number) travel as single arguments and a config as a file (nosec B404).
import subprocess  # nosec B404
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.runs import store as runs
from core.config import ExperimentConfig
from core.training.progress import EpochClock, JobSnapshot
from core.runs.store import RunStore, read_run

PROGRESS_FILE = "progress.json"
# Hidden beside the runs: each launch's config and output, kept a day for whoever wants to read why one failed.
LAUNCH_DIR = ".launches"
LAUNCH_KEEP_SECONDS = 24 * 3600
PROJECT = Path(__file__).resolve().parents[2]  # the repository: core/training/process.py
RUN_FOLDER_PREFIX = "run folder: "  # the line `python -m core train` prints when its run folder exists
TRAINING_NICENESS = 10  # how much lower than the server's the training process's scheduling priority is


# ---- the child: the training process ----------------------------------------------------------------------------


class ProgressFile:
    """Writes run_dir/progress.json (epoch, share of it done, time left) atomically, at most every interval seconds
    and at every epoch end, for a parent that follows the training by reading files."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.run_dir: Path | None = None
        self.steps = 1
        self.epochs = 0
        self.clock = EpochClock()
        self.written_at = 0.0
        self.lock = threading.Lock()

    def run_created(self, run_dir: Path) -> None:
        from core.training.trainer import steps_per_epoch

        run = read_run(run_dir)
        self.run_dir = Path(run_dir)
        reviews = run.data.get("reviews")
        if run.config is not None:
            self.epochs = run.config.train.epochs
            if isinstance(reviews, int):
                self.steps = max(steps_per_epoch(reviews, run.config.train), 1)
        # Until the first batch reports, the step is being built: traced, and compiled with XLA on a long training
        # (1.3-3 s on the whole archive on the faster test CPU, more on slower ones), which "0% of its batches" would
        # not explain.
        with self.lock:
            self._write(run.epochs_done + 1, 0.0, None, None, preparing=True)

    def _write(
        self, epoch: int, fraction: float, per_batch: float | None, left: float | None, preparing: bool = False
    ) -> None:
        if self.run_dir is None:
            return
        progress = {
            "epoch": epoch,
            "epochs": self.epochs,
            "fraction": fraction,
            "seconds_per_batch": per_batch,
            "seconds_left_in_epoch": left,
            "preparing": preparing,
            "updated": time.time(),
        }
        try:
            runs.write_json(self.run_dir / PROGRESS_FILE, progress)
        except ValueError:
            pass  # progress is for people watching; the training goes on without it

    def batch(self, epoch: int, fraction: float) -> None:
        with self.lock:
            per_batch, left = self.clock.batch(epoch, fraction, self.steps)
            now = time.monotonic()
            if now - self.written_at >= self.interval or fraction >= 1.0:
                self.written_at = now
                self._write(epoch, fraction, per_batch, left)

    def epoch_end(self, epoch: int) -> None:
        with self.lock:
            self.clock.epoch_end()
            self._write(epoch, 1.0, None, None)


@contextmanager
def stop_on_terminate(cancel: threading.Event, fitting: threading.Event) -> Iterator[None]:
    """Within the block, SIGTERM is a stop: while fitting, it sets cancel (the run ends after its batch, kept as
    cancelled); before that (loading data), it ends the command as a Ctrl-C would. This is how a parent's Stop reaches
    the training. Only the main thread can take signals; elsewhere the block runs unchanged."""

    def terminate(signum, frame):
        cancel.set()
        if not fitting.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the parent: start, follow, stop ----------------------------------------------------------------------------


@dataclass
class Launch:
    """One training process a parent started: the process, its output file, and its run folder once known."""

    process: subprocess.Popen
    log: Path
    run_dir: Path | None = None
    started: float = field(default_factory=time.time)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None  # poll also reaps a child that died, so it leaves no zombie

    def find_run_dir(self) -> Path | None:
        """The run folder, from the line the training prints when it creates it."""
        if self.run_dir is None:
            for line in _log_lines(self.log):
                if line.startswith(RUN_FOLDER_PREFIX):
                    self.run_dir = Path(line[len(RUN_FOLDER_PREFIX) :].strip())
        return self.run_dir

    def error(self) -> str:
        """Why a process that made no run ended: its `error:` line, else its exit status."""
        errors = [line for line in _log_lines(self.log) if line.startswith("error: ")]
        if errors:
            return errors[-1].removeprefix("error: ")
        return f"the training process ended with status {self.process.returncode} before creating its run"


def _log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _launch_folder(store: RunStore) -> Path:
    store.check_writable()
    folder = store.root / LAUNCH_DIR
    folder.mkdir(exist_ok=True)
    cutoff = time.time() - LAUNCH_KEEP_SECONDS
    for entry in folder.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
        except OSError:
            pass
    return folder


def _launch(
    arguments: list[str], store: RunStore, *, config: dict | None = None, run_dir: Path | None = None
) -> Launch:
    """Start `python -m core train` with arguments (config, when given, as a --config file beside its log)."""
    folder = _launch_folder(store)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    log = folder / f"{stamp}.log"
    search_path = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    # The admin password (ours, or the copy Streamlit makes of top-level secrets) has no business in a training.
    environment = {
        name: value for name, value in os.environ.items() if name not in ("IMDB_ADMIN_PASSWORD", "admin_password")
    }
    environment["PYTHONPATH"] = search_path
    # The server keeps a core of its own: TensorFlow reads these, so a training started from the dashboard computes on
    # the other cores and a page or a Classify click never waits for a core (niceness alone left clicks 2-3x slower).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores > 1:
        environment.setdefault("TF_NUM_INTRAOP_THREADS", str(cores - 1))
        environment.setdefault("TF_NUM_INTEROP_THREADS", str(cores - 1))
    environment["PYTHONUNBUFFERED"] = "1"  # the run-folder line reaches the log at once
    if config is not None:
        config_file = folder / f"{stamp}.json"
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        arguments = ["--config", str(config_file), *arguments]
    with open(log, "wb") as output:
        # A session of its own: the training outlives the server that started it, and no terminal's Ctrl-C or
        # hang-up meant for the server reaches it.
        process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "core", "train", *arguments],
            cwd=PROJECT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The training yields the processor to the web server that started it: pages stay quick on a small machine
        # while it trains. Set within milliseconds of the start, before TensorFlow makes its threads, which inherit it.
        os.setpriority(os.PRIO_PROCESS, process.pid, TRAINING_NICENESS)
    except OSError:
        pass  # a process that ended already, or a system that refuses: it then trains at normal priority
    return Launch(process, log, run_dir)


def start_training(
    experiment: ExperimentConfig, store: RunStore, *, limit: int | None = None, data: str | None = None
) -> Launch:
    """Start `python -m core train` on experiment (its epochs included) into store, on data (None: IMDB_DATA, else
    Keras), in its own process; ValueError when another training holds the runs folder."""
    with store.training_lock():
        pass  # refuse at once, with the lock's own message, rather than from the child a few seconds later
    # Absolute paths: the child runs in the project folder, which need not be the caller's working folder.
    arguments = ["--runs", os.path.abspath(store.root)]
    if limit:
        arguments += ["--limit", str(limit)]
    if data:
        arguments += ["--data", os.path.abspath(data)]
    return _launch(arguments, store, config=experiment.to_dict())


def start_resume(run_dir: str | Path) -> Launch:
    """Start `python -m core train --resume run_dir` in its own process, after the same checks the command makes."""
    from core.training.resuming import resume_problem

    run_dir = Path(os.path.abspath(run_dir))
    problem = resume_problem(read_run(run_dir))
    if problem:
        raise ValueError(problem)
    store = RunStore(run_dir.parent)
    with store.training_lock():
        pass
    return _launch(["--resume", str(run_dir)], store, run_dir=run_dir)


def follow(run_dir: str | Path) -> JobSnapshot:
    """Where the training of run_dir stands, read from its folder (its status tells a dead process from a live one)."""
    run = read_run(run_dir)
    epochs = run.epochs_planned or 0
    progress = runs.read_json(Path(run_dir) / PROGRESS_FILE)
    progress = progress if isinstance(progress, dict) else {}
    active = run.status == "running"
    epoch = progress.get("epoch") if isinstance(progress.get("epoch"), int) else run.epochs_done + 1
    fraction = progress.get("fraction") if isinstance(progress.get("fraction"), (int, float)) else 0.0
    if epoch <= run.epochs_done and active:
        epoch, fraction = run.epochs_done + 1, 0.0  # between epochs: the next one has not reported yet
    preparing = active and progress.get("preparing") is True and epoch == run.epochs_done + 1
    return JobSnapshot(
        status=run.status,
        run_dir=run.path,
        epochs_done=run.epochs_done,
        epochs_total=epochs,
        history=run.history,
        epoch=min(epoch, epochs) if epochs else epoch,
        epoch_fraction=float(fraction),
        seconds_per_batch=progress.get("seconds_per_batch") if active else None,
        seconds_left_in_epoch=progress.get("seconds_left_in_epoch") if active else None,
        error=run.error,
        run=None if active else run,
        preparing=preparing,
    )


def _starting(epochs: int) -> JobSnapshot:
    return JobSnapshot("starting", None, 0, epochs, {}, 0, 0.0, None, None, None, None)


def _ended_since(state: JobSnapshot, started: float) -> bool:
    """The run of state ended after started (a time.time()), so in the launch that started then."""
    finished = state.run.finished if state.run is not None else None
    try:
        # The record keeps whole seconds.
        return finished is not None and datetime.fromisoformat(finished).timestamp() >= int(started)
    except ValueError:
        return False


def current_training(store: RunStore, launch: Launch | None = None) -> JobSnapshot | None:
    """The training to show: the one running in store, whoever started it (another tab, the command line), else the
    latest launch of this caller as it ended; None when there is neither."""
    run_dir = launch.find_run_dir() if launch is not None else None
    ours = follow(run_dir) if run_dir is not None and (run_dir / runs.RUN_FILE).exists() else None
    if ours is not None and ours.active:
        return ours  # the common case while following: one folder read, not the whole store
    running = next((run for run in store.list() if run.status == "running"), None)
    if running is not None:
        return follow(running.path)
    if launch is None:
        return None
    if launch.alive:
        if ours is not None and _ended_since(ours, launch.started):
            return ours  # its run has ended: the process is only writing its last lines
        # Loading data, or taking up a resumed run (which still reads as it ended before).
        return _starting(ours.epochs_total if ours is not None else 0)
    if ours is not None:
        return ours
    return JobSnapshot("failed", None, 0, 0, {}, 0, 0.0, None, None, launch.error(), None)


class LaunchSlot:
    """The latest training process a server started, shared by its sessions: one training at a time, also while a
    process is still loading its data (before it takes the runs folder's lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._launch: Launch | None = None

    @property
    def launch(self) -> Launch | None:
        return self._launch

    def _refuse_if_busy(self, store: RunStore) -> None:
        state = current_training(store, self._launch)
        if state is not None and state.active:
            where = "starting"
            if state.run_dir is not None:
                where = f"run {state.run_dir.name}, epoch {max(state.epoch, 1)} of {state.epochs_total}"
            raise ValueError(f"a training is already running ({where}); wait for it or stop it on the Train page")

    def start(self, experiment: ExperimentConfig, store: RunStore, **options) -> Launch:
        """start_training(experiment, store, **options), or ValueError while a training runs or starts."""
        with self._lock:
            self._refuse_if_busy(store)
            self._launch = start_training(experiment, store, **options)
            return self._launch

    def resume(self, run_dir: str | Path) -> Launch:
        """start_resume(run_dir), or ValueError while a training runs or starts, or when the run cannot resume."""
        with self._lock:
            self._refuse_if_busy(RunStore(Path(run_dir).parent))
            self._launch = start_resume(run_dir)
            return self._launch


def stop_training(run_dir: str | Path | None, launch: Launch | None = None) -> bool:
    """Ask the training of run_dir (else the launch still starting) to stop: SIGTERM, which the training turns into
    a cancel after its current batch. False when there is no live process to ask."""
    pid = runs.live_pid(Path(run_dir)) if run_dir is not None else None
    if pid is None and launch is not None and launch.alive:
        pid = launch.process.pid
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True
