"""The recurrent cells: one frozen entry per cell type, holding everything the rest of the project knows about it.

Keras layer, ONNX op and gate orders, parameter formula, the NumPy step, the Keras <-> ONNX weight conversion and the
label pages show. Adding a cell type means one entry here and its tests; every other module asks this table.

Keras layout: kernel (inputs, gates * units), recurrent_kernel (units, gates * units), bias (gates * units,), or
(2, gates * units) for a cell whose recurrent bias sits inside its reset gate (Keras 3's GRU, reset_after=True): the
gates side by side along the last axis, in keras_gates order. ONNX layout: the op's inputs W [1, gates * units,
inputs], R [1, gates * units, units], B [1, 2 * gates * units] (input bias, then recurrent bias), gates stacked
along axis 1 in onnx_gates order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# One step of a cell for a batch of rows: (x_part, state, carry, recurrent_kernel, recurrent_bias) -> (state, carry).
# x_part is x_t @ kernel + input bias, every gate; recurrent_bias is None unless the bias has two rows.
Step = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]
# The same step run backwards: (x_part, state, carry, recurrent_kernel, recurrent_bias, grad_state, grad_carry) ->
# (grad_x_part, grad_state, grad_carry), from the gradients on the step's new state and carry to those on its x_part
# and its previous state and carry. It recomputes the step's gates from its inputs (cheap, and nothing to keep).
StepBackward = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
# The same step, every named value it computes on the way ({"input gate": ..., "carry": ..., "state": ...}), for the
# pages that show a gated cell at work: the same arguments as Step, each value (batch, units).
StepTerms = Callable[..., dict[str, np.ndarray]]


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _simple_rnn_terms(x_part, state, carry, recurrent_kernel, recurrent_bias):
    # The seed's loop: state_t = tanh(W x_t + b + U state_(t-1)).
    recurrent = state @ recurrent_kernel
    return {"W x_t + b": x_part, "U state_(t-1)": recurrent, "state": np.tanh(x_part + recurrent)}


def _simple_rnn_step(x_part, state, carry, recurrent_kernel, recurrent_bias):
    return np.tanh(x_part + state @ recurrent_kernel), carry


def _simple_rnn_backward(x_part, state, carry, recurrent_kernel, recurrent_bias, grad_state, grad_carry):
    new_state = np.tanh(x_part + state @ recurrent_kernel)
    grad_sum = grad_state * (1.0 - new_state**2)  # tanh' = 1 - tanh^2
    return grad_sum, grad_sum @ recurrent_kernel.T, grad_carry


# The gated cells' steps, forwards and backwards, read their gates from their terms: one place computes them.
def _lstm_terms(x_part, state, carry, recurrent_kernel, recurrent_bias):
    units = state.shape[-1]
    z = x_part + state @ recurrent_kernel
    input_gate, forget_gate = sigmoid(z[:, :units]), sigmoid(z[:, units : 2 * units])
    candidate, output_gate = np.tanh(z[:, 2 * units : 3 * units]), sigmoid(z[:, 3 * units :])
    new_carry = forget_gate * carry + input_gate * candidate
    return {
        "input gate": input_gate,
        "forget gate": forget_gate,
        "candidate": candidate,
        "output gate": output_gate,
        "carry before": carry,
        "carry": new_carry,
        "state": output_gate * np.tanh(new_carry),
    }


def _lstm_step(x_part, state, carry, recurrent_kernel, recurrent_bias):
    terms = _lstm_terms(x_part, state, carry, recurrent_kernel, recurrent_bias)
    return terms["state"], terms["carry"]


def _lstm_backward(x_part, state, carry, recurrent_kernel, recurrent_bias, grad_state, grad_carry):
    terms = _lstm_terms(x_part, state, carry, recurrent_kernel, recurrent_bias)
    input_gate, forget_gate = terms["input gate"], terms["forget gate"]
    candidate, output_gate = terms["candidate"], terms["output gate"]
    squashed = np.tanh(terms["carry"])
    # state = o * tanh(carry_t): the carry gets the gradient from the future and through the output gate.
    grad_new_carry = grad_carry + grad_state * output_gate * (1.0 - squashed**2)
    grad_z = np.concatenate(
        [
            grad_new_carry * candidate * input_gate * (1.0 - input_gate),
            grad_new_carry * carry * forget_gate * (1.0 - forget_gate),
            grad_new_carry * input_gate * (1.0 - candidate**2),
            grad_state * squashed * output_gate * (1.0 - output_gate),
        ],
        axis=-1,
    )
    return grad_z, grad_z @ recurrent_kernel.T, grad_new_carry * forget_gate


def _gru_recurrent_part(state, recurrent_kernel, recurrent_bias) -> np.ndarray:
    # Keras 3's GRU (reset_after, ONNX's linear_before_reset=1): the reset gate scales U h + recurrent bias.
    if recurrent_bias is None:
        raise ValueError("the gate view and the backward pass handle only GRU layers with reset_after=True")
    return state @ recurrent_kernel + recurrent_bias


def _gru_terms(x_part, state, carry, recurrent_kernel, recurrent_bias):
    units = state.shape[-1]
    h_part = _gru_recurrent_part(state, recurrent_kernel, recurrent_bias)
    update = sigmoid(x_part[:, :units] + h_part[:, :units])
    reset = sigmoid(x_part[:, units : 2 * units] + h_part[:, units : 2 * units])
    candidate = np.tanh(x_part[:, 2 * units :] + reset * h_part[:, 2 * units :])
    return {
        "update gate": update,
        "reset gate": reset,
        "candidate": candidate,
        "state before": state,
        "state": update * state + (1.0 - update) * candidate,
    }


def _gru_step(x_part, state, carry, recurrent_kernel, recurrent_bias):
    if recurrent_bias is not None:
        return _gru_terms(x_part, state, carry, recurrent_kernel, recurrent_bias)["state"], carry
    # The reset gate applied to the state before the recurrent matmul (Keras reset_after=False).
    units = state.shape[-1]
    h_part = state @ recurrent_kernel[:, : 2 * units]
    update = sigmoid(x_part[:, :units] + h_part[:, :units])
    reset = sigmoid(x_part[:, units : 2 * units] + h_part[:, units:])
    candidate = np.tanh(x_part[:, 2 * units :] + (reset * state) @ recurrent_kernel[:, 2 * units :])
    return update * state + (1.0 - update) * candidate, carry


def _gru_backward(x_part, state, carry, recurrent_kernel, recurrent_bias, grad_state, grad_carry):
    units = state.shape[-1]
    terms = _gru_terms(x_part, state, carry, recurrent_kernel, recurrent_bias)
    update, reset, candidate = terms["update gate"], terms["reset gate"], terms["candidate"]
    recurrent_candidate = _gru_recurrent_part(state, recurrent_kernel, recurrent_bias)[:, 2 * units :]
    # state_t = z * state + (1 - z) * candidate, candidate = tanh(x_h + r * (U_h state + b_h)).
    grad_candidate_sum = grad_state * (1.0 - update) * (1.0 - candidate**2)
    grad_update = grad_state * (state - candidate) * update * (1.0 - update)
    grad_reset = grad_candidate_sum * recurrent_candidate * reset * (1.0 - reset)
    grad_x_part = np.concatenate([grad_update, grad_reset, grad_candidate_sum], axis=-1)
    grad_h_part = np.concatenate([grad_update, grad_reset, grad_candidate_sum * reset], axis=-1)
    return grad_x_part, grad_state * update + grad_h_part @ recurrent_kernel.T, grad_carry


def _reorder(matrix: np.ndarray, source: tuple[str, ...], target: tuple[str, ...]) -> np.ndarray:
    """matrix's gate blocks along axis 0, from source order to target order."""
    blocks = dict(zip(source, np.split(matrix, len(source))))
    return np.concatenate([blocks[gate] for gate in target])


@dataclass(frozen=True, eq=False)
class Cell:
    """One recurrent cell type, as Keras, ONNX, NumPy and the pages know it."""

    name: str  # the config's value (RecurrentLayerConfig.cell)
    label: str  # what pages and summaries show
    keras_class: str  # the keras.layers class
    onnx_op: str  # the native ONNX op
    keras_gates: tuple[str, ...]  # gate blocks of the Keras weights, in order
    onnx_gates: tuple[str, ...]  # the same gates in the ONNX op's order
    bias_rows: int  # 1, or 2 when Keras keeps an input and a recurrent bias (GRU reset_after)
    step: Step  # the NumPy step, Keras layout, float64
    backward: StepBackward  # the step run backwards (backpropagation through time, core.model.backward)
    step_terms: StepTerms  # the step with every value it computes named (the Inside page's gate view)
    gate_names: tuple[str, ...]  # the terms that are gates (0 to 1), in the order the equations use them
    equations: str  # the step as the pages write it, in Keras's own names
    activations: tuple[str, ...]  # the ONNX op's default activations: the ones step computes
    has_carry: bool = False  # a second state (LSTM's c): the ONNX op's initial_c input and Y_c output
    # ONNX attribute set to 1 when the Keras bias has two rows (the recurrent bias inside the reset gate).
    reset_after_attribute: str | None = None
    # Attributes the native node is written with, beyond hidden_size (the file format: keep them as they are).
    export_attributes: dict = field(default_factory=dict)
    # tf2onnx writes this op itself; otherwise it writes a Loop, which core.export.passes.native_ops swaps for the op.
    native_from_tf2onnx: bool = False
    # Layer settings the NumPy reference needs besides a tanh activation and a bias.
    reference_settings: dict = field(default_factory=dict)
    quantization_note: str = ""  # why onnxruntime's dynamic quantization leaves the op's weights float32

    @property
    def gates(self) -> int:
        return len(self.keras_gates)

    def parameters(self, inputs: int, units: int) -> int:
        """Trainable parameters of one layer reading inputs features."""
        return self.gates * units * (inputs + units + self.bias_rows)

    def formula(self, inputs: int, units: int) -> str:
        """How parameters() is computed, with the numbers filled in: 4*u*(in+u+1) = 4*32*(32+32+1)."""
        times = f"{self.gates}*" if self.gates > 1 else ""
        rows = self.bias_rows
        return f"{times}u*(in+u+{rows}) = {times}{units}*({inputs}+{units}+{rows})"

    def keras_layer(self):
        """The Keras layer class (imports Keras, hence TensorFlow)."""
        from keras import layers

        return getattr(layers, self.keras_class)

    def check_reference_settings(self, layer_name: str, settings: dict) -> None:
        """ValueError unless a layer's Keras config (get_config(), or model.keras's config.json) is one the NumPy
        step computes: tanh, a bias, and reference_settings."""
        if settings.get("activation") != "tanh" or not settings.get("use_bias", True):
            raise ValueError(f"layer {layer_name}: the NumPy reference handles only tanh cells with a bias")
        for key, value in self.reference_settings.items():
            if settings.get(key, value) != value:
                raise ValueError(
                    f"layer {layer_name}: the NumPy reference handles only {self.label} layers with {key}={value}"
                )

    def to_onnx(self, kernel, recurrent_kernel, bias) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Keras weights -> the ONNX op's W, R, B and its attributes (hidden_size included)."""
        keras_order, onnx_order = self.keras_gates, self.onnx_gates
        kernel, recurrent_kernel, bias = (np.asarray(value) for value in (kernel, recurrent_kernel, bias))
        attributes = {"hidden_size": recurrent_kernel.shape[0], **self.export_attributes}
        if bias.ndim == 2:
            if self.reset_after_attribute is None:
                raise ValueError(f"{self.label} has one bias vector, got {bias.shape[0]}")
            attributes[self.reset_after_attribute] = 1
            packed = np.concatenate([_reorder(row, keras_order, onnx_order) for row in bias])
        else:
            packed = np.concatenate([_reorder(bias, keras_order, onnx_order), np.zeros_like(bias)])
        return (
            _reorder(kernel.T, keras_order, onnx_order)[np.newaxis].copy(),
            _reorder(recurrent_kernel.T, keras_order, onnx_order)[np.newaxis].copy(),
            packed[np.newaxis],
            attributes,
        )

    def to_keras(self, packed_kernel, packed_recurrent, packed_bias, attributes: dict | None = None):
        """The ONNX op's W, R, B (and its attributes) -> Keras's kernel, recurrent_kernel, bias."""
        keras_order, onnx_order = self.keras_gates, self.onnx_gates
        kernel, recurrent, bias = (np.asarray(value)[0] for value in (packed_kernel, packed_recurrent, packed_bias))
        size = kernel.shape[0]  # gates * units
        input_bias, recurrent_bias = bias[:size], bias[size:]
        reset_after = self.reset_after_attribute and (attributes or {}).get(self.reset_after_attribute, 0)
        if reset_after:
            keras_bias = np.stack([_reorder(row, onnx_order, keras_order) for row in (input_bias, recurrent_bias)])
        else:
            keras_bias = _reorder(input_bias + recurrent_bias, onnx_order, keras_order)
        return _reorder(kernel, onnx_order, keras_order).T, _reorder(recurrent, onnx_order, keras_order).T, keras_bias


_NO_QUANTIZER = "onnxruntime's dynamic quantization has no quantizer for {op}: W, R and B stay float32"

SIMPLE_RNN = Cell(
    name="simple_rnn",
    label="SimpleRNN",
    keras_class="SimpleRNN",
    onnx_op="RNN",
    keras_gates=("h",),
    onnx_gates=("h",),
    bias_rows=1,
    step=_simple_rnn_step,
    backward=_simple_rnn_backward,
    step_terms=_simple_rnn_terms,
    gate_names=(),
    equations="state_t = tanh(W x_t + U state_(t-1) + b)",
    activations=("Tanh",),
    export_attributes={"activations": ["Tanh"]},
    quantization_note=_NO_QUANTIZER.format(op="RNN"),
)

LSTM = Cell(
    name="lstm",
    label="LSTM",
    keras_class="LSTM",
    onnx_op="LSTM",
    keras_gates=("i", "f", "c", "o"),
    onnx_gates=("i", "o", "f", "c"),
    bias_rows=1,
    step=_lstm_step,
    backward=_lstm_backward,
    step_terms=_lstm_terms,
    gate_names=("input gate", "forget gate", "output gate"),
    equations="""input gate   i = sigmoid(W_i x_t + U_i state_(t-1) + b_i)
forget gate  f = sigmoid(W_f x_t + U_f state_(t-1) + b_f)
candidate    g = tanh(W_c x_t + U_c state_(t-1) + b_c)
output gate  o = sigmoid(W_o x_t + U_o state_(t-1) + b_o)
carry_t = f * carry_(t-1) + i * g
state_t = o * tanh(carry_t)""",
    activations=("Sigmoid", "Tanh", "Tanh"),
    has_carry=True,
    native_from_tf2onnx=True,
    quantization_note=(
        "onnxruntime quantizes LSTM only into com.microsoft's DynamicQuantizeLSTM, which other ONNX runtimes lack: "
        "left float32 so the file keeps to standard ONNX ops"
    ),
)

# Keras 3's GRU uses reset_after=True: two bias vectors of 3u each, the recurrent one inside the reset gate.
GRU = Cell(
    name="gru",
    label="GRU",
    keras_class="GRU",
    onnx_op="GRU",
    keras_gates=("z", "r", "h"),
    onnx_gates=("z", "r", "h"),
    bias_rows=2,
    step=_gru_step,
    backward=_gru_backward,
    step_terms=_gru_terms,
    gate_names=("update gate", "reset gate"),
    equations="""update gate  z = sigmoid(W_z x_t + U_z state_(t-1) + b_z + rb_z)
reset gate   r = sigmoid(W_r x_t + U_r state_(t-1) + b_r + rb_r)
candidate    h = tanh(W_h x_t + b_h + r * (U_h state_(t-1) + rb_h))
state_t = z * state_(t-1) + (1 - z) * h""",
    activations=("Sigmoid", "Tanh"),
    reset_after_attribute="linear_before_reset",
    reference_settings={"reset_after": True},
    quantization_note=_NO_QUANTIZER.format(op="GRU"),
)

CELLS: dict[str, Cell] = {entry.name: entry for entry in (SIMPLE_RNN, LSTM, GRU)}
CELL_TYPES = tuple(CELLS)  # the order the build form offers them
RECURRENT_OPS = tuple(entry.onnx_op for entry in CELLS.values())


def cell(name: str) -> Cell:
    """The entry of a cell type, or a ValueError that lists the known ones."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; known cells: {', '.join(CELLS)}") from None


def by_keras_class(class_name: str) -> Cell | None:
    """The entry whose Keras layer class is class_name, or None for any other layer."""
    return next((entry for entry in CELLS.values() if entry.keras_class == class_name), None)


def by_onnx_op(op_type: str) -> Cell | None:
    """The entry whose native ONNX op is op_type, or None for any other op."""
    return next((entry for entry in CELLS.values() if entry.onnx_op == op_type), None)
