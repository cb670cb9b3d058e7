"""A training on a background thread that a UI can poll and stop, one training at a time, and the clock both it and
the training process (core.training.process) use to say how long an epoch has left.

The dashboard trains in a child process (core.training.process); this thread job stays for library users who want a
training inside their own process (a notebook, a script) and for the tests of the training loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from core.config import ModelConfig, TrainConfig
from core.data.load import Dataset
from core.errors import first_line
from core.runs.store import RunInfo, RunStore
from core.training.train import TrainingCallbacks, steps_per_epoch, train

MIN_TIMED_BATCHES = 3  # batches an epoch must have run before its time left is estimated


@dataclass(frozen=True)
class JobSnapshot:
    """Where a training job stands, copied under a lock so a reader never sees it half-updated."""

    status: str  # starting, running, finished, cancelled or failed
    run_dir: Path | None  # None until the run folder exists
    epochs_done: int
    epochs_total: int
    history: dict  # {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]} so far
    epoch: int  # the epoch in progress, from 1; 0 before the first batch
    epoch_fraction: float  # share of the current epoch's batches done
    seconds_per_batch: float | None  # measured in the current epoch, its first batch left out
    seconds_left_in_epoch: float | None  # training batches only; validation comes after
    error: str | None
    run: RunInfo | None  # the run as saved, once training has ended

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def progress_text(self) -> str:
        """Where the training stands in one line for people: the epoch, its share done, the time left in it."""
        if self.status == "starting":
            return "Starting: loading TensorFlow and building the model..."
        text = f"Epoch {max(self.epoch, 1)} of {self.epochs_total}: {self.epoch_fraction:.0%} of its batches"
        if self.seconds_left_in_epoch is not None and self.epoch_fraction < 1.0:
            left = self.seconds_left_in_epoch
            text += f", about {left:,.0f} s left" if left >= 1.0 else ", under a second left"
            text += " in this epoch"
        elif self.epoch_fraction >= 1.0:
            text += ", validating"
        return text


class EpochClock:
    """Times the epoch in progress from batch reports, to say how long it has left (training batches only)."""

    def __init__(self) -> None:
        self._epoch_clock: tuple[int, float, int] | None = None  # epoch, and the time and batch count it is timed from
        self._last_epoch_end: float | None = None

    def batch(self, epoch: int, fraction: float, steps: int) -> tuple[float | None, float | None]:
        """Seconds per batch and seconds left in the epoch after a report that fraction of epoch is done."""
        now = time.perf_counter()
        batches = round(fraction * steps)
        if self._epoch_clock is None or self._epoch_clock[0] != epoch:
            # An epoch after the first starts when the one before it ended (its validation included). The first is
            # timed from the first batch seen, so that graph tracing does not count as training speed.
            if self._last_epoch_end is not None:
                self._epoch_clock = (epoch, self._last_epoch_end, 0)
            else:
                self._epoch_clock = (epoch, now, batches)
        _, start_time, start_batches = self._epoch_clock
        timed = batches - start_batches
        if timed < MIN_TIMED_BATCHES:
            # Too few batches for a rate (and callbacks may arrive in bursts): say nothing rather than "0 s left".
            return None, None
        per_batch = (now - start_time) / timed
        return per_batch, per_batch * max(steps - batches, 0)

    def epoch_end(self) -> None:
        self._last_epoch_end = time.perf_counter()


class TrainingJob:
    """train() on a daemon thread; snapshot() to follow it, stop() to end it after the current batch."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        dataset: Dataset,
        *,
        store: RunStore | None = None,
        limit: int | None = None,
    ) -> None:
        self._arguments = (model_config, train_config, dataset)
        self._options = {"store": store, "limit": limit}
        reviews = min(limit, len(dataset.train)) if limit else len(dataset.train)
        self._steps = max(steps_per_epoch(reviews, train_config), 1)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._state = JobSnapshot("starting", None, 0, train_config.epochs, {}, 0, 0.0, None, None, None, None)
        self._clock = EpochClock()
        self._thread = threading.Thread(target=self._run, name="training", daemon=True)

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the training to end after the batch in progress; the run is kept as cancelled."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._state

    def _update(self, **changes) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _on_run_created(self, run_dir: Path) -> None:
        self._update(run_dir=run_dir, status="running")

    def _on_batch_end(self, epoch: int, fraction: float) -> None:
        per_batch, left = self._clock.batch(epoch, fraction, self._steps)
        self._update(epoch=epoch, epoch_fraction=fraction, seconds_per_batch=per_batch, seconds_left_in_epoch=left)

    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        with self._lock:
            history = {key: list(values) for key, values in self._state.history.items()}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            self._state = replace(self._state, history=history, epochs_done=epoch, epoch_fraction=1.0)
        self._clock.epoch_end()

    def _run(self) -> None:
        callbacks = TrainingCallbacks(
            on_run_created=self._on_run_created,
            on_epoch_end=self._on_epoch_end,
            on_batch_end=self._on_batch_end,
            cancel=self._cancel,
        )
        try:
            run = train(*self._arguments, callbacks, **self._options)
        except Exception as error:  # the page shows it; the run folder already says failed
            message = first_line(error)
            self._update(status="failed", error=message)
            return
        self._update(status=run.status, run=run, run_dir=run.path, error=run.error)


class JobSlot:
    """At most one training per process: two sessions asking at once get a clear refusal, not two writers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    @property
    def job(self) -> TrainingJob | None:
        """The latest job started here, running or ended."""
        return self._job

    def start(self, model_config: ModelConfig, train_config: TrainConfig, dataset: Dataset, **options) -> TrainingJob:
        """Start a TrainingJob (options as TrainingJob's), or raise ValueError if one is still running."""
        with self._lock:
            if self._job is not None:
                state = self._job.snapshot()
                if state.active:
                    run = state.run_dir.name if state.run_dir else "starting"
                    raise ValueError(
                        f"a training is already running (run {run}, epoch {max(state.epoch, 1)} of "
                        f"{state.epochs_total}); wait for it or stop it on the Train page"
                    )
            self._job = TrainingJob(model_config, train_config, dataset, **options).start()
            return self._job
