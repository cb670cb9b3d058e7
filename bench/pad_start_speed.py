"""The seed trained on rows cut to their longest review and started from the pad chain's state
(core.training.pad_start), and on full rows run as spans from each batch's first filled column
(core.training.rnn_span, what train() runs), against the same model fed full rows by plain fit, all compiled as core
compiles them (XLA, several steps a call): the steady epoch and the first one, which pays for compiling every batch
width (cut rows) or one shape (spans).

Issue 19's goal, once train() uses it: the seed at least 2.5x plain fit (bench/train_speed.py), the first epoch at most
2x a steady one. One run, same reviews, the two ways alternated to share the machine's noise; medians of the epochs
after the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fit_timing import seed_and_default  # noqa: E402

WAYS = ("full rows", "cut rows from the pad chain", "spans on full rows")


def timed(model_config, x, y, epochs: int, way: str) -> list[float]:
    """Seconds of each epoch: model.fit on the full rows (Keras's shuffle), or the pad-start model on length-bucketed
    batches (core.training.batching, as a masked model's), cut to their longest review or left full for spans."""
    import keras

    from core.model import build_model
    from core.training import STEPS_PER_EXECUTION, ReviewBatches, pad_start_model

    keras.utils.set_random_seed(1337)
    model = build_model(model_config)
    cut, spans = way != WAYS[0], way == WAYS[2]
    fitted = pad_start_model(model, model_config.sequence_length, spans=spans) if cut else model
    fitted.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    times: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    if cut:
        batches = ReviewBatches(x, y, 128, model_config.padding, bucketed=True, full_rows=spans, seed=1337)
        fitted.fit(batches.dataset(), epochs=epochs, shuffle=False, callbacks=[EpochClock()], verbose=0)
    else:
        fitted.fit(x, y, batch_size=128, epochs=epochs, shuffle=True, callbacks=[EpochClock()], verbose=0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=5_000, help="training reviews (the first N after the shuffle)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit; the first is left out of the median")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three ways, alternated (machine noise)")
    args = parser.parse_args()

    loaded = seed_and_default(test_reviews=0)
    if loaded is None:
        return 2
    experiments, dataset = loaded
    from core.training import training_arrays

    model_config = experiments["seed"].model
    x, y = training_arrays(model_config, dataset.train, args.reviews)
    firsts: dict[str, list[float]] = {way: [] for way in WAYS}
    steady: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            times = timed(model_config, x, y, args.epochs, way)
            firsts[way].append(times[0])
            steady[way] += times[1:]

    print(f"the seed, {len(y):,} reviews of 500 ids, batch 128, {args.rounds} x {args.epochs} epochs a way (XLA)")
    print(f"{'way':30}{'steady (s)':>11}{'x full':>8}{'first (s)':>11}{'first/steady':>14}  steady epochs (s)")
    full = statistics.median(steady[WAYS[0]])
    for way in WAYS:
        median, first = statistics.median(steady[way]), statistics.median(firsts[way])
        epochs = " ".join(f"{seconds:.2f}" for seconds in steady[way])
        print(f"{way:30}{median:>11.2f}{full / median:>8.2f}{first:>11.2f}{first / median:>14.1f}  {epochs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
