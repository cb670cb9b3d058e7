"""The NumPy reference loop against Keras: random weights for every cell and stack, and a briefly trained model."""

from __future__ import annotations

import numpy as np
import pytest

from core import cells
from core.config import ModelConfig, RecurrentLayerConfig, TrainConfig, preset
from core.data.load import Dataset, Split
from core.model.keras_archive import read_model_weights
from core.model.build import build_model
from core.model.numpy_loop import extract_weights, head_probability, run_reference
from core.runs.store import RunStore
from core.data.text import Vocabulary, pad_sequences
from core.training.trainer import load_run_model, train, training_arrays

TOLERANCE = 1e-5


def _layers(*cells: str, units: int = 7) -> tuple[RecurrentLayerConfig, ...]:
    return tuple(RecurrentLayerConfig(cell=cell, units=units) for cell in cells)


def pre_padded_ids(rng: np.random.Generator, vocabulary_size: int, length: int, count: int = 5) -> np.ndarray:
    """Reviews of several lengths, pre-padded as pad_sequences does; one longer than length is cut."""
    reviews = [[1, *rng.integers(2, vocabulary_size, size=size).tolist()] for size in (1, 3, length // 2, length - 1)]
    reviews.append([1, *rng.integers(2, vocabulary_size, size=length + 5).tolist()])
    return pad_sequences(reviews[:count], length)


def randomize(model, rng: np.random.Generator) -> None:
    """Weights far from Keras's small initial ones, so that every nonlinearity is exercised."""
    model.set_weights([rng.normal(0.0, 0.4, weight.shape).astype("float32") for weight in model.get_weights()])


def recurrent_outputs(model, ids: np.ndarray) -> list[np.ndarray]:
    """What every recurrent layer of a Keras model outputs for ids."""
    import keras

    recurrent = [layer for layer in model.layers if cells.by_keras_class(type(layer).__name__) is not None]
    probe = keras.Model(model.inputs[0], [layer.output for layer in recurrent])
    outputs = probe(ids)
    return [np.asarray(output) for output in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _small(*cells: str, **fields) -> ModelConfig:
    layers = _layers(*cells)
    return ModelConfig(vocabulary_size=40, sequence_length=12, embedding_dim=6, recurrent_layers=layers, **fields)


CONFIGS = {
    "seed classifier": _small("simple_rnn"),
    "stacked simple_rnn": _small("simple_rnn", "simple_rnn", "simple_rnn"),
    "lstm": _small("lstm"),
    "gru with hidden dense": _small("gru", hidden_dense_units=5),
    "mixed stack, masked": _small("lstm", "gru", "simple_rnn", mask_padding=True),
    "sequences out, no classifier": _small("gru", "lstm", output_layer=False, last_return_sequences=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reference_equals_keras_on_random_weights(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(len(name))
    model = build_model(config)
    randomize(model, rng)
    ids = pre_padded_ids(rng, config.vocabulary_size, config.sequence_length)
    result = run_reference(extract_weights(model), ids)
    keras_output = np.asarray(model(ids))
    if config.output_layer:
        np.testing.assert_allclose(result.probability, keras_output[:, 0], atol=TOLERANCE)
    else:
        assert result.probability is None
        np.testing.assert_allclose(result.outputs, keras_output, atol=TOLERANCE)
    # Every layer's state at every step, not only the answer.
    for states, layer_output in zip(result.states, recurrent_outputs(model, ids)):
        expected_last = layer_output if layer_output.ndim == 2 else layer_output[:, -1]
        np.testing.assert_allclose(states[:, -1], expected_last, atol=TOLERANCE)
        if layer_output.ndim == 3:
            np.testing.assert_allclose(states, layer_output, atol=TOLERANCE)
    assert [states.shape for states in result.states] == [
        (len(ids), config.sequence_length, layer.units) for layer in config.recurrent_layers
    ]


def test_masked_padding_leaves_the_state_unchanged():
    config = CONFIGS["mixed stack, masked"]
    rng = np.random.default_rng(3)
    model = build_model(config)
    randomize(model, rng)
    ids = pre_padded_ids(rng, config.vocabulary_size, config.sequence_length)
    states = run_reference(extract_weights(model), ids).states
    # The first review has two real ids: every state before them stays the zero initial state.
    assert np.all(states[0][0, :-2] == 0.0) and np.any(states[0][0, -1] != 0.0)


def test_the_seed_preset_at_full_length():
    config = preset("seed").model
    rng = np.random.default_rng(0)
    model = build_model(config)
    ids = pre_padded_ids(rng, config.vocabulary_size, config.sequence_length, count=4)
    result = run_reference(extract_weights(model), ids)
    np.testing.assert_allclose(result.probability, np.asarray(model(ids))[:, 0], atol=TOLERANCE)
    assert result.states[0].shape == (4, 500, 32)


def test_extracted_weights_are_the_models_arrays():
    config = CONFIGS["gru with hidden dense"]
    model = build_model(config)
    weights = extract_weights(model)
    assert weights.embedding.shape == (40, 6) and weights.mask_zero is False
    (gru,) = weights.recurrent
    assert gru.cell == "gru" and gru.units == 7 and gru.bias.shape == (2, 21) and gru.return_sequences is False
    assert weights.hidden.kernel.shape == (7, 5) and weights.hidden.activation == "relu"
    assert weights.output.kernel.shape == (5, 1) and weights.output.activation == "sigmoid"
    np.testing.assert_array_equal(weights.embedding, model.get_layer("embedding").get_weights()[0])


def test_bad_ids_are_refused():
    weights = extract_weights(build_model(CONFIGS["lstm"]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 40\)"):
        run_reference(weights, np.array([[1, 40]]))
    with pytest.raises(ValueError, match="integers"):
        run_reference(weights, np.array([[1.0, 2.0]]))
    assert run_reference(weights, np.array([1, 2, 3])).probability.shape == (1,)  # one review without a batch axis


@pytest.mark.slow
def test_reference_equals_a_briefly_trained_model(tmp_path):
    rng = np.random.default_rng(1)
    sequences, labels = [], []
    for index in range(300):
        ids = rng.integers(6, 60, size=int(rng.integers(4, 30)))
        if index % 2:
            ids[0] = 5
        sequences.append([1, *ids.tolist()])
        labels.append(index % 2)
    vocabulary = Vocabulary(words=("<unused>", *[f"w{i}" for i in range(1, 57)]), num_words=60)
    split = Split.from_lists(sequences, labels)
    dataset = Dataset("toy", "csv", vocabulary, split, split.subset(np.arange(40)))
    layers = _layers("simple_rnn", "lstm")
    config = ModelConfig(vocabulary_size=60, sequence_length=24, embedding_dim=8, recurrent_layers=layers)
    run = train(config, TrainConfig(epochs=2, batch_size=32, learning_rate=0.01), dataset, store=RunStore(tmp_path))
    model = load_run_model(run)
    ids, _ = training_arrays(config, dataset.test)  # pre-padded, some reviews cut
    expected = model.predict(ids, verbose=0)[:, 0]
    result = run_reference(extract_weights(model), ids)
    np.testing.assert_allclose(result.probability, expected, atol=TOLERANCE)
    assert np.ptp(expected) > 0.01  # training moved the outputs apart: the check is not between two constants


def test_the_head_alone_gives_the_loops_probability_at_every_step():
    config = CONFIGS["gru with hidden dense"]
    rng = np.random.default_rng(4)
    model = build_model(config)
    randomize(model, rng)
    ids = pre_padded_ids(rng, config.vocabulary_size, config.sequence_length)
    weights = extract_weights(model)
    result = run_reference(weights, ids)
    np.testing.assert_array_equal(head_probability(weights, result.states[-1][:, -1]), result.probability)
    every_step = head_probability(weights, result.states[-1][0])  # one review's states, (steps, units)
    # Another matrix shape, (steps, units) against (batch, units): BLAS may block and round the sums otherwise.
    assert every_step.shape == (config.sequence_length,)
    assert every_step[-1] == pytest.approx(result.probability[0], rel=1e-12, abs=1e-15)
    no_head = extract_weights(build_model(CONFIGS["sequences out, no classifier"]))
    assert head_probability(no_head, result.states[-1]) is None


@pytest.mark.parametrize("name", ["gru with hidden dense", "mixed stack, masked"])
def test_weights_read_from_model_keras_without_tensorflow_are_the_models(name, tmp_path):
    config = CONFIGS[name]
    model = build_model(config)
    randomize(model, np.random.default_rng(5))
    model.save(tmp_path / "model.keras")
    read = read_model_weights(tmp_path / "model.keras")
    live = extract_weights(model)
    assert read.mask_zero == live.mask_zero == config.mask_padding
    assert [layer.cell for layer in read.recurrent] == [layer.cell for layer in config.recurrent_layers]
    np.testing.assert_array_equal(read.embedding, live.embedding)
    for mine, theirs in zip(read.recurrent, live.recurrent, strict=True):
        for field in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field))
        assert mine.return_sequences == theirs.return_sequences
    assert (read.hidden is None) == (live.hidden is None) and read.output.activation == "sigmoid"
    with pytest.raises(ValueError, match="cannot be read as a Keras model"):
        read_model_weights(tmp_path / "missing.keras")
