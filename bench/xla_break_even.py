"""Whole-training time of core.training.trainer with XLA on and off, by training size: where compiling starts to pay.

core.training.trainer.uses_xla compiles fit's steps with XLA only from XLA_BREAK_EVEN review-steps (training reviews x
epochs x sequence_length) on: XLA's first epoch compiles (a masked model once per batch width), later epochs run faster.
This prints, for the seed (full rows) and the shipped default (masked), the fit's time from start to its last epoch
with XLA on and off, which was faster, and what the rule picks. Medians of --rounds rounds, on and off alternated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.runs import RunStore  # noqa: E402
from core.training import TrainingCallbacks, train, uses_xla, validation_start  # noqa: E402
from fit_timing import forced_xla, seed_and_default  # noqa: E402


def fit_seconds(experiment, dataset, reviews: int, epochs: int, runs_root: str, xla: bool) -> float:
    """Seconds from calling core.training.trainer to the end of its last epoch, XLA forced on or off."""
    ends: list[float] = []
    callbacks = TrainingCallbacks(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
    settings = replace(experiment.train, epochs=epochs, early_stopping_patience=0)
    with forced_xla(xla):
        started = time.perf_counter()
        train(experiment.model, settings, dataset, callbacks, store=RunStore(runs_root), limit=reviews)
    return ends[-1] - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", default="400,2000,5000", help="training sizes to time, comma-separated")
    parser.add_argument("--epochs", default="3", help="epoch counts to time, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="on/off pairs per size")
    args = parser.parse_args()
    sizes = [int(value) for value in args.reviews.split(",")]
    epoch_counts = [int(value) for value in args.epochs.split(",")]

    loaded = seed_and_default(test_reviews=200)
    if loaded is None:
        return 2
    experiments, dataset = loaded

    print("fit time in seconds, first epoch (tracing, compiling) included; median of", args.rounds, "round(s)")
    print(f"{'model':18}{'reviews':>8}{'epochs':>7}{'review-steps':>14}{'XLA on':>9}{'XLA off':>9}{'on/off':>8}"
          f"{'faster':>8}{'rule':>6}")
    right = 0
    rows = 0
    with tempfile.TemporaryDirectory() as runs_root:
        for experiment in experiments.values():  # warm TensorFlow up both ways, untimed
            for xla in (True, False):
                fit_seconds(experiment, dataset, 200, 1, runs_root, xla)
        for name, experiment in experiments.items():
            for reviews in sizes:
                for epochs in epoch_counts:
                    on: list[float] = []
                    off: list[float] = []
                    for _ in range(args.rounds):
                        on.append(fit_seconds(experiment, dataset, reviews, epochs, runs_root, True))
                        off.append(fit_seconds(experiment, dataset, reviews, epochs, runs_root, False))
                    training = validation_start(reviews, experiment.train.validation_split)
                    steps = training * epochs * experiment.model.sequence_length
                    picks = uses_xla(experiment.model, experiment.train, training, epochs)
                    on_median, off_median = statistics.median(on), statistics.median(off)
                    faster = on_median < off_median
                    right += picks == faster
                    rows += 1
                    print(
                        f"{name:18}{reviews:>8,}{epochs:>7}{steps:>14,}{on_median:>9.1f}"
                        f"{off_median:>9.1f}{on_median / off_median:>8.2f}"
                        f"{'on' if faster else 'off':>8}{'on' if picks else 'off':>6}"
                    )
    print(f"the rule picked the faster way in {right} of {rows} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
