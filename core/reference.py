"""The seed's NumPy loop, state_t = tanh(W x_t + U state_(t-1) + b), run on a trained model's own weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
KERAS_CLASSES = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}


@dataclass(frozen=True)
class RecurrentWeights:
    """One recurrent layer's arrays, in Keras's layout (gates side by side along the last axis)."""

    cell: str  # simple_rnn, lstm or gru
    kernel: np.ndarray  # (inputs, gates * units): W, applied to the layer's input
    recurrent_kernel: np.ndarray  # (units, gates * units): U, applied to the previous state
    bias: np.ndarray  # (gates * units,); GRU: (2, 3 * units), input bias then recurrent bias
    return_sequences: bool

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]


@dataclass(frozen=True)
class DenseWeights:
    """A Dense layer: activation(x @ kernel + bias)."""

    kernel: np.ndarray  # (inputs, units)
    bias: np.ndarray  # (units,)
    activation: str  # relu or sigmoid


@dataclass(frozen=True)
class ModelWeights:
    """Every weight of a build_model model as plain NumPy arrays."""

    embedding: np.ndarray  # (vocabulary_size, embedding_dim); row i is word id i's vector
    recurrent: tuple[RecurrentWeights, ...]
    hidden: DenseWeights | None  # the optional Dense(relu) before the output
    output: DenseWeights | None  # Dense(1, sigmoid); None for the seed's first two cells
    mask_zero: bool  # padded steps (id 0) leave every state unchanged


@dataclass(frozen=True)
class ReferenceOutput:
    """What the loop computed for a batch of reviews."""

    probability: np.ndarray | None  # (batch,): the positive-class probability; None without an output layer
    states: tuple[np.ndarray, ...]  # per recurrent layer, (batch, steps, units): the state after every step
    outputs: np.ndarray  # what the last recurrent layer hands on, as Keras returns it without a head


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def extract_weights(model) -> ModelWeights:
    """Copy a Keras model's weights (Embedding, recurrent stack, Dense head) into NumPy arrays."""
    embedding = None
    mask_zero = False
    recurrent = []
    dense = []
    for layer in model.layers:
        kind = type(layer).__name__
        arrays = [np.asarray(array) for array in layer.get_weights()]
        if kind == "Embedding":
            embedding, mask_zero = arrays[0], bool(layer.mask_zero)
        elif kind in KERAS_CLASSES:
            cell = KERAS_CLASSES[kind]
            if _activation_name(layer.cell) != "tanh" or not layer.cell.use_bias:
                raise ValueError(f"layer {layer.name}: the reference handles only tanh cells with a bias")
            if cell == "gru" and not layer.cell.reset_after:
                raise ValueError(f"layer {layer.name}: the reference handles only Keras 3's reset_after GRU")
            recurrent.append(RecurrentWeights(cell, arrays[0], arrays[1], arrays[2], bool(layer.return_sequences)))
        elif kind == "Dense":
            dense.append(DenseWeights(arrays[0], arrays[1], _activation_name(layer)))
        elif kind not in ("InputLayer",):
            raise ValueError(f"layer {layer.name} ({kind}) has no NumPy reference")
    if embedding is None or not recurrent:
        raise ValueError("the model needs an Embedding and at least one recurrent layer")
    output = dense.pop() if dense and dense[-1].activation == "sigmoid" else None
    if len(dense) > 1 or any(layer.activation != "relu" for layer in dense):
        raise ValueError("the reference handles at most one Dense(relu) layer before the output")
    return ModelWeights(embedding, tuple(recurrent), dense[0] if dense else None, output, mask_zero)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _run_layer(layer: RecurrentWeights, inputs: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """The state after every step, (batch, steps, units); keep[b, t] False holds the state of step t - 1."""
    batch, steps, _ = inputs.shape
    units = layer.units
    kernel = layer.kernel.astype(np.float64)
    recurrent_kernel = layer.recurrent_kernel.astype(np.float64)
    bias = layer.bias.astype(np.float64)
    # W x_t + b for every step at once: only U state_(t-1) has to wait for the previous step.
    projected = inputs @ kernel + (bias[0] if layer.cell == "gru" else bias)
    state = np.zeros((batch, units))
    carry = np.zeros((batch, units))  # the LSTM's cell state
    states = np.empty((batch, steps, units))
    for step in range(steps):
        x_part = projected[:, step]
        if layer.cell == "simple_rnn":
            new_state = np.tanh(x_part + state @ recurrent_kernel)
            new_carry = carry
        elif layer.cell == "lstm":
            z = x_part + state @ recurrent_kernel
            input_gate, forget_gate = _sigmoid(z[:, :units]), _sigmoid(z[:, units : 2 * units])
            candidate, output_gate = np.tanh(z[:, 2 * units : 3 * units]), _sigmoid(z[:, 3 * units :])
            new_carry = forget_gate * carry + input_gate * candidate
            new_state = output_gate * np.tanh(new_carry)
        else:
            # Keras 3's GRU (reset_after): the reset gate scales U h + recurrent bias, gates ordered z, r, h.
            h_part = state @ recurrent_kernel + bias[1]
            update = _sigmoid(x_part[:, :units] + h_part[:, :units])
            reset = _sigmoid(x_part[:, units : 2 * units] + h_part[:, units : 2 * units])
            candidate = np.tanh(x_part[:, 2 * units :] + reset * h_part[:, 2 * units :])
            new_state = update * state + (1.0 - update) * candidate
            new_carry = carry
        if keep is not None:
            mask = keep[:, step : step + 1]
            new_state = np.where(mask, new_state, state)
            new_carry = np.where(mask, new_carry, carry)
        state, carry = new_state, new_carry
        states[:, step] = state
    return states


def run_reference(weights: ModelWeights, ids) -> ReferenceOutput:
    """Run padded token ids (batch, steps) through the weights in NumPy (float64), step by step."""
    ids = np.asarray(ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a (batch, steps) array of integers, got shape {ids.shape} of {ids.dtype}")
    vocabulary_size = weights.embedding.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= vocabulary_size):
        raise ValueError(f"token ids must lie in [0, {vocabulary_size}); got {ids.min()} to {ids.max()}")
    keep = ids != 0 if weights.mask_zero else None
    values = weights.embedding.astype(np.float64)[ids]
    states = []
    for layer in weights.recurrent:
        values = _run_layer(layer, values, keep)
        states.append(values)
    last = weights.recurrent[-1]
    outputs = values if last.return_sequences else values[:, -1]
    probability = None
    if weights.output is not None:
        features = values[:, -1]
        if weights.hidden is not None:
            features = np.maximum(features @ weights.hidden.kernel + weights.hidden.bias, 0.0)
        probability = _sigmoid(features @ weights.output.kernel + weights.output.bias)[:, 0]
    return ReferenceOutput(probability, tuple(states), outputs)
