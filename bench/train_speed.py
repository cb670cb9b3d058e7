"""Epoch time of core.training.trainer against a plain model.fit on padded arrays, for the seed and the shipped
default model.

Goals: the seed at least 2.5x faster than plain fit (issue 19: batches cut to their longest review, started from the
pad chain's state; issue 11 asked 1.8x of full rows), the masked default at least 2.5x (issue 11). One run, same data,
median epoch with the first (tracing, compiling) left out; plain and core alternate to share the machine's noise.
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

from core import paths  # noqa: E402
from core.runs import RunStore  # noqa: E402
from core.training import (  # noqa: E402
    TrainingCallbacks,
    train,
    training_arrays,
    use_compilation_cache,
    uses_xla,
    validation_start,
)
from fit_timing import epoch_seconds, forced_xla, seed_and_default, timed_fit  # noqa: E402

GOALS = {"seed": 2.5, "default (masked)": 2.5}


def core_fit(model_config, train_config, dataset, limit: int, runs_root: str, xla: bool) -> list[float]:
    """core.training.trainer as the CLI and the dashboard run it, with XLA forced on or off."""
    ends: list[float] = []
    callbacks = TrainingCallbacks(
        on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()),
        on_batch_end=lambda epoch, fraction: None,
    )
    with forced_xla(xla):
        train(model_config, train_config, dataset, callbacks, store=RunStore(runs_root), limit=limit)
    return epoch_seconds(ends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=5_000, help="training reviews (the first N after the shuffle)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit; the first is left out of the median")
    parser.add_argument("--rounds", type=int, default=2, help="plain/core pairs, alternated to share machine noise")
    args = parser.parse_args()

    # As `python -m core train` runs: XLA's compilation cache on before TensorFlow starts (train() sets it for the
    # process's first training only, and the plain fits below start TensorFlow first).
    use_compilation_cache(paths.cache_dir() / "xla")
    loaded = seed_and_default(test_reviews=500)
    if loaded is None:
        return 2
    experiments, dataset = loaded

    rows = []
    with tempfile.TemporaryDirectory() as runs_root:
        for name, experiment in experiments.items():
            model_config = experiment.model
            # No early stopping: every configuration runs the same epochs.
            train_config = replace(experiment.train, epochs=args.epochs, early_stopping_patience=0)
            x, y = training_arrays(model_config, dataset.train, args.reviews)
            times = {"plain fit": [], "core.training.trainer": []}
            # Epochs after the first are those of a long training: core compiles with XLA as it would on the whole
            # archive (experiment's epochs), which a short run like this one would not (bench/xla_break_even.py).
            archive = validation_start(len(dataset.train), train_config.validation_split)
            xla = uses_xla(model_config, experiment.train, archive)
            # The road not taken, measured: the same training with XLA the other way.
            other = f"core.training.trainer, XLA {'off' if xla else 'on'}"
            times[other] = []
            for _ in range(args.rounds):
                times["plain fit"] += timed_fit(model_config, train_config, x, y, as_core=False)
                for way, forced in (("core.training.trainer", xla), (other, not xla)):
                    times[way] += core_fit(model_config, train_config, dataset, args.reviews, runs_root, forced)
            rows.append((name, times))

    print(
        f"{args.reviews:,} reviews of 500 ids, batch 128, validation split 0.2, {args.rounds} x {args.epochs} epochs "
        "each (the first of each left out); median epoch in seconds"
    )
    print(f"{'model':18}{'way':30}{'median (s)':>11}{'x plain':>9}  epochs (s)")
    met = True
    for name, times in rows:
        plain = statistics.median(times["plain fit"])
        for way, seconds in times.items():
            median = statistics.median(seconds)
            print(f"{name:18}{way:30}{median:>11.2f}{plain / median:>9.2f}  {' '.join(f'{s:.2f}' for s in seconds)}")
        ratio = plain / statistics.median(times["core.training.trainer"])
        met = met and ratio >= GOALS[name]
        print(f"{name}: core.training.trainer is {ratio:.2f}x plain fit (goal >= {GOALS[name]}x)")
    print("goals met" if met else "goals NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
