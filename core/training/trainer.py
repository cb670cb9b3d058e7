"""Train a classifier with model.fit into a run folder, reporting progress through plain callables.

Also reads a trained run's model back and evaluates it (load_run_model, evaluate_run): the evaluation must batch the
reviews as its fit did (cut rows, spans, full rows), and choose XLA by what it would compile (xla_programs), which only
this module decides; hence the length (about 490 lines).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.training import batching
from core.training.batching import validation_start
from core.training.pad_start import pad_start_model, runs_as_spans, starts_from_pads
from core.runs import checkpoints
from core.training import distribute
from core.runs import store as runs
from core.runs.checkpoints import ResumePoint
from core import paths
from core.config import ExperimentConfig, ModelConfig, TrainConfig
from core.data.load import Dataset, Split, split_for_vocabulary
from core.errors import first_line
from core.history import BEST_EPOCH_LABEL, best_epoch
from core.runs.store import RunInfo, RunStore


@dataclass(frozen=True)
class TrainingCallbacks:
    """How a caller follows and stops a training; every callable is optional. Epochs count from 1."""

    on_run_created: Callable[[Path], None] | None = None  # the run folder, before the first batch
    on_epoch_end: Callable[[int, dict], None] | None = None  # epoch, its logs (loss, accuracy, val_loss, ...)
    on_batch_end: Callable[[int, float], None] | None = None  # epoch, fraction of the epoch done (from a helper thread)
    cancel: threading.Event = field(default_factory=threading.Event)  # set it to stop after the current batch


class _Cancelled(Exception):
    """Raised inside fit when cancel is set, so that fit stops at once instead of validating first."""


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of reviews, got {limit!r}")


def training_arrays(model_config: ModelConfig, split: Split, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The padded ids and float labels fit sees: the first limit reviews of split, in its order."""
    _check_limit(limit)
    if limit is not None:
        split = split.subset(np.arange(min(limit, len(split))))
    ids = split.padded(model_config.sequence_length, model_config.padding, model_config.truncating)
    return ids, split.labels.astype("float32")


def steps_per_epoch(reviews: int, train_config: TrainConfig) -> int:
    """Batches in one epoch of fit on reviews training reviews (validation share removed)."""
    return math.ceil(validation_start(reviews, train_config.validation_split) / train_config.batch_size)


def _check_trainable(model_config: ModelConfig, train_config: TrainConfig, dataset: Dataset, reviews: int) -> None:
    if not model_config.is_classifier:
        raise ValueError(
            "only a classifier can be trained: turn model.output_layer on and model.last_return_sequences off"
        )
    # Equal, not merely fitting: the run's vocabulary and its Embedding must agree for the export to accept them.
    if dataset.vocabulary.num_words != model_config.vocabulary_size:
        raise ValueError(
            f"the data was encoded with {dataset.vocabulary.num_words:,} words but model.vocabulary_size is "
            f"{model_config.vocabulary_size:,}; load the data with num_words={model_config.vocabulary_size}"
        )
    cut = validation_start(reviews, train_config.validation_split)
    if reviews < 2 or cut == 0 or (train_config.validation_split and cut == reviews):
        raise ValueError(
            f"{reviews} training review(s) cannot be split with train.validation_split="
            f"{train_config.validation_split}; use more reviews or another split"
        )


def _optimizer(train_config: TrainConfig):
    import keras

    classes = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    return classes[train_config.optimizer](learning_rate=train_config.learning_rate)


def cuts_batches(model_config: ModelConfig, train_config: TrainConfig) -> bool:
    """Whether fit's batches are cut to their longest review: a masked model's always (its padding changes nothing);
    an unmasked pre-padded one's on one device, each layer started from the pad chain's state
    (core.training.pad_start)."""
    if model_config.mask_padding:
        return True
    return train_config.distribution == "none" and starts_from_pads(model_config)


def xla_programs(model_config: ModelConfig, train_config: TrainConfig) -> str:
    """What XLA compiles for fit's steps on one device: "full rows" (a program for the one batch shape), "spans" (a
    program for every batch: core.training.rnn_span) or "cut batches" (a program a batch width, up to
    batching.MAX_WIDTHS)."""
    if not cuts_batches(model_config, train_config):
        return "full rows"
    return "spans" if runs_as_spans(model_config) else "cut batches"


# Review-steps (training reviews x epochs x sequence_length) from which compiling fit's steps with XLA pays for itself,
# by what XLA compiles (xla_programs). XLA's first epoch compiles, and later epochs run 2-3.5x faster; on a small
# training the compile is most of the time. Measured on 2 cores by bench/xla_break_even.py (README, "When XLA pays"):
# each training in a fresh process with an empty cache, spans (the seed and the default model) broke even between 6
# and 10 million, full rows of 500 ids (the seed post-padded) between 12 and 20, cut batches (an LSTM: a program a
# width) above 20.
XLA_BREAK_EVEN = {"full rows": 16_000_000, "spans": 8_000_000, "cut batches": 30_000_000}


def uses_xla(model_config: ModelConfig, train_config: TrainConfig, reviews: int, epochs: int | None = None) -> bool:
    """Whether fit compiles its steps with XLA: on one device, when the training is long enough to pay for compiling.

    reviews is the number of training reviews (validation left out); epochs those left to run (train.epochs unless
    resuming). Strategies keep TensorFlow's own kernels.
    """
    if train_config.distribution != "none":
        return False
    epochs = train_config.epochs if epochs is None else epochs
    return reviews * epochs * model_config.sequence_length >= XLA_BREAK_EVEN[xla_programs(model_config, train_config)]


def steps_per_execution(train_config: TrainConfig) -> int:
    """Batches fit runs in one compiled call: several on one device; one under a strategy, where Keras's multi-step
    loop fails (TensorFlow 2.21, Keras 3.15: "You must feed a value for placeholder tensor")."""
    return batching.STEPS_PER_EXECUTION if train_config.distribution == "none" else 1


def fit_data(model, model_config: ModelConfig, train_config: TrainConfig, x: np.ndarray, y: np.ndarray) -> dict:
    """model.fit's data arguments: the training reviews, shuffled every epoch, and the validation reviews, the last
    ones as Keras's validation_split takes them.

    Batches cut to their longest review (cuts_batches), and any model under a strategy, come from
    core.training.batching's datasets. Full rows on one device go to fit as arrays, shuffled by Keras as before
    (seeded by train.seed): in bench/train_speed.py's runs that fed an XLA step faster than a dataset made in Python.
    """
    cut = cuts_batches(model_config, train_config)
    if not cut and train_config.distribution == "none":
        cut_at = validation_start(len(y), train_config.validation_split) if train_config.validation_split else len(y)
        validation_data = (x[cut_at:], y[cut_at:]) if cut_at < len(y) else None
        return {
            "x": x[:cut_at],
            "y": y[:cut_at],
            "batch_size": train_config.batch_size,
            "shuffle": True,
            "validation_data": validation_data,
        }
    training, validation = batching.fit_batches(
        x,
        y,
        train_config.batch_size,
        train_config.validation_split,
        padding=model_config.padding,
        bucketed=cut,
        seed=train_config.seed,
        model=model,
        full_rows=getattr(model, "runs_spans", False),  # a pad-start model that skips the padding itself
    )
    validation_data = validation.dataset() if validation is not None else None
    # shuffle=False: the batches come shuffled; Keras would only warn that it cannot shuffle a dataset.
    return {"x": training.dataset(), "validation_data": validation_data, "shuffle": False}


def _recorder(run_dir: Path, callbacks: TrainingCallbacks):
    """A Keras callback that writes history.json after every epoch and forwards progress to callbacks; it extends what
    history.json already holds (nothing for a new run, the finished epochs of a resumed one)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        # async_safe lets Keras run the batch hook on its helper threads instead of waiting for every step's logs:
        # that keeps fit's loop as fast as a bare fit. The calls can then overlap and arrive out of order, so the
        # caller's on_batch_end is called under a lock, once per batch, in order (a late, older batch is skipped).
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {key: [] for key in runs.HISTORY_KEYS}
            saved = runs.read_json(run_dir / runs.HISTORY_FILE)
            if isinstance(saved, dict):
                self.history.update({key: list(values) for key, values in saved.items() if isinstance(values, list)})
            self.epoch = 1
            self.lock = threading.Lock()
            self.reported = (0, -1)  # (epoch, batch) last handed to on_batch_end

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if callbacks.on_batch_end is not None:
                steps = self.params.get("steps") or 1
                with self.lock:
                    if (self.epoch, batch) > self.reported:
                        self.reported = (self.epoch, batch)
                        callbacks.on_batch_end(self.epoch, min((batch + 1) / steps, 1.0))
            if callbacks.cancel.is_set():
                self.model.stop_training = True
                raise _Cancelled()

        def on_epoch_end(self, epoch, logs=None):
            logs = {key: float(value) for key, value in (logs or {}).items()}
            for key, value in logs.items():
                self.history.setdefault(key, []).append(value)
            runs.write_history(run_dir, self.history)
            if callbacks.on_epoch_end is not None:
                callbacks.on_epoch_end(epoch + 1, logs)

    return Recorder()


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    dataset: Dataset,
    callbacks: TrainingCallbacks | None = None,
    *,
    store: RunStore | None = None,
    limit: int | None = None,
) -> RunInfo:
    """Train on dataset.train (the first limit reviews), test on dataset.test, and return the finished run.

    A cancelled run is kept with its finished epochs; an exception marks the run failed and is raised again.
    """
    callbacks = callbacks or TrainingCallbacks()
    _check_limit(limit)
    reviews = min(limit, len(dataset.train)) if limit else len(dataset.train)
    _check_trainable(model_config, train_config, dataset, reviews)
    x, y = training_arrays(model_config, dataset.train, limit)
    store = distribute.run_store(train_config.distribution, store or RunStore())
    data = {"source": dataset.source, "kind": dataset.kind, "limit": limit, "path": dataset.location, "reviews": len(y)}
    with store.training_lock():
        run_dir = store.create(ExperimentConfig(model_config, train_config), dataset.vocabulary, data)
        return fit_run(run_dir, model_config, train_config, dataset, callbacks, x, y)


def fit_run(run_dir, model_config, train_config, dataset, callbacks, x, y, resumed: ResumePoint | None = None):
    """Fit into a run folder whose status is running (new, or taken up again by core.training.resuming), under the
    caller's training lock; an exception marks the run failed and is raised again."""
    try:
        if callbacks.on_run_created is not None:
            callbacks.on_run_created(run_dir)
        return _fit(run_dir, model_config, train_config, dataset, callbacks, x, y, resumed)
    except BaseException as error:
        message = first_line(error)
        if isinstance(error, KeyboardInterrupt):
            message = "interrupted by the user"
        record = runs.read_json(run_dir / runs.RUN_FILE)
        # _fit may have ended the run itself (Ctrl-C during fit is a cancel with weights saved); keep its word.
        if isinstance(record, dict) and record.get("status") == "running":
            runs.set_failed_status(run_dir, message)
        raise


# XLA's persistent compilation cache (TensorFlow's own flag): the steps a training compiles are kept on disk, keyed by
# the program, so a second training of the same model shape skips most of its first epoch's compiling (measured on
# the seed's pad-start steps: 33.8 s first epoch, then 8.4 s; about 1.4 MB a compiled step).
XLA_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def use_compilation_cache(folder: Path) -> None:
    """Point XLA's persistent compilation cache at folder, unless TF_XLA_FLAGS already names one; read by TensorFlow
    when it first compiles, so call it before the first fit of the process."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if XLA_CACHE_FLAG not in flags:
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TF_XLA_FLAGS"] = f"{flags} {XLA_CACHE_FLAG}={folder}".strip()


def _build_state(fitted, y: np.ndarray) -> None:
    """The optimizer's slots and the compiled metrics' totals, made now. Keras (TensorFlow, one device) makes them
    while it traces the first training step, and TensorFlow then traces the step a second time without the variables
    creation: 0.7-0.9 s of every training's first epoch here (the seed, whole archive). Nothing is learned or counted:
    the metrics are reset, as fit resets them each epoch."""
    import keras

    fitted.optimizer.build(fitted.trainable_variables)
    labels = keras.ops.convert_to_tensor(y[:1].astype("float32"))
    fitted.compute_metrics(None, labels, keras.ops.zeros((1, 1)), sample_weight=keras.ops.ones((1,)))
    fitted.reset_metrics()


def _fit(run_dir, model_config, train_config, dataset, callbacks, x, y, resumed: ResumePoint | None = None) -> RunInfo:
    use_compilation_cache(paths.cache_dir() / "xla")
    import keras

    from core.model.build import build_model

    strategy = distribute.strategy(train_config.distribution)  # first: multi-worker must precede any TensorFlow op
    training_reviews = validation_start(len(y), train_config.validation_split)
    epochs_left = train_config.epochs - (resumed.epoch if resumed else 0)
    keras.utils.set_random_seed(train_config.seed)
    with distribute.scope(strategy):
        model = build_model(model_config)
        # fit trains fitted: the model, or on cut batches the pad-start wrapper, which saves and loads as the model.
        fitted = model
        xla = uses_xla(model_config, train_config, training_reviews, epochs_left)
        # A pre-padded model on cut batches: from its pad chain's state, or as spans (a masked one too) under XLA.
        if cuts_batches(model_config, train_config) and model_config.padding == "pre":
            fitted = pad_start_model(model, model_config.sequence_length, spans=xla)
        fitted.compile(
            optimizer=_optimizer(train_config),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            jit_compile=xla,
            steps_per_execution=steps_per_execution(train_config),
        )
        if train_config.distribution == "none":  # under a strategy, fit builds them first itself
            _build_state(fitted, y)
    recorder = _recorder(run_dir, callbacks)
    # Checkpoints every epoch (the state to resume from, the best model so far); resumed restores the state.
    fit_callbacks = checkpoints.fit_callbacks(run_dir, runs.MODEL_FILE, train_config, recorder, resumed)
    early_stopping = next((c for c in fit_callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)

    status = "finished"
    interrupted = None  # a Ctrl-C during fit: the run is saved as cancelled, then the interrupt goes on
    started = time.perf_counter()
    try:
        fitted.fit(
            **fit_data(fitted, model_config, train_config, x, y),
            epochs=train_config.epochs,
            callbacks=fit_callbacks,
            initial_epoch=resumed.epoch if resumed else 0,
            verbose=0,
        )
    except (_Cancelled, KeyboardInterrupt) as stop:
        status = "cancelled"
        interrupted = stop if isinstance(stop, KeyboardInterrupt) else None
        # fit stopped before EarlyStopping's own restore at train end; do it here.
        if early_stopping is not None and early_stopping.best_weights is not None:
            model.set_weights(early_stopping.best_weights)
    train_seconds = time.perf_counter() - started + (resumed.seconds_before if resumed else 0.0)
    runs.save_model(run_dir, model)

    history = recorder.history
    # The best epoch is the one of lowest val_loss (core.history), as EarlyStopping picks it: best_val_accuracy and
    # best_val_loss are that epoch's, not the highest validation accuracy of any epoch.
    best = best_epoch(history)
    metrics = {
        "test_accuracy": None,
        "test_loss": None,
        "test_n": 0,
        "best_epoch": best.epoch if best else None,
        "best_val_accuracy": best.val_accuracy if best else None,
        "best_val_loss": best.val_loss if best else None,
        "epochs_run": len(history.get("loss", [])),
        "train_seconds": round(train_seconds, 3),
        # True when model.keras holds best_epoch's weights rather than the last epoch's.
        "restored_best_weights": early_stopping is not None and early_stopping.best_weights is not None,
    }
    if resumed is not None:
        metrics["resumed_from_epoch"] = resumed.epoch
    partial = runs.partial_note(len(history.get("loss", [])), train_config.epochs, status)
    if partial:
        metrics["partial"] = partial
    # A cancelled run stops now: testing on every review would make Stop slow.
    if status == "finished" and len(dataset.test):
        cut = cuts_batches(model_config, train_config)
        result = _evaluate_model(fitted if cut else model, model_config, dataset.test, train_config.batch_size, cut)
        metrics.update(test_accuracy=result["accuracy"], test_loss=result["loss"], test_n=result["n"])
    runs.write_metrics(run_dir, metrics)
    runs.set_status(run_dir, status, "interrupted by the user" if interrupted else None)
    if interrupted is not None:
        raise interrupted
    return runs.read_run(run_dir)


def _evaluate_model(model, model_config: ModelConfig, split: Split, batch_size: int = 128, cut: bool = False) -> dict:
    """cut: batches cut to their longest review (the widths fit's validation compiled), for a model fit on them."""
    x, y = training_arrays(model_config, split)
    if cut:
        full_rows = getattr(model, "runs_spans", False)  # a pad-start model that skips the padding itself
        batches = batching.ReviewBatches(x, y, batch_size, model_config.padding, bucketed=True, full_rows=full_rows)
        result = model.evaluate(batches.dataset(), verbose=0, return_dict=True)
    else:
        result = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return {"accuracy": float(result["accuracy"]), "loss": float(result["loss"]), "n": len(y)}


def load_run_model(run: RunInfo):
    """The Keras model of a run, compiled for evaluation; ValueError when the run has no usable weights."""
    import keras

    problem = runs.model_problem(run.model_path)
    if problem or run.config is None:
        reason = problem or f"{runs.CONFIG_FILE} is missing or invalid"
        raise ValueError(f"run {run.run_id} cannot be loaded: {reason}")
    try:
        model = keras.models.load_model(run.model_path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged file; all mean the same to a user.
        reason = first_line(error)
        raise ValueError(f"run {run.run_id} cannot be loaded: {reason}") from None
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    return model


def evaluate_split(run_dir: str | Path, split: Split) -> dict:
    """Accuracy, loss and count of a run's model on a split encoded with the run's vocabulary."""
    run = runs.read_run(run_dir)
    model = load_run_model(run)
    if not len(split):
        raise ValueError("there are no test reviews to evaluate on")
    return _evaluate_model(model, run.config.model, split, run.config.train.batch_size)


def evaluate_run(run_dir: str | Path, dataset: Dataset) -> dict:
    """Accuracy, loss and count of a run's model on dataset.test: {"accuracy", "loss", "n"}.

    A dataset encoded with other words than the run's (another source) is encoded again with the run's vocabulary.
    """
    split, _ = split_for_vocabulary(dataset, runs.read_vocabulary(run_dir))
    return evaluate_split(run_dir, split)


@dataclass(frozen=True)
class TrainingSetup:
    """What `python -m core train` trains: the settings, checked, and the reviews, loaded."""

    model_config: ModelConfig
    train_config: TrainConfig
    dataset: Dataset
    store: RunStore
    limit: int | None

    @property
    def data_line(self) -> str:
        """Where the reviews come from and how many are used, for people."""
        dataset, used = self.dataset, ""
        if self.limit is not None and self.limit < len(dataset.train):
            used = f" (--limit: the first {self.limit:,} used)"
        return f"data: {dataset.source}: {len(dataset.train):,} training{used} and {len(dataset.test):,} test reviews"


def prepare_training(
    experiment: ExperimentConfig,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    data: str | None = None,
    runs_folder: str | None = None,
    on_loading: Callable[[float, str], None] | None = None,
    before_tensorflow: Callable[[], None] | None = None,
) -> TrainingSetup:
    """Check a training's settings (epochs and limit override the experiment's) and load its reviews (data, else
    IMDB_DATA, else Keras's imdb.npz); ValueError with one line for anything a user can get wrong, before the data."""
    import dataclasses

    from core.data.load import load_dataset
    from core.paths import data_source

    train_config = experiment.train
    if epochs is not None:
        # TrainConfig validates it again: --epochs 0 fails with the field's own message.
        train_config = dataclasses.replace(train_config, epochs=epochs)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be a positive number of reviews, got {limit}")
    if not experiment.model.is_classifier:
        raise ValueError("this model has no classifier on top (a seed-rnn or seed-stacked cell); it cannot be trained")
    distribute.cluster_task(train_config.distribution)  # a missing or broken TF_CONFIG, before the data
    store = RunStore(runs_folder)
    # Both before the data, which can take half a minute to load the first time; train() takes the lock for real.
    with store.training_lock():
        pass
    source = data or data_source()
    if source is None and before_tensorflow is not None:
        before_tensorflow()  # Keras's imdb.npz is read through Keras
    dataset = load_dataset(source, num_words=experiment.model.vocabulary_size, progress=on_loading)
    return TrainingSetup(experiment.model, train_config, dataset, store, limit)


def outcome_lines(run: RunInfo) -> list[str]:
    """What a finished training says: its best epoch (lowest val loss) and its test accuracy, when known."""
    metrics = run.metrics or {}
    lines = []
    if metrics.get("best_epoch"):
        lines.append(
            f"{BEST_EPOCH_LABEL} {metrics['best_epoch']}: "
            f"val_loss {metrics['best_val_loss']:.4f}, val_accuracy {metrics['best_val_accuracy']:.4f}"
        )
    if metrics.get("test_accuracy") is not None:
        lines.append(
            f"test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
            f"on {metrics['test_n']:,} reviews; fit took {metrics['train_seconds']:.0f} s"
        )
    return lines
