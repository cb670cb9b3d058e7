"""Configs, describe() against Keras, and training: toy signal learned, cancel, early stopping, failures, time left."""

from __future__ import annotations

import json
import os
import random
import threading
from dataclasses import replace

import numpy as np
import pytest

from core.config import (
    PRESETS,
    ExperimentConfig,
    ModelConfig,
    RecurrentLayerConfig,
    TrainConfig,
    preset,
)
from core.data.load import Dataset, Split
from core.training.progress import EpochClock
from core.model.build import build_model, describe
from core.runs.store import RunStore
from core.data.text import Vocabulary
from core.training.trainer import TrainingCallbacks, evaluate_run, load_run_model, train, training_arrays

MARKER = 5  # a review is positive exactly when it holds this word id


def toy_split(count: int, rng: np.random.Generator, length: tuple[int, int] = (5, 20)) -> Split:
    sequences, labels = [], []
    for index in range(count):
        ids = rng.integers(MARKER + 1, 50, size=int(rng.integers(*length)))
        label = index % 2
        if label:
            ids[rng.integers(0, len(ids))] = MARKER
        sequences.append([1, *ids.tolist()])
        labels.append(label)
    return Split.from_lists(sequences, labels)


def toy_dataset(train_count: int = 600, test_count: int = 200, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    vocabulary = Vocabulary(words=("<unused>", *[f"w{i}" for i in range(1, 47)]), num_words=50)
    return Dataset("toy reviews", "csv", vocabulary, toy_split(train_count, rng), toy_split(test_count, rng))


TOY_MODEL = ModelConfig(
    vocabulary_size=50, sequence_length=20, embedding_dim=8, recurrent_layers=(RecurrentLayerConfig(units=8),)
)
TOY_TRAIN = TrainConfig(epochs=5, batch_size=32, learning_rate=0.01)


# ---- configs -------------------------------------------------------------------------------------------------------

BAD_FIELDS = [
    (RecurrentLayerConfig, "cell", "rnn"),
    (RecurrentLayerConfig, "units", 0),
    (RecurrentLayerConfig, "units", -3),
    (RecurrentLayerConfig, "units", 2.5),
    (RecurrentLayerConfig, "dropout", 1.0),
    (RecurrentLayerConfig, "dropout", -0.1),
    (RecurrentLayerConfig, "recurrent_dropout", 1.5),
    (RecurrentLayerConfig, "recurrent_dropout", "a"),
    (ModelConfig, "vocabulary_size", 9),
    (ModelConfig, "vocabulary_size", 200_001),
    (ModelConfig, "vocabulary_size", True),
    (ModelConfig, "sequence_length", 0),
    (ModelConfig, "sequence_length", 5_001),
    (ModelConfig, "embedding_dim", 0),
    (ModelConfig, "recurrent_layers", ()),
    (ModelConfig, "recurrent_layers", tuple(RecurrentLayerConfig() for _ in range(9))),
    (ModelConfig, "recurrent_layers", "simple_rnn"),
    (ModelConfig, "hidden_dense_units", -1),
    (ModelConfig, "output_layer", "yes"),
    (ModelConfig, "last_return_sequences", 1),
    (ModelConfig, "mask_padding", None),
    (ModelConfig, "padding", "middle"),
    (ModelConfig, "truncating", "both"),
    (TrainConfig, "optimizer", "adagrad"),
    (TrainConfig, "learning_rate", 0),
    (TrainConfig, "learning_rate", "fast"),
    (TrainConfig, "batch_size", 0),
    (TrainConfig, "epochs", 0),
    (TrainConfig, "epochs", 1.5),
    (TrainConfig, "validation_split", 1.0),
    (TrainConfig, "early_stopping_patience", -1),
    (TrainConfig, "seed", -1),
]


@pytest.mark.parametrize(("cls", "name", "value"), BAD_FIELDS, ids=lambda item: str(getattr(item, "__name__", item)))
def test_every_bad_field_value_raises_a_value_error_naming_the_field(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


def test_conflicting_fields_are_refused_with_their_names():
    with pytest.raises(ValueError, match="last_return_sequences"):
        ModelConfig(last_return_sequences=True)  # the output layer is on by default
    with pytest.raises(ValueError, match="early_stopping_patience"):
        TrainConfig(validation_split=0.0, early_stopping_patience=2)


@pytest.mark.parametrize(
    "data",
    [
        {"model": {"units": 3}},
        {"train": {"epoch": 3}},
        {"model": {"recurrent_layers": [{"cell": "lstm", "size": 3}]}},
        {"extra": {}},
    ],
)
def test_unknown_keys_are_refused(data):
    with pytest.raises(ValueError, match="unknown field"):
        ExperimentConfig.from_dict(data)


def test_bad_json_and_missing_files_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        ExperimentConfig.from_json("{model:")
    with pytest.raises(ValueError, match="does not exist"):
        ExperimentConfig.from_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown preset"):
        preset("seed-xl")


def _random_model_config(rng: random.Random) -> ModelConfig:
    layers = tuple(
        RecurrentLayerConfig(cell=rng.choice(["simple_rnn", "lstm", "gru"]), units=rng.randint(1, 24))
        for _ in range(rng.randint(1, 3))
    )
    output = rng.random() < 0.8
    return ModelConfig(
        vocabulary_size=rng.randint(10, 500),
        sequence_length=rng.randint(1, 40),
        embedding_dim=rng.randint(1, 16),
        recurrent_layers=layers,
        hidden_dense_units=rng.choice([0, 0, rng.randint(1, 16)]) if output else 0,
        output_layer=output,
        last_return_sequences=not output and rng.random() < 0.5,
        mask_padding=rng.random() < 0.3,
    )


def test_configs_survive_a_json_round_trip():
    rng = random.Random(7)
    experiments = list(PRESETS.values()) + [
        ExperimentConfig(_random_model_config(rng), TrainConfig(optimizer="adam", epochs=3, seed=5)) for _ in range(10)
    ]
    for experiment in experiments:
        assert ExperimentConfig.from_json(experiment.to_json()) == experiment
        assert json.loads(experiment.to_json()) == experiment.to_dict()


# ---- describe() against Keras --------------------------------------------------------------------------------------


def _assert_describe_matches_keras(config: ModelConfig) -> None:
    model = build_model(config)
    description = describe(config)
    assert description.total_params == model.count_params()
    assert [row.name for row in description.layers] == [layer.name for layer in model.layers]
    for row, layer in zip(description.layers, model.layers):
        assert row.params == layer.count_params(), row.name
        assert row.output_shape == tuple(layer.output.shape), row.name
    assert description.size_bytes == 4 * model.count_params()


@pytest.mark.slow  # builds 60 Keras models: several seconds on two cores
def test_describe_equals_keras_on_60_random_configs():
    rng = random.Random(2024)
    configs = [_random_model_config(rng) for _ in range(60)]
    # Every cell type, stacks, a hidden Dense and both output settings must be among them.
    cells = {layer.cell for config in configs for layer in config.recurrent_layers}
    assert cells == {"simple_rnn", "lstm", "gru"}
    assert any(len(c.recurrent_layers) > 1 for c in configs) and any(c.hidden_dense_units for c in configs)
    assert any(not c.output_layer for c in configs) and any(c.last_return_sequences for c in configs)
    for config in configs:
        _assert_describe_matches_keras(config)


@pytest.mark.parametrize(("name", "total"), [("seed-rnn", 322_080), ("seed-stacked", 328_320), ("seed", 322_113)])
def test_seed_presets_have_the_books_parameter_counts(name, total):
    config = preset(name).model
    assert describe(config).total_params == total
    _assert_describe_matches_keras(config)


def test_seed_rnn_shows_the_right_shape_for_return_sequences():
    rows = describe(preset("seed-rnn").model).layers
    assert rows[1].output_shape == (None, 500, 32)


# ---- training ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One toy training shared by the tests below, with every callback recorded."""
    dataset = toy_dataset()
    seen = {"created": [], "epochs": [], "batches": []}
    callbacks = TrainingCallbacks(
        on_run_created=seen["created"].append,
        on_epoch_end=lambda epoch, logs: seen["epochs"].append((epoch, logs)),
        on_batch_end=lambda epoch, fraction: seen["batches"].append((epoch, fraction)),
    )
    store = RunStore(tmp_path_factory.mktemp("toy_runs"))
    run = train(TOY_MODEL, TOY_TRAIN, dataset, callbacks, store=store)
    return run, dataset, seen


@pytest.mark.slow
def test_a_tiny_model_learns_the_toy_signal(toy_run):
    run, dataset, _ = toy_run
    assert run.status == "finished" and run.broken is None and run.error is None
    assert run.metrics["test_accuracy"] > 0.9
    assert run.metrics["test_n"] == len(dataset.test)
    assert run.metrics["epochs_run"] == 5 == run.epochs_done
    assert run.history["val_accuracy"][-1] > 0.9


@pytest.mark.slow
def test_the_run_folder_holds_everything_downstream_needs(toy_run):
    run, dataset, _ = toy_run
    names = {path.name for path in run.path.iterdir()}
    assert {"config.json", "vocab.json", "history.json", "model.keras", "metrics.json", "run.json"} <= names
    assert not [name for name in names if name.startswith(".")]  # no temporary file left
    assert run.config == ExperimentConfig(TOY_MODEL, TOY_TRAIN)
    assert Vocabulary.from_dict(json.loads((run.path / "vocab.json").read_text())) == dataset.vocabulary
    assert run.data == {"source": "toy reviews", "kind": "csv", "limit": None, "path": None, "reviews": 600}
    assert set(run.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert set(run.metrics) >= {
        "test_accuracy", "test_loss", "test_n", "best_epoch", "best_val_accuracy", "best_val_loss", "epochs_run",
        "train_seconds",
    }
    best = int(np.argmin(run.history["val_loss"]))
    assert run.metrics["best_epoch"] == best + 1
    assert run.metrics["best_val_loss"] == pytest.approx(run.history["val_loss"][best])
    assert run.created and run.finished


@pytest.mark.slow
def test_callbacks_hear_every_epoch_and_batch(toy_run):
    run, _, seen = toy_run
    assert seen["created"] == [run.path]
    assert [epoch for epoch, _ in seen["epochs"]] == [1, 2, 3, 4, 5]
    assert seen["epochs"][0][1]["val_loss"] == pytest.approx(run.history["val_loss"][0])
    # 600 reviews, 20% held out: 480 train in 15 batches of 32 per epoch. Keras runs the batch hook on helper
    # threads; the caller hears each batch at most once and in order (a late, older one is skipped), every last one.
    assert seen["batches"] == sorted(set(seen["batches"])) and len(seen["batches"]) <= 5 * 15
    for epoch in range(1, 6):
        fractions = [fraction for heard, fraction in seen["batches"] if heard == epoch]
        assert fractions[-1] == 1.0 and all(round(fraction * 15, 6).is_integer() for fraction in fractions)


@pytest.mark.slow
def test_evaluate_run_reproduces_the_test_metrics(toy_run):
    run, dataset, _ = toy_run
    result = evaluate_run(run.path, dataset)
    assert result["n"] == len(dataset.test)
    assert result["accuracy"] == pytest.approx(run.metrics["test_accuracy"], abs=1e-6)
    assert result["loss"] == pytest.approx(run.metrics["test_loss"], rel=1e-5)


@pytest.mark.slow
def test_training_is_repeatable_with_the_same_seed(toy_run, tmp_path):
    run, dataset, _ = toy_run
    again = train(TOY_MODEL, replace(TOY_TRAIN, epochs=2), dataset, store=RunStore(tmp_path))
    assert again.history["loss"] == pytest.approx(run.history["loss"][:2], rel=1e-5)


@pytest.mark.slow
def test_cancel_after_one_batch_keeps_a_cancelled_run(tmp_path):
    cancel = threading.Event()
    batches = []

    def on_batch_end(epoch, fraction):
        batches.append((epoch, fraction))
        cancel.set()

    run = train(
        TOY_MODEL,
        replace(TOY_TRAIN, epochs=50),
        toy_dataset(),
        TrainingCallbacks(on_batch_end=on_batch_end, cancel=cancel),
        store=RunStore(tmp_path),
    )
    assert run.status == "cancelled" and run.broken is None
    assert run.epochs_done == 0 and run.metrics["epochs_run"] == 0
    # Keras may hand batch hooks to a helper thread, so the stop lands after this batch or, at worst, the next.
    assert len(batches) <= 2 and all(epoch == 1 for epoch, _ in batches)
    assert run.has_model and run.metrics["test_accuracy"] is None


@pytest.mark.slow
def test_cancel_after_an_epoch_keeps_that_epoch(tmp_path):
    cancel = threading.Event()
    run = train(
        TOY_MODEL,
        replace(TOY_TRAIN, epochs=50),
        toy_dataset(),
        TrainingCallbacks(on_epoch_end=lambda epoch, logs: cancel.set(), cancel=cancel),
        store=RunStore(tmp_path),
    )
    assert run.status == "cancelled"
    assert run.epochs_done == 1 and len(run.history["val_loss"]) == 1


def _diverging_dataset() -> Dataset:
    """The validation share (the last 20%) has every label flipped: the better the fit, the worse val_loss gets."""
    dataset = toy_dataset(train_count=500)
    labels = dataset.train.labels.copy()
    labels[400:] = 1 - labels[400:]
    return replace(dataset, train=replace(dataset.train, labels=labels))


@pytest.mark.slow
def test_early_stopping_restores_the_best_epochs_weights(tmp_path):
    dataset = _diverging_dataset()
    train_config = replace(TOY_TRAIN, epochs=20, early_stopping_patience=2)
    run = train(TOY_MODEL, train_config, dataset, store=RunStore(tmp_path))
    losses = run.history["val_loss"]
    best = int(np.argmin(losses)) + 1
    assert run.status == "finished"
    assert run.epochs_done < 20, "val_loss kept falling: the toy data no longer diverges"
    assert run.epochs_done == best + 2  # stopped after `patience` epochs without a better val_loss
    assert run.metrics["best_epoch"] == best and run.metrics["restored_best_weights"] is True
    # The saved weights are the best epoch's: they give its val_loss again on the validation share.
    model = load_run_model(run)
    x, y = training_arrays(TOY_MODEL, dataset.train)
    result = model.evaluate(x[400:], y[400:], batch_size=32, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(losses[best - 1], rel=1e-4)


@pytest.mark.slow
def test_limit_trains_on_the_first_n_reviews(tmp_path):
    run = train(TOY_MODEL, replace(TOY_TRAIN, epochs=1), toy_dataset(), store=RunStore(tmp_path), limit=100)
    assert run.data["limit"] == 100 and run.data["reviews"] == 100


@pytest.mark.slow
def test_an_exception_marks_the_run_failed_and_is_raised_again(tmp_path):
    def explode(epoch, logs):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        train(TOY_MODEL, TOY_TRAIN, toy_dataset(), TrainingCallbacks(on_epoch_end=explode), store=RunStore(tmp_path))
    (run,) = RunStore(tmp_path).list()
    assert run.status == "failed" and run.error == "disk on fire"
    assert run.epochs_done == 1  # history.json was written before the callback ran


@pytest.mark.slow
def test_ctrl_c_during_fit_saves_a_cancelled_run_then_goes_on(tmp_path):
    def interrupt(epoch, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TOY_MODEL, TOY_TRAIN, toy_dataset(), TrainingCallbacks(on_epoch_end=interrupt), store=RunStore(tmp_path))
    (run,) = RunStore(tmp_path).list()
    assert run.status == "cancelled" and run.error == "interrupted by the user"
    assert run.has_model and run.broken is None and run.epochs_done == 1


def test_only_classifiers_and_matching_data_can_be_trained(tmp_path):
    dataset = toy_dataset(train_count=20, test_count=4)
    with pytest.raises(ValueError, match="only a classifier"):
        train(replace(TOY_MODEL, output_layer=False), TOY_TRAIN, dataset, store=RunStore(tmp_path))
    with pytest.raises(ValueError, match="num_words=20"):
        train(replace(TOY_MODEL, vocabulary_size=20), TOY_TRAIN, dataset, store=RunStore(tmp_path))
    with pytest.raises(ValueError, match="num_words=80"):  # a bigger Embedding would make a run export refuses
        train(replace(TOY_MODEL, vocabulary_size=80), TOY_TRAIN, dataset, store=RunStore(tmp_path))
    with pytest.raises(ValueError, match="limit"):
        train(TOY_MODEL, TOY_TRAIN, dataset, store=RunStore(tmp_path), limit=0)
    with pytest.raises(ValueError, match="cannot be split"):
        train(TOY_MODEL, TOY_TRAIN, dataset, store=RunStore(tmp_path), limit=1)
    assert RunStore(tmp_path).list() == []  # refused before any folder was made


def test_training_arrays_pad_and_cut_as_configured():
    split = Split.from_lists([[1, 7, 8, 9], [1, 6]], [1, 0])
    x, y = training_arrays(replace(TOY_MODEL, sequence_length=3), split)
    assert x.tolist() == [[7, 8, 9], [0, 1, 6]] and y.dtype == np.float32
    x, _ = training_arrays(replace(TOY_MODEL, sequence_length=3, padding="post", truncating="post"), split)
    assert x.tolist() == [[1, 7, 8], [1, 6, 0]]


# ---- the clock behind "about N s left in this epoch" --------------------------------------------------------------


def test_time_left_is_timed_from_the_epoch_start_and_waits_for_enough_batches(monkeypatch):
    import core.training.progress as progress

    clock = EpochClock()
    times = iter([10.0, 10.0, 11.0, 13.0, 20.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(times))
    steps = 100
    # The first batch seen, at 10 s: the first epoch is timed from here, and one batch is too few for a rate.
    assert clock.batch(1, 0.01, steps) == (None, None)
    assert clock.batch(1, 0.02, steps) == (None, None)  # two reports at once
    per_batch, left = clock.batch(1, 0.05, steps)  # 4 batches in 1 s
    assert per_batch == pytest.approx(0.25) and left == pytest.approx(0.25 * 95)
    clock.epoch_end()  # at 13 s, validation included
    per_batch, left = clock.batch(2, 0.1, steps)  # 10 batches of epoch 2 in the 7 s since epoch 1 ended
    assert per_batch == pytest.approx(0.7) and left == pytest.approx(0.7 * 90)


def test_a_bad_layer_in_a_config_file_is_named_by_its_place():
    data = {"model": {"recurrent_layers": [{"units": 8}, {"units": 0}]}}
    with pytest.raises(ValueError, match=r"^model\.recurrent_layers\[1\]\.units must be between 1 and"):
        ExperimentConfig.from_dict(data)
    with pytest.raises(ValueError, match=r"^model\.recurrent_layers\[0\] has unknown field\(s\) size"):
        ExperimentConfig.from_dict({"model": {"recurrent_layers": [{"size": 8}]}})


def _cut_and_full_runs(model, settings, tmp_path, monkeypatch):
    """The same toy training twice: on batches cut to their longest review, recording the widths, then at full
    width. Returns both runs and the widths."""
    from core.training import batching

    widths = []
    cut_width = batching.bucket_width

    def recorded_width(longest: int, length: int) -> int:
        widths.append(cut_width(longest, length))
        return widths[-1]

    monkeypatch.setattr(batching, "bucket_width", recorded_width)
    cut_run = train(model, settings, toy_dataset(), store=RunStore(tmp_path / "cut"))
    monkeypatch.setattr(batching, "bucket_width", lambda longest, length: length)
    full_run = train(model, settings, toy_dataset(), store=RunStore(tmp_path / "full"))
    return cut_run, full_run, widths


@pytest.mark.slow
def test_a_masked_model_trains_the_same_on_cut_batches_as_on_full_rows(tmp_path, monkeypatch):
    """Bucketing only drops padded steps, which a masked model skips: the history matches full-width batches of
    the same reviews in the same order to float32 rounding (1e-5 relative; TensorFlow's kernels on both sides, the
    toy training being far too small for XLA)."""
    masked = replace(TOY_MODEL, mask_padding=True, sequence_length=40)
    cut_run, full_run, widths = _cut_and_full_runs(masked, replace(TOY_TRAIN, epochs=3), tmp_path, monkeypatch)
    assert max(widths) < masked.sequence_length  # the toy reviews are 6 to 20 ids: every batch was cut
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert cut_run.history[key] == pytest.approx(full_run.history[key], rel=1e-5), key
    assert cut_run.metrics["test_accuracy"] > 0.9


@pytest.mark.slow
def test_the_seed_trains_the_same_on_cut_batches_started_from_the_pad_chain(tmp_path, monkeypatch):
    """An unmasked pre-padded model (the book's seed) trains on batches cut to their longest review, each layer
    started from the state its pad steps leave (core.training.pad_start): the history matches the same batches at
    full width, where the pad chain runs no steps (SGD: with RMSprop the pad row's running size differs, as
    tests/test_pad_start.py shows; 1e-5 relative). The run's model.keras and its checkpoint are a plain model's
    files."""
    import keras

    from core.runs import checkpoints
    from core.training.trainer import cuts_batches

    model, settings = TOY_MODEL, replace(TOY_TRAIN, epochs=3, optimizer="sgd", learning_rate=0.1)
    assert cuts_batches(model, settings) and not cuts_batches(model, replace(settings, distribution="mirrored"))
    assert not cuts_batches(replace(model, padding="post"), settings)
    cut_run, full_run, widths = _cut_and_full_runs(model, settings, tmp_path, monkeypatch)
    assert min(widths) < model.sequence_length  # batches were cut
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert cut_run.history[key] == pytest.approx(full_run.history[key], rel=1e-5), key
    assert cut_run.metrics["test_accuracy"] == pytest.approx(full_run.metrics["test_accuracy"], abs=1e-6)
    saved = keras.models.load_model(cut_run.model_path, compile=False)
    assert isinstance(saved, keras.Sequential) and saved.count_params() == model.parameters
    plain = keras.models.load_model(full_run.model_path, compile=False)
    for mine, theirs in zip(saved.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)
    _, state = checkpoints.latest_state(cut_run.path)
    _, plain_state = checkpoints.latest_state(full_run.path)
    import h5py

    def keys(path):
        found = []
        with h5py.File(path) as file:
            file.visit(found.append)
        return found

    assert keys(state) == keys(plain_state) and any("optimizer" in key for key in keys(state))


@pytest.mark.slow
@pytest.mark.parametrize("mask_padding", [False, True])
def test_the_seed_compiled_with_xla_trains_on_full_rows_as_spans_the_same(tmp_path, monkeypatch, mask_padding):
    """Compiled with XLA, the seed's SimpleRNN (and the masked default's) runs as spans from each batch's first filled
    column (core.training.rnn_span) on full rows, in the cut batches' order: the history matches TensorFlow's kernels
    on the same batches at full width (SGD, 1e-5 relative). Every batch has one shape: the short last batch of each
    pass (training 590 * 0.8 = 14 * 32 + 24, validation 118 = 3 * 32 + 22, test 200 = 6 * 32 + 8) filled up with rows
    of pads that weigh nothing."""
    from core.training import batching, trainer

    model = replace(TOY_MODEL, mask_padding=mask_padding)
    settings = replace(TOY_TRAIN, epochs=3, optimizer="sgd", learning_rate=0.1)
    made = []
    fit_batches = batching.fit_batches

    def recorded(*args, **kwargs):
        made.append(kwargs["full_rows"])
        return fit_batches(*args, **kwargs)

    monkeypatch.setattr(batching, "fit_batches", recorded)
    monkeypatch.setattr(trainer, "uses_xla", lambda *args, **kwargs: True)
    spans_run = train(model, settings, toy_dataset(590), store=RunStore(tmp_path / "spans"))
    assert made == [True]
    monkeypatch.setattr(trainer, "uses_xla", lambda *args, **kwargs: False)
    monkeypatch.setattr(batching, "bucket_width", lambda longest, length: length)
    full_run = train(model, settings, toy_dataset(590), store=RunStore(tmp_path / "full"))
    assert made == [True, False]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert spans_run.history[key] == pytest.approx(full_run.history[key], rel=1e-5), key
    assert spans_run.metrics["test_accuracy"] == pytest.approx(full_run.metrics["test_accuracy"], abs=1e-6)


def test_xla_compiles_only_a_training_long_enough_to_pay_for_it():
    """core.training.trainer.uses_xla: review-steps (training reviews x epochs left x sequence_length) against the
    break-even bench/xla_break_even.py measured, by what XLA would compile: one program for full rows or for spans,
    one a batch width for cut batches (which need more)."""
    from core.training.trainer import XLA_BREAK_EVEN, uses_xla, xla_programs

    seed, masked = preset("seed"), replace(preset("seed").model, mask_padding=True)
    full_rows = replace(seed.model, padding="post")
    cut = replace(masked, recurrent_layers=(RecurrentLayerConfig(cell="lstm", units=32),))  # no spans for LSTM
    kinds = [xla_programs(model, seed.train) for model in (full_rows, seed.model, masked, cut)]
    assert kinds == ["full rows", "spans", "spans", "cut batches"]
    assert xla_programs(seed.model, replace(seed.train, distribution="mirrored")) == "full rows"
    archive = 20_000  # the whole archive's training reviews after the 0.2 validation split
    for model in (full_rows, seed.model, masked, cut):
        assert uses_xla(model, seed.train, archive)  # 10 epochs
        assert not uses_xla(model, seed.train, 320, epochs=3)  # the tests' and a first try's small trainings
    # Spans: the whole archive pays from 1 epoch, 4,000 reviews from 4 epochs; full rows and cut batches need more.
    assert uses_xla(seed.model, seed.train, archive, epochs=1) and uses_xla(masked, seed.train, archive, epochs=1)
    assert not uses_xla(full_rows, seed.train, archive, epochs=1) and not uses_xla(cut, seed.train, archive, epochs=2)
    assert uses_xla(seed.model, seed.train, 4_000, epochs=4) and uses_xla(masked, seed.train, 4_000, epochs=4)
    assert not uses_xla(full_rows, seed.train, 4_000, epochs=4) and not uses_xla(cut, seed.train, 4_000, epochs=4)
    for model, kind in ((full_rows, "full rows"), (seed.model, "spans"), (cut, "cut batches")):
        at = XLA_BREAK_EVEN[kind] // model.sequence_length
        assert uses_xla(model, seed.train, at, epochs=1) and not uses_xla(model, seed.train, at - 1, epochs=1)
    # Resuming at epoch 9 of 10 has one epoch left to pay for a compile.
    assert not uses_xla(full_rows, seed.train, 4_000, epochs=1) and uses_xla(full_rows, seed.train, 4_000)
    assert not uses_xla(seed.model, replace(seed.train, distribution="mirrored"), archive)  # TensorFlow's kernels


@pytest.mark.slow
def test_a_training_compiled_with_xla_learns_what_tensorflow_kernels_learn(tmp_path, monkeypatch):
    """A toy training is far below the break-even; forced over it, fit compiles with XLA (a masked model: spans, as
    the shipped model on the whole archive, on batches sorted into two widths) and its history matches TensorFlow's own
    kernels on cut batches to float32 rounding accumulated over three epochs (two kernels: a tolerance)."""
    import core.training.trainer as training
    from core.training import batching

    picked = []
    chosen = training.uses_xla
    monkeypatch.setattr(training, "uses_xla", lambda *args: picked.append(chosen(*args)) or picked[-1])
    masked, settings = replace(TOY_MODEL, mask_padding=True), replace(TOY_TRAIN, epochs=3)
    widths = set()

    def two_widths(longest: int, length: int) -> int:  # a compile per width, at a fifth of the compiling
        widths.add(10 if longest <= 10 else length)
        return 10 if longest <= 10 else length

    monkeypatch.setattr(batching, "bucket_width", two_widths)
    plain = train(masked, settings, toy_dataset(), store=RunStore(tmp_path / "plain"))
    monkeypatch.setitem(training.XLA_BREAK_EVEN, training.xla_programs(masked, settings), 0)
    compiled = train(masked, settings, toy_dataset(), store=RunStore(tmp_path / "xla"))
    assert picked == [False, True] and widths == {10, masked.sequence_length}
    # Rounding differences grow with every step at a learning rate of 0.01: 2e-4 relative after three epochs here.
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert compiled.history[key] == pytest.approx(plain.history[key], rel=1e-3, abs=1e-5), key


def test_the_compilation_cache_goes_under_the_cache_folder_unless_one_is_named(tmp_path, monkeypatch):
    """XLA's persistent compilation cache (a second training of the same shape skips most of its compiling): set
    through TensorFlow's own flag, beside any other flags, never over a folder the user named."""
    from core.training.trainer import XLA_CACHE_FLAG, use_compilation_cache

    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    use_compilation_cache(tmp_path / "xla")
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {XLA_CACHE_FLAG}={tmp_path / 'xla'}"
    assert (tmp_path / "xla").is_dir()
    monkeypatch.setenv("TF_XLA_FLAGS", f"{XLA_CACHE_FLAG}=/somewhere/else")
    use_compilation_cache(tmp_path / "other")
    assert os.environ["TF_XLA_FLAGS"] == f"{XLA_CACHE_FLAG}=/somewhere/else" and not (tmp_path / "other").exists()


def test_state_built_before_fit_traces_the_training_step_once_and_learns_the_same():
    """Keras makes the optimizer's slots and the metrics' totals while tracing the first step, and TensorFlow then
    traces it again; the trainer builds them first (core.training.trainer._build_state): one trace, the same history."""
    import keras

    from core.training.trainer import _build_state

    traced = []

    class Counting(keras.Sequential):
        def train_step(self, data):
            traced.append(1)  # Python runs a step only while TensorFlow traces it
            return super().train_step(data)

    x = np.random.default_rng(0).integers(0, 50, (64, 20))
    y = np.random.default_rng(1).integers(0, 2, 64)
    histories, traces = [], []
    for build in (False, True):
        traced.clear()
        keras.utils.set_random_seed(1)
        model = Counting([keras.Input((20,)), keras.layers.Embedding(50, 4), keras.layers.SimpleRNN(4),
                          keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"], steps_per_execution=2,
                      jit_compile=True)
        if build:
            _build_state(model, y)
        histories.append(model.fit(x, y, epochs=2, batch_size=16, verbose=0).history)
        traces.append(len(traced))
    assert traces == [2, 1]
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(histories[1][name], histories[0][name], rtol=1e-6)
