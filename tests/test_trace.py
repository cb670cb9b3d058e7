"""core.model.trace on the hand-built model's own weights: the states, the probability so far, the loop, the comparison."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.config import ModelConfig, RecurrentLayerConfig
from core.scoring.predictor import Predictor
from core.model.numpy_loop import DenseWeights, ModelWeights, RecurrentWeights
from core.model.numpy_loop import head_probability
from core.model.trace import compare_implementations, loop_terms, trace_review
from tests.hand_built_file import DIM, SEQUENCE_LENGTH, UNITS, VOCABULARY, tiny_weights, build_model, numpy_steps

MODEL = ModelConfig(
    vocabulary_size=VOCABULARY.num_words,
    sequence_length=SEQUENCE_LENGTH,
    embedding_dim=DIM,
    recurrent_layers=(RecurrentLayerConfig("simple_rnn", UNITS),),
)


def _model_weights() -> ModelWeights:
    """The hand-built ONNX model's weights in Keras's layout: kernels transposed, the two ONNX biases added."""
    weights = tiny_weights()
    bias = weights["B"][0, :UNITS] + weights["B"][0, UNITS:]
    layer = RecurrentWeights("simple_rnn", weights["W"][0].T, weights["R"][0].T, bias, False)
    output = DenseWeights(weights["kernel"], weights["bias"], "sigmoid")
    return ModelWeights(weights["embedding"], (layer,), None, output, False)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    path = Path(tmp_path_factory.mktemp("trace")) / "tiny.onnx"
    onnx.save(build_model(), path)
    return Predictor.from_file(path)


def test_the_trace_follows_the_review_step_by_step():
    trace = trace_review(_model_weights(), VOCABULARY, MODEL, "Good movie, zorblax!")
    assert trace.tokens == ("<start>", "good", "movie", "<unk>")
    assert trace.positions.tolist() == [8, 9, 10, 11] and trace.padding_steps == 8
    expected = numpy_steps(trace.ids[None, :])[0]
    np.testing.assert_allclose(trace.steps, expected[8:], atol=1e-6)
    np.testing.assert_allclose(trace.word_steps, expected[9:], atol=1e-6)
    assert trace.probability == pytest.approx(expected[-1], abs=1e-6)
    assert trace.review_states(0).shape == (4, UNITS)


def test_the_loop_terms_add_up_to_the_state():
    weights = _model_weights()
    trace = trace_review(weights, VOCABULARY, MODEL, "good movie")
    # Unmasked "pre" padding runs first: the review's first step starts from the state the padding left.
    first = loop_terms(weights, trace, 0, 1)
    padded_state = trace.states[0][trace.positions[0] - 1]
    np.testing.assert_allclose(first["U state_(t-1)"], padded_state @ weights.recurrent[0].recurrent_kernel)
    post = trace_review(weights, VOCABULARY, replace(MODEL, padding="post"), "good movie")
    assert post.positions.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(loop_terms(weights, post, 0, 1)["U state_(t-1)"], np.zeros(UNITS))
    for step in range(1, len(trace.positions) + 1):
        terms = loop_terms(weights, trace, 0, step)
        np.testing.assert_allclose(terms["sum"], terms["W x_t"] + terms["U state_(t-1)"] + terms["b"])
        np.testing.assert_allclose(terms["tanh(sum)"], terms["state_t (loop)"], atol=1e-6)
    # A gated layer (here LSTM-shaped: four gates side by side) shows its gates, candidate, carry and state instead.
    layer = weights.recurrent[0]
    gated = replace(
        layer,
        cell="lstm",
        kernel=np.tile(layer.kernel, 4),
        recurrent_kernel=np.tile(layer.recurrent_kernel, 4),
        bias=np.tile(layer.bias, 4),
    )
    terms = loop_terms(replace(weights, recurrent=(gated,)), trace, 0, 1)
    assert list(terms) == ["input gate", "forget gate", "candidate", "output gate", "carry before", "carry", "state"]
    np.testing.assert_allclose(terms["carry"], terms["forget gate"] * terms["carry before"] + terms["input gate"]
                               * terms["candidate"])


def test_the_head_at_every_step_with_and_without_a_hidden_layer():
    weights = _model_weights()
    states = np.random.default_rng(1).normal(size=(5, UNITS))
    expected = 1 / (1 + np.exp(-(states @ weights.output.kernel + weights.output.bias)[:, 0]))
    np.testing.assert_allclose(head_probability(weights, states), expected)
    hidden = DenseWeights(np.eye(UNITS), np.full(UNITS, -0.5), "relu")
    with_hidden = head_probability(replace(weights, hidden=hidden), states)
    logits = np.maximum(states - 0.5, 0.0) @ weights.output.kernel + weights.output.bias
    np.testing.assert_allclose(with_hidden, 1 / (1 + np.exp(-logits[:, 0])))
    assert head_probability(replace(weights, output=None), states) is None


def test_numpy_keras_and_onnxruntime_side_by_side(predictor):
    weights = _model_weights()
    review = "great plot, bad actors"
    trace = trace_review(weights, VOCABULARY, MODEL, review)
    calls = []

    def keras_model(ids, training):
        calls.append((ids.shape, training))
        return np.array([[trace.probability + 1e-3]])

    comparison = compare_implementations(trace, keras_model, predictor)
    assert calls == [((1, SEQUENCE_LENGTH), False)]
    assert comparison.numpy == trace.probability and comparison.keras == pytest.approx(trace.probability + 1e-3)
    assert comparison.onnxruntime == pytest.approx(trace.probability, abs=1e-5)
    assert comparison.step_difference <= 1e-5
    assert comparison.largest == pytest.approx(max(1e-3, abs(comparison.keras - comparison.onnxruntime)))
    alone = compare_implementations(trace, keras_model, None)
    assert alone.onnxruntime is None and alone.step_difference is None
    assert alone.largest == pytest.approx(1e-3)
    headless = trace_review(replace(weights, output=None), VOCABULARY, MODEL, review)
    with pytest.raises(ValueError, match="no output layer"):
        compare_implementations(headless, keras_model, predictor)
