"""The cell registry: every entry's Keras layer, parameter formula, weight conversion and NumPy step against Keras and
onnxruntime."""

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from core import cells, config
from core.model.numpy_loop import RecurrentWeights, run_layer

UNITS, FEATURES, STEPS = 5, 3, 9


def _keras_arrays(cell: cells.Cell, seed: int = 0, bias_rows: int | None = None) -> list[np.ndarray]:
    """Random weights in Keras's layout: kernel, recurrent_kernel, bias (two rows for a reset_after GRU)."""
    generator = np.random.default_rng(seed)
    width = cell.gates * UNITS
    rows = cell.bias_rows if bias_rows is None else bias_rows
    bias_shape = (rows, width) if rows == 2 else (width,)
    return [
        generator.normal(0, 0.8, shape).astype(np.float32)
        for shape in ((FEATURES, width), (UNITS, width), bias_shape)
    ]


def _onnxruntime_states(cell: cells.Cell, packed: tuple, attributes: dict, inputs: np.ndarray) -> np.ndarray:
    """onnxruntime's own op on ONNX-layout weights: the state after every step, [steps, units]."""
    names = ("W", "R", "B")
    node = helper.make_node(cell.onnx_op, ["X", *names], ["Y"], **attributes)
    graph = helper.make_graph(
        [node], "cell", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [STEPS, 1, FEATURES])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in zip(names, packed)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (states,) = session.run(None, {"X": inputs[:, np.newaxis]})
    return states[:, 0, 0]


def test_the_registry_answers_by_name_keras_class_and_onnx_op():
    assert config.CELL_TYPES == cells.CELL_TYPES == tuple(cells.CELLS) == ("simple_rnn", "lstm", "gru")
    assert cells.RECURRENT_OPS == ("RNN", "LSTM", "GRU")
    for entry in cells.CELLS.values():
        assert cells.cell(entry.name) is entry
        assert cells.by_keras_class(entry.keras_class) is entry
        assert cells.by_onnx_op(entry.onnx_op) is entry
        assert len(entry.keras_gates) == len(entry.onnx_gates) == entry.gates
        assert sorted(entry.keras_gates) == sorted(entry.onnx_gates)
    assert cells.by_keras_class("Dense") is None and cells.by_onnx_op("Gemm") is None
    with pytest.raises(ValueError, match="unknown cell 'rnn'; known cells: simple_rnn, lstm, gru"):
        cells.cell("rnn")
    with pytest.raises(ValueError, match="must be one of simple_rnn, lstm, gru"):
        config.RecurrentLayerConfig(cell="rnn")


@pytest.mark.parametrize("name", cells.CELL_TYPES)
def test_the_parameter_formula_counts_what_keras_builds(name):
    entry = cells.cell(name)
    layer = entry.keras_layer()(UNITS)
    layer.build((None, None, FEATURES))
    assert entry.parameters(FEATURES, UNITS) == layer.count_params()
    assert [weight.shape for weight in layer.get_weights()] == [weight.shape for weight in _keras_arrays(entry)]
    assert entry.formula(FEATURES, UNITS).endswith(f"{UNITS}*({FEATURES}+{UNITS}+{entry.bias_rows})")


@pytest.mark.parametrize("name", cells.CELL_TYPES)
def test_keras_weights_go_to_onnx_and_back_unchanged(name):
    entry = cells.cell(name)
    kernel, recurrent_kernel, bias = _keras_arrays(entry)
    packed_kernel, packed_recurrent, packed_bias, attributes = entry.to_onnx(kernel, recurrent_kernel, bias)
    assert packed_kernel.shape == (1, entry.gates * UNITS, FEATURES)
    assert packed_recurrent.shape == (1, entry.gates * UNITS, UNITS)
    assert packed_bias.shape == (1, 2 * entry.gates * UNITS)
    assert attributes["hidden_size"] == UNITS
    back = entry.to_keras(packed_kernel, packed_recurrent, packed_bias, attributes)
    for original, recovered in zip((kernel, recurrent_kernel, bias), back):
        np.testing.assert_array_equal(original, recovered)


def _cases():
    yield from ((name, None) for name in cells.CELL_TYPES)
    yield "gru", 1  # a GRU with the reset gate before the recurrent matmul (Keras reset_after=False)


@pytest.mark.parametrize("name, bias_rows", list(_cases()))
def test_the_numpy_step_equals_onnxruntime_on_the_converted_weights(name, bias_rows):
    """One NumPy step per cell, in Keras's layout, against onnxruntime's op fed the converted weights."""
    entry = cells.cell(name)
    keras_arrays = _keras_arrays(entry, seed=1, bias_rows=bias_rows)
    *packed, attributes = entry.to_onnx(*keras_arrays)
    assert attributes.get("linear_before_reset", 0) == (1 if name == "gru" and bias_rows is None else 0)
    inputs = np.random.default_rng(2).normal(0, 1, (STEPS, FEATURES)).astype(np.float32)
    states, carries = run_layer(RecurrentWeights(name, *keras_arrays, True), inputs[np.newaxis])
    expected = _onnxruntime_states(entry, packed, attributes, inputs)
    assert np.max(np.abs(states[0] - expected)) <= 1e-5
    assert (carries is not None) == entry.has_carry


def test_a_reference_setting_the_numpy_step_lacks_is_refused():
    cells.GRU.check_reference_settings("gru_1", {"activation": "tanh", "reset_after": True})
    with pytest.raises(ValueError, match="layer gru_1: .* only GRU layers with reset_after=True"):
        cells.GRU.check_reference_settings("gru_1", {"activation": "tanh", "reset_after": False})
    with pytest.raises(ValueError, match="layer simple_rnn_1: .* only tanh cells with a bias"):
        cells.SIMPLE_RNN.check_reference_settings("simple_rnn_1", {"activation": "relu"})
