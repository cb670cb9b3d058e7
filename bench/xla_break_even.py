"""Whole-training time of core.training.trainer with XLA on and off, by training size: where compiling starts to pay.

core.training.trainer.uses_xla compiles fit's steps with XLA only from XLA_BREAK_EVEN review-steps (training reviews x
epochs x sequence_length) on: XLA's first epoch compiles, later epochs run faster. This prints, for the seed and the
shipped default (masked), both trained as spans under XLA (one program for every batch), and on request the seed
post-padded (full rows) and the default with an LSTM layer (cut batches), the time from calling train() to the end of
its last epoch with XLA on and off, which was faster, and what the rule picks.

Each training runs in a fresh process, as `python -m core train` and the dashboard's trainings do, with an empty XLA
cache: a first training of a model shape, which pays the whole compile (a second one of the same shape finds most of it
in .cache/, bench/first_epoch.py). Importing TensorFlow and Keras and reading the archive are left out of the time
(every training pays them alike). Medians of --rounds rounds, on and off alternated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARCHIVE_TRAINING = 24_996  # "all": the archive's training split, 20% of it held out for validation

MODELS = ("seed", "default (masked)", "seed post-padded", "default with LSTM")

CHILD = """
import sys, time
from dataclasses import replace
sys.path.insert(0, {bench!r})
from fit_timing import forced_xla, seed_and_default
from xla_break_even import experiment_named
from core.runs import RunStore
from core.training import TrainingCallbacks, train
_, dataset = seed_and_default(test_reviews=200)  # the archive; the experiment is named below
experiment = experiment_named({name!r})
import keras, tensorflow  # noqa: F401 - imported before the clock starts, as every training pays it alike
ends = []
callbacks = TrainingCallbacks(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
settings = replace(experiment.train, epochs={epochs}, early_stopping_patience=0)
with forced_xla({xla}):
    started = time.perf_counter()
    train(experiment.model, settings, dataset, callbacks, store=RunStore({runs!r}), limit={limit})
print("FIT_SECONDS", ends[-1] - started)
"""


def experiment_named(name: str):
    """One of MODELS: the seed and the default model (spans under XLA), the seed post-padded (full rows: one program)
    and the default model with an LSTM layer (cut batches: a program a batch width)."""
    from bench.fit_timing import DEFAULT_CONFIG
    from core.config import ExperimentConfig, RecurrentLayerConfig, preset

    seed, default = preset("seed"), ExperimentConfig.from_file(DEFAULT_CONFIG)
    variants = {
        "seed": seed,
        "default (masked)": default,
        "seed post-padded": replace(seed, model=replace(seed.model, padding="post")),
        "default with LSTM": replace(
            default, model=replace(default.model, recurrent_layers=(RecurrentLayerConfig("lstm"),))
        ),
    }
    if name not in variants:
        raise SystemExit(f"error: no model {name!r}; pick from {', '.join(MODELS)}")
    return variants[name]


def fit_seconds(name: str, reviews: int | None, epochs: int, xla: bool) -> float:
    """Seconds from calling core.training.trainer to the end of its last epoch, XLA forced on or off, in a fresh
    process with an empty XLA cache; reviews None: the whole training split."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as runs:
        code = CHILD.format(bench=str(ROOT / "bench"), name=name, epochs=epochs, xla=xla, runs=runs, limit=reviews)
        environment = dict(
            os.environ, TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={cache}", TF_CPP_MIN_LOG_LEVEL="2"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIT_SECONDS")]
    if done.returncode or not lines:
        raise SystemExit(f"the {name} training failed:\n{done.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", default="2000,5000,all", help="sizes to time, comma-separated (all: the archive)")
    parser.add_argument("--epochs", default="2,3,5", help="epoch counts to time, comma-separated")
    parser.add_argument("--models", default="seed,default (masked)", help=f"comma-separated, of: {'; '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=1, help="on/off pairs per size")
    args = parser.parse_args()
    if not os.environ.get("IMDB_DATA"):
        print("error: set IMDB_DATA to the IMDB archive (aclImdb_v1.tar.gz) to run this benchmark", file=sys.stderr)
        return 2
    sizes = [None if value.strip() == "all" else int(value) for value in args.reviews.split(",")]
    epoch_counts = [int(value) for value in args.epochs.split(",")]

    from core.training import uses_xla, validation_start
    print("seconds from train() to its last epoch's end, a fresh process and an empty XLA cache each; median of",
          args.rounds, "round(s)")
    print(f"{'model':18}{'reviews':>8}{'epochs':>7}{'review-steps':>14}{'XLA on':>9}{'XLA off':>9}{'on/off':>8}"
          f"{'faster':>8}{'rule':>6}")
    right = rows = 0
    for name in args.models.split(","):
        experiment = experiment_named(name)
        for reviews in sizes:
            for epochs in epoch_counts:
                on: list[float] = []
                off: list[float] = []
                for _ in range(args.rounds):
                    on.append(fit_seconds(name, reviews, epochs, True))
                    off.append(fit_seconds(name, reviews, epochs, False))
                training = validation_start(reviews or ARCHIVE_TRAINING, experiment.train.validation_split)
                steps = training * epochs * experiment.model.sequence_length
                picks = uses_xla(experiment.model, experiment.train, training, epochs)
                on_median, off_median = statistics.median(on), statistics.median(off)
                faster = on_median < off_median
                right += picks == faster
                rows += 1
                print(
                    f"{name:18}{reviews or ARCHIVE_TRAINING:>8,}{epochs:>7}{steps:>14,}{on_median:>9.1f}"
                    f"{off_median:>9.1f}{on_median / off_median:>8.2f}"
                    f"{'on' if faster else 'off':>8}{'on' if picks else 'off':>6}",
                    flush=True,
                )
    print(f"the rule picked the faster way in {right} of {rows} cases; load average (1 min) {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
