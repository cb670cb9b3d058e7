"""Where a training stands (JobSnapshot, what the Train page shows of a training process) and the clock that says
how long the epoch in progress has left (EpochClock, run inside the training process)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.runs.store import RunInfo

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
    preparing: bool = False  # running, its first batch not yet done: the training step is being traced and compiled

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def testing(self) -> bool:
        """Every epoch is done and the training scores the test reviews before it ends."""
        return self.status == "running" and 0 < self.epochs_total <= self.epochs_done

    @property
    def done_share(self) -> float:
        """What a progress bar shows, 0 to 1: the share of the current epoch's batches, full while testing."""
        return 1.0 if self.testing else min(max(self.epoch_fraction, 0.0), 1.0)

    @property
    def progress_text(self) -> str:
        """Where the training stands in one line for people: the epoch, its share done, the time left in it."""
        if self.status == "starting":
            return "Starting: loading TensorFlow and building the model..."
        if self.testing:
            return f"All {self.epochs_total} epochs done: saving the model and scoring the test reviews..."
        head = f"Epoch {max(self.epoch, 1)} of {self.epochs_total}"
        if self.preparing:
            return (
                f"{head}: TensorFlow is building the training step (tracing it, and compiling it with XLA for a long"
                " training) before the first batch..."
            )
        text = f"{head}: {self.epoch_fraction:.0%} of its batches"
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
