"""What the training benchmarks share: the seed and default experiments on the archive, and epoch times of a model.fit
without core, plain (as before issue 11) or core's way."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "models" / "imdb_simplernn.config.json"


def epoch_seconds(ends: list[float]) -> list[float]:
    """Seconds between consecutive epoch ends: the first epoch (tracing, compiling) is left out on both sides alike."""
    return [later - earlier for earlier, later in zip(ends, ends[1:])]


def timed_fit(model_config, train_config, x, y, *, as_core: bool) -> list[float]:
    """Seconds of each epoch after the first of a bare model.fit: as_core compiles and feeds it as core.training.trainer
    does (XLA when it pays, steps a call, core.training.trainer.fit_data); otherwise the project's training before issue
    11, model.fit on the padded arrays with validation_split."""
    import keras

    from core.model import build_model
    from core.training import fit_data, steps_per_execution, uses_xla, validation_start

    ends: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    keras.utils.set_random_seed(train_config.seed)
    model = build_model(model_config)
    compiled = {
        "jit_compile": uses_xla(model_config, train_config, validation_start(len(y), train_config.validation_split)),
        "steps_per_execution": steps_per_execution(train_config),
    }
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=train_config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        **(compiled if as_core else {}),
    )
    if as_core:
        data = fit_data(model, model_config, train_config, x, y)
    else:
        data = {"x": x, "y": y, "batch_size": train_config.batch_size, "validation_split": train_config.validation_split}
    model.fit(**data, epochs=train_config.epochs, callbacks=[EpochClock()], verbose=0)
    return epoch_seconds(ends)


def seed_and_default(test_reviews: int):
    """The seed and the shipped default experiments by name, and the archive (IMDB_DATA) with its test split cut to
    test_reviews: core.training.trainer tests after fit, a small split keeps that out of a benchmark's time. None, with
    a line on stderr, without the archive."""
    import numpy as np

    from core.config import ExperimentConfig, preset
    from core.data import load_dataset
    from core.paths import data_source

    source = data_source()
    if source is None:
        print("error: set IMDB_DATA to the IMDB archive (aclImdb_v1.tar.gz) to run this benchmark", file=sys.stderr)
        return None
    experiments = {"seed": preset("seed"), "default (masked)": ExperimentConfig.from_file(DEFAULT_CONFIG)}
    dataset = load_dataset(source, num_words=experiments["seed"].model.vocabulary_size)
    return experiments, replace(dataset, test=dataset.test.subset(np.arange(min(test_reviews, len(dataset.test)))))


@contextmanager
def forced_xla(xla: bool):
    """core.training.trainer compiles with XLA (xla=True) or without, whatever its uses_xla rule would pick."""
    import core.training.trainer

    chosen = core.training.trainer.uses_xla
    core.training.trainer.uses_xla = lambda model_config, train_config, reviews, epochs=None: xla
    try:
        yield
    finally:
        core.training.trainer.uses_xla = chosen
