"""Epoch times of a model.fit without core, for the training benchmarks: plain (as before issue 11) or core's way."""

from __future__ import annotations

import time


def epoch_seconds(ends: list[float]) -> list[float]:
    """Seconds between consecutive epoch ends: the first epoch (tracing, compiling) is left out on both sides alike."""
    return [later - earlier for earlier, later in zip(ends, ends[1:])]


def timed_fit(model_config, train_config, x, y, *, as_core: bool) -> list[float]:
    """Seconds of each epoch after the first of a bare model.fit: as_core compiles and feeds it as core.training.train
    does (XLA when it pays, steps a call, core.training.train.fit_data); otherwise the project's training before issue
    11, model.fit on the padded arrays with validation_split."""
    import keras

    from core.model.build import build_model
    from core.training.batching import validation_start
    from core.training.train import fit_data, steps_per_execution, uses_xla

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
