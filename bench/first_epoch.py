"""How long the first epoch takes against a steady one, on the whole archive: a first training of a model shape (an
empty compilation cache) and a second one (the cache XLA filled).

Issue 19's goal: the first epoch at most 2x a steady epoch, a second training paying little or nothing for compiling.
Each training runs core.training.trainer.train in its own process (TensorFlow reads the cache folder once), as
`python -m core train` and the dashboard's training process do, from the call to each epoch's end; the test split is
cut to 500 reviews, which keeps testing out of the time. Importing TensorFlow and Keras (8-9 s on 2 cores, whatever the
model) is timed apart: the first epoch is shown without it and, as the last ratio, with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, os, sys, time
from dataclasses import replace
sys.path.insert(0, {bench!r})
from fit_timing import seed_and_default
from core.runs import RunStore
from core.training import TrainingCallbacks, train
experiments, dataset = seed_and_default(test_reviews=500)
experiment = experiments[{name!r}]
ends = []
started = time.perf_counter()
import keras, tensorflow  # what train() imports first, timed apart from the compiling
print("IMPORT", time.perf_counter() - started)
callbacks = TrainingCallbacks(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter() - started))
settings = replace(experiment.train, epochs={epochs}, early_stopping_patience=0)
train(experiment.model, settings, dataset, callbacks, store=RunStore({runs!r}))
print("EPOCH_ENDS", json.dumps(ends))
"""


def timed_training(name: str, epochs: int, cache: str, runs: str) -> tuple[float, list[float]]:
    """Seconds importing TensorFlow and Keras, and from there to each epoch's end, in a fresh process whose XLA cache
    is the folder cache."""
    code = CHILD.format(bench=str(ROOT / "bench"), name=name, epochs=epochs, runs=runs)
    flags = f"--tf_xla_persistent_cache_directory={cache}"
    environment = dict(os.environ, TF_XLA_FLAGS=flags, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("EPOCH_ENDS")]
    imports = [float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("IMPORT")]
    if done.returncode or not lines or not imports:
        raise SystemExit(f"the {name} training failed:\n{done.stderr[-2000:]}")
    return imports[0], json.loads(lines[-1].split(" ", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs a training; epochs 2.. make the steady median")
    parser.add_argument("--models", default="seed,default (masked)", help="comma-separated: seed, default (masked)")
    args = parser.parse_args()
    if not os.environ.get("IMDB_DATA"):
        print("error: set IMDB_DATA to the IMDB archive (aclImdb_v1.tar.gz) to run this benchmark", file=sys.stderr)
        return 2

    print(
        f"whole archive (19,996 training reviews), {args.epochs} epochs a training; seconds from train() on, the first"
        " epoch without and with importing TensorFlow and Keras"
    )
    header = f"{'model':18}{'training':22}{'import':>8}{'first epoch':>12}{'steady':>8}{'first/steady':>14}"
    print(f"{header}{'with import':>13}  epochs (s)")
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as runs:
            for training in ("first (empty cache)", "second (cached)"):
                imported, ends = timed_training(name, args.epochs, cache, runs)
                epochs = [ends[0] - imported] + [later - earlier for earlier, later in zip(ends, ends[1:])]
                steady = statistics.median(epochs[1:])
                shown = " ".join(f"{seconds:.1f}" for seconds in epochs)
                ratios = f"{epochs[0] / steady:>14.1f}{ends[0] / steady:>13.1f}"
                print(f"{name:18}{training:22}{imported:>8.1f}{epochs[0]:>12.1f}{steady:>8.1f}{ratios}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
