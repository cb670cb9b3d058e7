"""The book's loop run backwards: backpropagation through time in NumPy, by hand, over a run's own weights.

For one review, how much the final probability depends on the state after each step (along every path through the
later steps, and through the layers above) and on the word vector read at each step. The vanishing of that dependence
with distance is why section 6.2 leaves the SimpleRNN for LSTM and GRU; the gated cells' curves show the difference.
Each cell's step backwards lives in its core.cells entry (`Cell.backward`); this module chains them over the steps and
the layers, and starts from the Dense head. Checked against TensorFlow's GradientTape on Keras's own cells
(tests/test_backward.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import cells
from core.model.numpy_loop import ModelWeights, RecurrentWeights, project, run_layer


@dataclass(frozen=True, eq=False)
class Gradients:
    """The gradient of one review's final positive probability with respect to what the loop computed and read."""

    probability: float  # the final positive probability (float64)
    states: tuple[np.ndarray, ...]  # per recurrent layer, (steps, units): d probability / d state after step t
    inputs: np.ndarray  # (steps, embedding_dim): d probability / d the word vector read at step t

    def state_norms(self, layer_index: int = 0) -> np.ndarray:
        """(steps,): the size (L2 norm) of the gradient on each step's state in one layer."""
        return np.linalg.norm(self.states[layer_index], axis=-1)

    def input_norms(self) -> np.ndarray:
        """(steps,): the size of the gradient on each step's word vector."""
        return np.linalg.norm(self.inputs, axis=-1)


def fall_to_half(values) -> int | None:
    """The first index at which values have fallen to half of values[0] or less (values read from the end of a
    review backwards: index 0 is the last word), or None when they never do or start at zero."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values) or values[0] <= 0:
        return None
    fallen = np.flatnonzero(values <= values[0] / 2)
    return int(fallen[0]) if len(fallen) else None


def _forward(layer: RecurrentWeights, inputs: np.ndarray, keep: np.ndarray | None):
    """One layer over one review, (steps, inputs) -> what the backward pass reads: the inputs' projection, and the
    state and carry before each step (steps + 1 rows: zeros first)."""
    projected, recurrent_kernel, recurrent_bias = project(layer, inputs)
    after, carries_after = run_layer(layer, inputs[np.newaxis], None if keep is None else keep[np.newaxis])
    zeros = np.zeros((1, layer.units))
    states = np.concatenate([zeros, after[0]])
    carries = zeros.repeat(len(states), axis=0) if carries_after is None else np.concatenate([zeros, carries_after[0]])
    return projected, states, carries, recurrent_kernel, recurrent_bias


def _head_gradient(weights: ModelWeights, final_state: np.ndarray) -> tuple[float, np.ndarray]:
    """The probability and its gradient with respect to the last layer's final state."""
    if weights.output is None:
        raise ValueError("this model has no output layer: there is no probability to take the gradient of")
    features = final_state  # (units,)
    if weights.hidden is not None:
        pre_activation = features @ weights.hidden.kernel + weights.hidden.bias
        hidden_active = pre_activation > 0
        features = np.maximum(pre_activation, 0.0)
    else:
        hidden_active = None
    probability = float(cells.sigmoid(features @ weights.output.kernel + weights.output.bias)[0])
    gradient = probability * (1.0 - probability) * weights.output.kernel[:, 0]
    if hidden_active is not None:
        gradient = (gradient * hidden_active) @ weights.hidden.kernel.T
    return probability, gradient


def probability_gradients(weights: ModelWeights, ids) -> Gradients:
    """Backpropagation through time for one review's padded ids (steps,), float64: forward through every layer keeping
    the states, then from the head back over the steps of the top layer, whose gradients on its inputs are the
    gradients the layer below receives at each step. A padded step of a masked model passes its state through
    unchanged, so it passes the gradient through unchanged too, and reads nothing."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be one review's (steps,) integer ids, got shape {ids.shape} of {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= weights.embedding.shape[0]):
        raise ValueError(f"token ids must lie in [0, {weights.embedding.shape[0]})")
    if weights.recurrent[-1].return_sequences:
        raise ValueError("the last recurrent layer returns sequences: there is no single final state to start from")
    keep = ids != 0 if weights.mask_zero else None
    inputs = weights.embedding.astype(np.float64)[ids]
    passes = []
    for layer in weights.recurrent:
        passes.append(_forward(layer, inputs, keep))
        inputs = passes[-1][1][1:]  # this layer's states feed the next layer
    probability, final_gradient = _head_gradient(weights, inputs[-1])
    steps = len(ids)
    from_above = np.zeros((steps, weights.recurrent[-1].units))
    from_above[-1] = final_gradient
    state_gradients = []
    for layer, (projected, states, carries, recurrent_kernel, recurrent_bias) in zip(
        reversed(weights.recurrent), reversed(passes)
    ):
        cell = cells.cell(layer.cell)
        on_states = np.zeros((steps, layer.units))
        on_projected = np.zeros_like(projected)
        grad_state = np.zeros((1, layer.units))  # from the later steps
        grad_carry = np.zeros((1, layer.units))
        for step in reversed(range(steps)):
            grad_state = grad_state + from_above[step]
            on_states[step] = grad_state[0]
            if keep is not None and not keep[step]:
                continue  # the state and carry were copied: their gradients go to the previous step as they are
            grad_x_part, grad_state, grad_carry = cell.backward(
                projected[step : step + 1],
                states[step : step + 1],
                carries[step : step + 1],
                recurrent_kernel,
                recurrent_bias,
                grad_state,
                grad_carry,
            )
            on_projected[step] = grad_x_part[0]
        state_gradients.append(on_states)
        from_above = on_projected @ layer.kernel.astype(np.float64).T  # onto the layer's inputs, step by step
    return Gradients(probability, tuple(reversed(state_gradients)), from_above)
