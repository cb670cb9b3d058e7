"""core.training.pad_start: a pre-padded unmasked batch cut to its longest review, each layer started from the pad
chain's state, gives the full rows' probabilities, loss and gradients to float rounding, and a few optimizer steps on
cut batches end where full rows end: SimpleRNN, LSTM, GRU and a stacked model with a hidden Dense layer.

SimpleRNN models, masked ones too, run as spans (core.training.rnn_span, its gradient written by hand): the same
checks, eager, in a TensorFlow graph and under XLA, where one compiled program serves batches of every length."""

import numpy as np
import pytest

from core.config import ModelConfig, RecurrentLayerConfig
from core.training.pad_start import pad_start_model, runs_as_spans, starts_from_pads
from tests.float_checks import assert_close
from tests.keras_models import random_model, small_config

# Loading TensorFlow and building Keras models: seconds, not milliseconds.
pytestmark = pytest.mark.slow

STEPS = 40


def _config(*layers, **settings) -> ModelConfig:
    return small_config(layers, 50, STEPS, 6, **settings)


CASES = {
    "simple_rnn": _config(("simple_rnn", 8)),
    "lstm": _config(("lstm", 6)),
    "gru": _config(("gru", 6)),
    "stacked_with_hidden_dense": _config(("gru", 5), ("lstm", 4), ("simple_rnn", 6), hidden_dense_units=4),
    "stacked_simple_rnn": _config(("simple_rnn", 5), ("simple_rnn", 7), hidden_dense_units=4),
}


def _batch(seed: int, rows: int = 16, longest: int = 17):
    """Pre-padded rows of 3 to longest ids (the start id first) and their labels."""
    generator = np.random.default_rng(seed)
    ids = np.zeros((rows, STEPS), np.int32)
    for row, length in enumerate(generator.integers(3, longest + 1, rows)):
        ids[row, STEPS - length] = 1
        ids[row, STEPS - length + 1 :] = generator.integers(4, 50, length - 1)
    return ids, generator.integers(0, 2, (rows, 1)).astype(np.float32)


def _loss_and_gradients(model, ids, labels):
    import keras
    import tensorflow as tf

    with tf.GradientTape() as tape:
        probabilities = model(ids, training=True)
        loss = keras.losses.binary_crossentropy(labels, probabilities)
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_variables)
    return np.asarray(probabilities), float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in gradients]


@pytest.mark.parametrize("spans", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_a_cut_batch_has_the_full_rows_loss_and_gradients(name, spans):
    config = CASES[name]
    assert starts_from_pads(config)
    model = random_model(config, seed=11, scale=0.5)
    cut = pad_start_model(model, STEPS, spans=spans)
    assert [variable.path for variable in cut.trainable_variables] == [v.path for v in model.trainable_variables]
    ids, labels = _batch(1)
    full_probabilities, full_loss, full_gradients = _loss_and_gradients(model, ids, labels)
    for width in (17, 25, STEPS):  # the longest review, a bucket above it, and no cut at all
        probabilities, loss, gradients = _loss_and_gradients(cut, ids[:, STEPS - width :], labels)
        assert_close(probabilities, full_probabilities, err_msg=f"width {width}")
        assert loss == pytest.approx(full_loss, rel=1e-5)
        for variable, got, expected in zip(model.trainable_variables, gradients, full_gradients, strict=True):
            assert_close(got, expected, rtol=1e-4, atol=1e-6, err_msg=f"width {width}: {variable.path}")
    # The pad row's embedding gets a gradient through the chain: the pads are not free.
    assert np.abs(full_gradients[0][0]).max() > 1e-4


def test_steps_of_training_on_cut_batches_end_where_full_rows_end():
    import keras

    config = CASES["stacked_with_hidden_dense"]
    full, cut_inner = (random_model(config, seed=11, scale=0.5) for _ in range(2))
    cut = pad_start_model(cut_inner, STEPS, spans=False)
    initial = full.get_weights()
    # Plain SGD: each update is the gradient scaled, so the two trainings part only by float rounding. (RMSprop divides
    # by the gradient's running size: a weight whose gradient is zero in exact arithmetic gets +-lr from a rounding
    # error of 1e-12, in either training alike, and the weights part by the learning rate; and its pad row steps
    # otherwise, next test.)
    for model in (full, cut):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy", jit_compile=False)
    for seed in range(6):
        ids, labels = _batch(seed + 10, longest=5 + 5 * seed)
        width = int((ids != 0).any(axis=0)[::-1].argmin()) or STEPS
        full.train_on_batch(ids, labels)
        cut.train_on_batch(ids[:, STEPS - width :], labels)
    for start, before, after in zip(initial, full.get_weights(), cut_inner.get_weights(), strict=True):
        assert_close(after, before, rtol=1e-4, atol=1e-5)
        assert np.abs(before - start).max() > 1e-3, "six steps moved every weight"


@pytest.mark.parametrize("spans", [False, True])
def test_rmsprop_sizes_the_pad_row_by_the_chains_summed_gradient_and_everything_else_as_full_rows(spans):
    """Why the seed's cut batches train as full rows do with SGD but only nearly with RMSprop (or Adam): Keras on
    TensorFlow hands an embedding its gradient a row an id occurrence and squares each one for the running size, so a
    word's size grows by the sum of its occurrences' squares, not the square of their sum. The pad chain runs once for
    all rows: its steps reach the pad row as one summed gradient, where full rows give one an occurrence. The gradients
    are the same (above), and so is every running size but the pad row's; with SGD the trainings match
    (test_trainer.py)."""
    import keras

    config = CASES["simple_rnn"]
    full, cut_inner = (random_model(config, seed=11, scale=0.5) for _ in range(2))
    cut = pad_start_model(cut_inner, STEPS, spans=spans)
    for model in (full, cut):
        model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="binary_crossentropy", jit_compile=False)
    ids, labels = _batch(12)
    width = int((ids != 0).any(axis=0)[::-1].argmin()) or STEPS
    full.train_on_batch(ids, labels)
    cut.train_on_batch(ids if spans else ids[:, STEPS - width :], labels)
    sizes = [
        [np.asarray(variable) for variable in model.optimizer.variables if "velocity" in variable.path]
        for model in (full, cut)
    ]
    (embedding_full, *rest_full), (embedding_cut, *rest_cut) = sizes
    for before, after in zip([embedding_full[1:], *rest_full], [embedding_cut[1:], *rest_cut], strict=True):
        assert_close(after, before, rtol=1e-5, atol=1e-12)
    assert np.abs(embedding_cut[0] / embedding_full[0] - 1).max() > 1e-3, "the pad row's running size"
    weights_full, weights_cut = full.get_weights(), cut_inner.get_weights()
    assert_close(weights_cut[0][1:], weights_full[0][1:], rtol=1e-4, atol=1e-6)
    for before, after in zip(weights_full[1:], weights_cut[1:], strict=True):
        assert_close(after, before, rtol=1e-4, atol=1e-6)


def test_the_config_says_which_models_run_as_spans():
    assert not runs_as_spans(_config(("simple_rnn", 4), padding="post", mask_padding=True))
    assert not runs_as_spans(_config(("simple_rnn", 4), last_return_sequences=True, output_layer=False))
    assert not runs_as_spans(
        ModelConfig(recurrent_layers=(RecurrentLayerConfig(units=4), RecurrentLayerConfig(units=4, dropout=0.2)))
    )
    assert runs_as_spans(ModelConfig()) and runs_as_spans(ModelConfig(mask_padding=True))


def test_only_unmasked_pre_padded_models_without_dropout_qualify():
    assert not starts_from_pads(_config(("simple_rnn", 4), padding="post"))
    assert not starts_from_pads(_config(("simple_rnn", 4), mask_padding=True))
    assert not starts_from_pads(
        ModelConfig(recurrent_layers=(RecurrentLayerConfig(cell="lstm", units=4, recurrent_dropout=0.2),))
    )


# Masked models (their pads change nothing) run as spans too, each row's pads masked in the loop.
MASKED = {
    "masked_simple_rnn": _config(("simple_rnn", 8), mask_padding=True),
    "masked_stacked_simple_rnn": _config(("simple_rnn", 5), ("simple_rnn", 7), hidden_dense_units=4, mask_padding=True),
}
SPANS = ("simple_rnn", "stacked_simple_rnn", *MASKED)


@pytest.mark.parametrize("name", [*CASES, *MASKED, "masked_lstm"])
def test_only_simple_rnn_stacks_run_as_spans_and_only_when_asked(name):
    config = CASES.get(name) or MASKED.get(name) or _config(("lstm", 4), mask_padding=True)
    model = random_model(config, seed=1)
    assert pad_start_model(model, STEPS).runs_spans == (name in SPANS) == runs_as_spans(config)
    assert not pad_start_model(model, STEPS, spans=False).runs_spans


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("name", SPANS)
def test_one_compiled_span_step_gives_every_batch_the_full_rows_gradients(name, jit_compile):
    import tensorflow as tf

    model = random_model({**CASES, **MASKED}[name], seed=5, scale=0.5)
    spans = pad_start_model(model, STEPS)

    @tf.function(jit_compile=jit_compile)
    def step(ids, labels):
        return _loss_and_gradients_graph(spans, ids, labels)

    for seed, longest in ((2, 9), (3, 30), (4, STEPS)):  # short, long and full batches: one program
        ids, labels = _batch(seed, longest=longest)
        if longest == STEPS:
            ids[0] = np.arange(STEPS) % 40 + 4  # a review filling the row: no pad step at all
            ids[1, -3] = 0  # a pad inside a review: a masked model skips it too
        _, full_loss, full_gradients = _loss_and_gradients(model, ids, labels)
        loss, gradients = step(tf.constant(ids), tf.constant(labels))
        assert float(loss) == pytest.approx(full_loss, rel=1e-5)
        for variable, got, expected in zip(model.trainable_variables, gradients, full_gradients, strict=True):
            got = np.asarray(tf.convert_to_tensor(got))
            # Sums over up to 40 steps in another order than Keras's, for gradients up to 0.2: atol 1e-5.
            assert_close(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"longest {longest}: {variable.path}")
    assert step.experimental_get_tracing_count() == 1


def _loss_and_gradients_graph(model, ids, labels):
    import keras
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(labels, model(ids, training=True)))
    return loss, tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("name", ["stacked_simple_rnn", "masked_stacked_simple_rnn"])
def test_a_batch_of_padding_only_ends_in_the_pad_chains_state(name):
    model = random_model({**CASES, **MASKED}[name], seed=6, scale=0.5)
    ids = np.zeros((3, STEPS), np.int32)
    np.testing.assert_allclose(np.asarray(pad_start_model(model, STEPS)(ids)), np.asarray(model(ids)), atol=1e-6)


def test_xla_training_on_full_rows_as_spans_ends_where_plain_training_ends():
    import keras

    config = CASES["stacked_simple_rnn"]
    full, inner = (random_model(config, seed=12, scale=0.5) for _ in range(2))
    spans = pad_start_model(inner, STEPS)
    initial = full.get_weights()
    full.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy", jit_compile=False)
    spans.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy", jit_compile=True)
    for seed in range(6):
        ids, labels = _batch(seed + 20, longest=5 + 5 * seed)
        full.train_on_batch(ids, labels)
        spans.train_on_batch(ids, labels)
    for start, before, after in zip(initial, full.get_weights(), inner.get_weights(), strict=True):
        assert_close(after, before, rtol=1e-4, atol=1e-5)
        assert np.abs(before - start).max() > 1e-3, "six steps moved every weight"


def test_a_short_batch_filled_with_rows_of_pads_weighing_nothing_trains_and_evaluates_as_the_short_batch():
    """ReviewBatches(full_rows=True) fills the short last batch up to the batch size with rows of pads weighing 0,
    so that every batch has one shape (one XLA program): evaluation and a fit of two epochs over a full and a filled
    batch give plain Keras's loss, accuracy and weights on the 52 reviews alone (batches of 32 and 20)."""
    import keras
    import tensorflow as tf

    config = CASES["stacked_simple_rnn"]
    full, inner = (random_model(config, seed=13, scale=0.5) for _ in range(2))
    spans = pad_start_model(inner, STEPS)
    for model, jit_compile in ((full, False), (spans, True)):
        model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    (ids, labels), (short_ids, short_labels) = _batch(30, rows=32), _batch(31, rows=20)
    ids, labels = np.concatenate([ids, short_ids]), np.concatenate([labels, short_labels])
    weights = (np.arange(64) < 52).astype(np.float32)
    filled = (np.pad(ids, [(0, 12), (0, 0)]), np.pad(labels, [(0, 12), (0, 0)]), weights)
    data = tf.data.Dataset.from_tensor_slices(filled).batch(32)

    expected = full.evaluate(ids, labels, batch_size=32, return_dict=True, verbose=0)
    got = spans.evaluate(data, return_dict=True, verbose=0)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-7)
    assert 0 < expected["accuracy"] < 1
    plain = full.fit(ids, labels, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    weighed = spans.fit(data, epochs=2, shuffle=False, verbose=0).history
    for key in ("loss", "accuracy"):
        assert weighed[key] == pytest.approx(plain[key], rel=1e-5), key
    for before, after in zip(full.get_weights(), inner.get_weights(), strict=True):
        assert_close(after, before, rtol=1e-4, atol=1e-5)
