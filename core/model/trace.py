"""One review traced through a run's NumPy weights (core.model.numpy_loop), step by step: the states, the probability so far,
the seed loop's terms at one step, and the same review scored by Keras and onnxruntime beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core import cells
from core.config import ModelConfig
from core.model.numpy_loop import ModelWeights, head_probability, project, run_reference
from core.data.text import Vocabulary, pad_sequences

if TYPE_CHECKING:
    from core.scoring.predictor import Predictor


@dataclass(frozen=True, eq=False)
class ReviewTrace:
    """What the NumPy forward computed for one review, and which of its steps hold the review."""

    ids: np.ndarray  # int32 (sequence_length,): the review padded and truncated as the model reads it
    positions: np.ndarray  # the steps that hold the review (start id and words), in order; the rest is padding
    tokens: tuple[str, ...]  # the token at each of those steps: <start>, the words, <unk> for unknown ones
    states: tuple[np.ndarray, ...]  # per recurrent layer, (sequence_length, units): the state after every step
    probability: float | None  # the positive probability; None for a model without an output layer
    steps: np.ndarray | None  # the probability after each review step, as if the review ended there
    word_steps: np.ndarray | None  # steps without the start marker: what step_probability reports, one a word

    @property
    def padding_steps(self) -> int:
        """Steps that hold padding: they run too, but carry no word."""
        return len(self.ids) - len(self.positions)

    def review_states(self, layer_index: int) -> np.ndarray:
        """One layer's states at the review's steps only, (len(positions), units)."""
        return self.states[layer_index][self.positions]


def trace_review(weights: ModelWeights, vocabulary: Vocabulary, model: ModelConfig, text: str) -> ReviewTrace:
    """Encode text with the run's vocabulary, pad it as the run's model does and run the NumPy reference over it."""
    ids = pad_sequences([vocabulary.encode(text).ids], model.sequence_length, model.padding, model.truncating)[0]
    reference = run_reference(weights, ids[None, :])
    positions = np.flatnonzero(ids != vocabulary.pad_id)
    steps = head_probability(weights, reference.states[-1][0][positions])
    return ReviewTrace(
        ids=ids,
        positions=positions,
        tokens=tuple(vocabulary.decode(ids[positions])),
        states=tuple(layer_states[0] for layer_states in reference.states),
        probability=None if reference.probability is None else float(reference.probability[0]),
        steps=steps,
        word_steps=None if steps is None else steps[ids[positions] != vocabulary.start_id],
    )


def loop_terms(weights: ModelWeights, trace: ReviewTrace, layer_index: int, step: int) -> dict[str, np.ndarray]:
    """One iteration of the loop at the review's step (1-based) in one layer, term by term: for a SimpleRNN the seed's
    loop, state_t = tanh(W x_t + U state_(t-1) + b); for a gated cell its gates, candidate, carry and state
    (layer_terms at that step)."""
    layer = weights.recurrent[layer_index]
    if cells.cell(layer.cell).gate_names:
        return {name: values[step - 1] for name, values in layer_terms(weights, trace, layer_index).items()}
    position = trace.positions[step - 1]
    states = trace.states[layer_index]
    inputs = weights.embedding[trace.ids[position]] if layer_index == 0 else trace.states[layer_index - 1][position]
    previous = states[position - 1] if position > 0 else np.zeros(layer.units)
    # Keras's layout: kernel is W transposed, so x_t @ kernel == W x_t.
    w_x = inputs @ layer.kernel
    u_state = previous @ layer.recurrent_kernel
    total = w_x + u_state + layer.bias
    return {
        "W x_t": w_x,
        "U state_(t-1)": u_state,
        "b": layer.bias,
        "sum": total,
        "tanh(sum)": np.tanh(total),
        "state_t (loop)": states[position],
    }


def layer_terms(weights: ModelWeights, trace: ReviewTrace, layer_index: int) -> dict[str, np.ndarray]:
    """Every value one layer's step computes (its core.cells entry's terms: for a gated cell its gates, candidate and,
    for an LSTM, carry), at each of the review's steps: name -> (len(positions), units). The layer is run again over
    the trace's inputs, padding steps included, as the forward pass ran it."""
    layer = weights.recurrent[layer_index]
    cell = cells.cell(layer.cell)
    inputs = weights.embedding[trace.ids] if layer_index == 0 else trace.states[layer_index - 1]
    projected, recurrent_kernel, recurrent_bias = project(layer, inputs)
    shown = set(trace.positions.tolist())
    state = np.zeros((1, layer.units))
    carry = np.zeros((1, layer.units))
    recorded: dict[str, list[np.ndarray]] = {}
    for step, token_id in enumerate(trace.ids):
        if weights.mask_zero and token_id == 0:
            continue  # a masked padding step leaves the state and carry as they are, and is not shown
        terms = cell.step_terms(projected[step : step + 1], state, carry, recurrent_kernel, recurrent_bias)
        state, carry = terms["state"], terms.get("carry", carry)
        if step in shown:
            for name, values in terms.items():
                recorded.setdefault(name, []).append(values[0])
    return {name: np.stack(values) for name, values in recorded.items()}


@dataclass(frozen=True)
class Comparison:
    """One review's positive probability from three implementations of the same model."""

    numpy: float  # core.model.numpy_loop on the run's weights
    keras: float  # the run's model.keras
    onnxruntime: float | None  # the run's model.onnx; None when the run has none
    step_difference: float | None  # largest per-word difference from the file's step_probability, when it has one

    @property
    def largest(self) -> float:
        """The largest difference between any two of the probabilities."""
        values = [value for value in (self.numpy, self.keras, self.onnxruntime) if value is not None]
        return max(abs(first - second) for first in values for second in values)


def compare_implementations(trace: ReviewTrace, keras_model, predictor: Predictor | None) -> Comparison:
    """The traced review scored by the Keras model (called, never imported here) and the exported file's Predictor."""
    if trace.probability is None:
        raise ValueError("this model has no output layer: there is no probability to compare")
    keras = float(np.asarray(keras_model(trace.ids[None, :], training=False))[0, 0])
    onnxruntime = step_difference = None
    if predictor is not None:
        onnxruntime = float(predictor.probabilities(trace.ids[None, :])[0])
        if predictor.has_trajectory and trace.word_steps is not None and len(trace.word_steps):
            # The review's ids as the model read them (start id and words), the file's probability after each word.
            steps = predictor.step_probabilities(trace.ids[trace.positions].tolist(), len(trace.word_steps))
            if len(steps) == len(trace.word_steps):
                step_difference = float(np.max(np.abs(steps - trace.word_steps)))
    return Comparison(trace.probability, keras, onnxruntime, step_difference)
