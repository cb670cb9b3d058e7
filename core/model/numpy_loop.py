"""The seed's NumPy loop, state_t = tanh(W x_t + U state_(t-1) + b), run on a trained model's own weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import cells


@dataclass(frozen=True)
class RecurrentWeights:
    """One recurrent layer's arrays, in Keras's layout (gates side by side along the last axis, see core.cells)."""

    cell: str  # a cell type of core.cells
    kernel: np.ndarray  # (inputs, gates * units): W, applied to the layer's input
    recurrent_kernel: np.ndarray  # (units, gates * units): U, applied to the previous state
    bias: np.ndarray  # (gates * units,), or (2, gates * units): input bias then recurrent bias (GRU reset_after)
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


def model_weights(embedding, mask_zero: bool, recurrent: list, dense: list[DenseWeights], source: str = "the model"):
    """ModelWeights from a model's layers in order, as every reader finds them; ValueError for a stack the reference
    cannot run (no embedding or recurrent layer, a head other than [Dense(relu)] Dense(sigmoid))."""
    if embedding is None or not recurrent:
        raise ValueError(f"{source} needs an Embedding and at least one recurrent layer")
    dense = list(dense)
    output = dense.pop() if dense and dense[-1].activation == "sigmoid" else None
    if len(dense) > 1 or any(layer.activation != "relu" for layer in dense):
        raise ValueError("the reference handles at most one Dense(relu) layer before the output")
    return ModelWeights(np.asarray(embedding), tuple(recurrent), dense[0] if dense else None, output, bool(mask_zero))


def extract_weights(model) -> ModelWeights:
    """Copy a live Keras model's weights (Embedding, recurrent stack, Dense head) into NumPy arrays."""
    embedding = None
    mask_zero = False
    recurrent = []
    dense = []
    for layer in model.layers:
        kind = type(layer).__name__
        arrays = [np.asarray(array) for array in layer.get_weights()]
        cell = cells.by_keras_class(kind)
        if kind == "Embedding":
            embedding, mask_zero = arrays[0], bool(layer.mask_zero)
        elif cell is not None:
            settings = layer.get_config()
            cell.check_reference_settings(layer.name, settings)
            recurrent.append(RecurrentWeights(cell.name, *arrays[:3], bool(settings["return_sequences"])))
        elif kind == "Dense":
            dense.append(DenseWeights(arrays[0], arrays[1], layer.get_config()["activation"]))
        elif kind not in ("InputLayer",):
            raise ValueError(f"layer {layer.name} ({kind}) has no NumPy reference")
    return model_weights(embedding, mask_zero, recurrent, dense)


def project(layer: RecurrentWeights, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """What every step of the layer takes, in float64: W x_t + input bias for all steps at once (only U state_(t-1)
    has to wait for the previous step), the recurrent kernel, and the recurrent bias (None unless the bias has two
    rows)."""
    bias = layer.bias.astype(np.float64)
    input_bias, recurrent_bias = (bias[0], bias[1]) if bias.ndim == 2 else (bias, None)
    projected = inputs.astype(np.float64) @ layer.kernel.astype(np.float64) + input_bias
    return projected, layer.recurrent_kernel.astype(np.float64), recurrent_bias


def run_layer(
    layer: RecurrentWeights, inputs: np.ndarray, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The state after every step, (batch, steps, units), and the LSTM's carry after every step (else None), from
    zero states in float64; keep[b, t] False holds the states of step t - 1."""
    cell = cells.cell(layer.cell)
    batch, steps, _ = inputs.shape
    units = layer.units
    projected, recurrent_kernel, recurrent_bias = project(layer, inputs)
    state = np.zeros((batch, units))
    carry = np.zeros((batch, units))
    states = np.empty((batch, steps, units))
    carries = np.empty((batch, steps, units)) if cell.has_carry else None
    for step in range(steps):
        new_state, new_carry = cell.step(projected[:, step], state, carry, recurrent_kernel, recurrent_bias)
        if keep is not None:
            mask = keep[:, step : step + 1]
            new_state = np.where(mask, new_state, state)
            new_carry = np.where(mask, new_carry, carry)
        state, carry = new_state, new_carry
        states[:, step] = state
        if carries is not None:
            carries[:, step] = carry
    return states, carries


def head_probability(weights: ModelWeights, final_states: np.ndarray) -> np.ndarray | None:
    """The Dense head on the last recurrent layer's states (..., units): the positive probability (...), or None for a
    model without an output layer. Applied to every step's state, it says "if the review ended here"."""
    if weights.output is None:
        return None
    features = np.asarray(final_states, dtype=np.float64)
    if weights.hidden is not None:
        features = np.maximum(features @ weights.hidden.kernel + weights.hidden.bias, 0.0)
    return cells.sigmoid(features @ weights.output.kernel + weights.output.bias)[..., 0]


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
        values, _ = run_layer(layer, values, keep)
        states.append(values)
    last = weights.recurrent[-1]
    outputs = values if last.return_sequences else values[:, -1]
    return ReferenceOutput(head_probability(weights, values[:, -1]), tuple(states), outputs)


def reference_probabilities(weights: ModelWeights, ids, batch_size: int = 64) -> np.ndarray:
    """run_reference's positive probabilities for many rows, batch_size rows at a time: the float64 states of a few
    hundred long rows at once would take hundreds of megabytes."""
    ids = np.asarray(ids)
    if weights.output is None:
        raise ValueError("this model has no output layer: it gives no probability")
    starts = range(0, len(ids), batch_size)
    parts = [run_reference(weights, ids[start : start + batch_size]).probability for start in starts]
    return np.concatenate(parts) if parts else np.zeros(0)
