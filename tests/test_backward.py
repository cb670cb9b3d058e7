"""core.model.backward: backpropagation through time by hand in NumPy equals TensorFlow's GradientTape over Keras's own
cells, for SimpleRNN, LSTM, GRU, a masked model and a stacked one with a hidden Dense layer."""

import numpy as np
import pytest

from core.config import ModelConfig
from core.model.backward import probability_gradients
from core.model.numpy_loop import extract_weights
from tests.float_checks import assert_close
from tests.keras_models import random_model, small_config

# Loading TensorFlow and building Keras models: seconds, not milliseconds.
pytestmark = pytest.mark.slow

STEPS = 14
# A pre-padded review: four pad ids, the start id, then words.
IDS = np.array([0, 0, 0, 0, 1, 5, 9, 12, 7, 22, 5, 17, 3, 28])


def _config(*layers, **settings) -> ModelConfig:
    return small_config(layers, 30, STEPS, 5, **settings)


CASES = {
    "simple_rnn": _config(("simple_rnn", 4)),
    "lstm": _config(("lstm", 4)),
    "gru": _config(("gru", 4)),
    "masked_gru": _config(("gru", 3), mask_padding=True),
    "stacked_masked_with_hidden_dense": _config(
        ("lstm", 4), ("gru", 3), ("simple_rnn", 4), hidden_dense_units=3, mask_padding=True
    ),
}


def _tape_gradients(model, ids, masked: bool):
    """The final probability and its gradients on every layer's state after every step and on every word vector,
    from TensorFlow's GradientTape over a step-by-step loop of the layers' own Keras cells: a zero tensor added to
    each state stands for it, so its gradient is the state's gradient along every path."""
    import tensorflow as tf

    embedding, *rest = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    recurrent = [layer for layer in rest if hasattr(layer, "cell")]
    dense = [layer for layer in rest if not hasattr(layer, "cell")]
    words = tf.constant(np.asarray(embedding.get_weights()[0])[ids][None])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(words)
        values = words
        probes = []
        for layer in recurrent:
            units = layer.cell.units
            state = [tf.zeros((1, units))] * (2 if type(layer).__name__ == "LSTM" else 1)
            probes.append([tf.zeros((1, units)) for _ in ids])
            outputs = []
            for step, probe in enumerate(probes[-1]):
                tape.watch(probe)
                if not (masked and ids[step] == 0):
                    _, new_state = layer.cell.call(values[:, step], state, training=False)
                    state = list(new_state)
                state = [state[0] + probe, *state[1:]]
                outputs.append(state[0])
            values = tf.stack(outputs, axis=1)
        values = values[:, -1]
        for layer in dense:
            values = layer(values)
        probability = values[0, 0]
    state_gradients = [np.concatenate(tape.gradient(probability, layer_probes)) for layer_probes in probes]
    return float(probability), state_gradients, np.asarray(tape.gradient(probability, words))[0]


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_backpropagation_through_time_equals_gradient_tape(name):
    config = CASES[name]
    model = random_model(config)
    probability, state_gradients, input_gradients = _tape_gradients(model, IDS, config.mask_padding)
    # The hand-written loop is the model: it gives Keras's own probability.
    assert probability == pytest.approx(float(model(IDS[None], training=False)[0, 0]), abs=1e-6)
    gradients = probability_gradients(extract_weights(model), IDS)
    assert gradients.probability == pytest.approx(probability, abs=1e-6)
    assert len(gradients.states) == len(config.recurrent_layers)
    for layer, (numpy_states, tape_states) in enumerate(zip(gradients.states, state_gradients)):
        assert_close(numpy_states, tape_states, rtol=0, atol=1e-5, err_msg=f"layer {layer}")
        assert np.abs(tape_states).max() > 1e-3, "a gradient worth comparing"
    assert_close(gradients.inputs, input_gradients, rtol=0, atol=1e-5)
    assert gradients.state_norms(0).shape == (STEPS,) and gradients.input_norms().shape == (STEPS,)
    if config.mask_padding:  # padded steps read nothing, and pass the gradient through unchanged
        assert not gradients.inputs[:4].any()
        assert_close(gradients.states[0][:3], np.repeat(gradients.states[0][3:4], 3, axis=0), rtol=0, atol=0)


def test_odd_inputs_get_one_line():
    weights = extract_weights(random_model(CASES["simple_rnn"]))
    with pytest.raises(ValueError, match="one review"):
        probability_gradients(weights, IDS[None])
    with pytest.raises(ValueError, match=r"lie in \[0, 30\)"):
        probability_gradients(weights, np.array([1, 30]))
    headless = extract_weights(random_model(_config(("simple_rnn", 4), output_layer=False)))
    with pytest.raises(ValueError, match="no output layer"):
        probability_gradients(headless, IDS)
