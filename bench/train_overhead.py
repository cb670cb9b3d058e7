"""Epoch time through core.training.trainer against the same model.fit without core (no run folder, no callbacks);
goal < 1.1.

The bare fit is compiled and fed as core.training.trainer does it (XLA, steps a call, core.training.trainer.fit_data):
what is left is core's own cost. bench/train_speed.py compares core.training.trainer with a plain fit instead.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from core.config import preset  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.paths import data_source  # noqa: E402
from core.runs import RunStore  # noqa: E402
from core.training import TrainingCallbacks, train, training_arrays  # noqa: E402
from fit_timing import epoch_seconds, timed_fit  # noqa: E402


def core_fit(model_config, train_config, dataset, limit: int, runs_root: str) -> list[float]:
    ends: list[float] = []
    # The dashboard's and the CLI's hooks are both set, as in real use; the batch one does nothing here.
    callbacks = TrainingCallbacks(
        on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()),
        on_batch_end=lambda epoch, fraction: None,
    )
    train(model_config, train_config, dataset, callbacks, store=RunStore(runs_root), limit=limit)
    return epoch_seconds(ends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reviews", type=int, default=5_000, help="training reviews (the first N after the shuffle)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit; the first is left out of the median")
    parser.add_argument("--rounds", type=int, default=2, help="bare/core pairs, alternated to share machine noise")
    parser.add_argument("--preset", default="seed", help="the architecture to time")
    args = parser.parse_args()

    source = data_source()
    if source is None:
        print("error: set IMDB_DATA to the IMDB archive (aclImdb_v1.tar.gz) to run this benchmark", file=sys.stderr)
        return 2
    experiment = preset(args.preset)
    model_config = experiment.model
    train_config = replace(experiment.train, epochs=args.epochs)
    dataset = load_dataset(source, num_words=model_config.vocabulary_size)
    # core.training.trainer tests on the test split after fit; a small one keeps that out of the benchmark's time.
    dataset = replace(dataset, test=dataset.test.subset(np.arange(min(500, len(dataset.test)))))
    x, y = training_arrays(model_config, dataset.train, args.reviews)

    bare: list[float] = []
    through_core: list[float] = []
    with tempfile.TemporaryDirectory() as runs_root:
        for _ in range(args.rounds):
            bare += timed_fit(model_config, train_config, x, y, as_core=True)
            through_core += core_fit(model_config, train_config, dataset, args.reviews, runs_root)

    bare_median = statistics.median(bare)
    core_median = statistics.median(through_core)
    print(
        f"{args.preset}: {len(y):,} reviews, batch {train_config.batch_size}, validation split "
        f"{train_config.validation_split}, {args.rounds} x {args.epochs} epochs (first of each left out)"
    )
    print(f"{'':12}{'median epoch (s)':>18}  epochs (s)")
    print(f"{'bare fit':12}{bare_median:>18.3f}  {' '.join(f'{s:.2f}' for s in bare)}")
    print(f"{'core.training.trainer':12}{core_median:>18.3f}  {' '.join(f'{s:.2f}' for s in through_core)}")
    print(f"ratio core/bare: {core_median / bare_median:.3f} (goal < 1.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
