"""Inside the RNN page: the seed's NumPy loop run live on a trained model's own weights, step by step."""

import hashlib
import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.examples import EXAMPLE_REVIEWS
from core.reference import run_reference
from core.runs import read_vocabulary
from core.text import pad_sequences
from dashboard import resources, widgets

STEP_KEY = "inside_step"
STEP_FOR_KEY = "inside_step_review"
COMPARISON_KEY = "inside_comparison"
CELL_NAMES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}

SEED_PSEUDOCODE = """state_t = 0  # the state at t
for input_t in input_sequence:
    output_t = f(input_t, state_t)
    state_t = output_t  # the next state"""

SEED_NUMPY = """state_t = np.zeros((units,))
for input_t in inputs:  # embeddings
    output_t = np.tanh(np.dot(W, input_t)
                       + np.dot(U, state_t) + b)
    state_t = output_t"""


def _head(weights, states: np.ndarray) -> np.ndarray | None:
    # The classifier on top, applied to the last layer's state after every step: "if the review ended here".
    if weights.output is None:
        return None
    features = states
    if weights.hidden is not None:
        features = np.maximum(features @ weights.hidden.kernel + weights.hidden.bias, 0.0)
    return 1.0 / (1.0 + np.exp(-(features @ weights.output.kernel + weights.output.bias)[:, 0]))


def _state_figure(state: np.ndarray) -> go.Figure:
    figure = go.Figure(
        go.Bar(
            x=list(range(len(state))),
            y=state,
            marker={"color": state, "colorscale": "RdBu", "cmin": -1, "cmax": 1},
            hovertemplate="unit %{x}: %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="unit", yaxis={"range": [-1.05, 1.05]}
    )
    return figure


def _heatmap(states: np.ndarray, tokens: list[str], step: int) -> go.Figure:
    figure = go.Figure(
        go.Heatmap(
            z=states.T,
            x=list(range(1, len(tokens) + 1)),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            # Plotly reads a few HTML tags in hover text; escaped, markers like <unk> show as they are.
            customdata=np.tile(np.array([html.escape(token) for token in tokens], dtype=object), (states.shape[1], 1)),
            hovertemplate="step %{x} (%{customdata}), unit %{y}: %{z:.3f}<extra></extra>",
        )
    )
    figure.add_vline(x=step, line_color="#111827", line_width=2)
    figure.update_layout(height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="step", yaxis_title="unit")
    return figure


def _loop_table(layer, inputs: np.ndarray, previous: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
    # One iteration of the seed's loop with Keras's layout (kernel is W transposed: x_t @ kernel == W x_t).
    w_x = inputs @ layer.kernel
    u_state = previous @ layer.recurrent_kernel
    total = w_x + u_state + layer.bias
    return {
        "W x_t": w_x,
        "U state_(t-1)": u_state,
        "b": layer.bias,
        "sum": total,
        "tanh(sum)": np.tanh(total),
        "state_t (loop)": state,
    }


def _compare(run, text: str, ids: np.ndarray, reference, word_steps: np.ndarray | None) -> dict:
    rows = [{"implementation": "NumPy (this page)", "probability": float(reference.probability[0])}]
    keras_model = resources.keras_model(run.path)
    rows.append({"implementation": "Keras", "probability": float(np.asarray(keras_model(ids, training=False))[0, 0])})
    onnx_path = run.path / "model.onnx"
    note = None
    step_difference = None
    if onnx_path.is_file():
        predictor = resources.predictor(onnx_path)
        rows.append({"implementation": "onnxruntime", "probability": float(predictor.probabilities(ids)[0])})
        if predictor.has_trajectory and word_steps is not None and len(word_steps):
            _, steps = predictor.trajectory(text)
            if len(steps) == len(word_steps):
                step_difference = float(np.max(np.abs(steps - word_steps)))
    else:
        note = "This run has no model.onnx: export it on the Export page to compare with onnxruntime too."
    values = [row["probability"] for row in rows]
    for row in rows:
        row["|difference from NumPy|"] = abs(row["probability"] - values[0])
    largest = max(abs(a - b) for a in values for b in values)
    return {"rows": rows, "largest": largest, "step_difference": step_difference, "note": note}


st.title("Inside the RNN")
st.markdown(
    "The book's pseudocode and NumPy loop (6.2), run here on a trained run's own weights: "
    "`state_t = tanh(W x_t + U state_(t-1) + b)`, one token at a time."
)
code_left, code_right = st.columns(2)
code_left.code(SEED_PSEUDOCODE, language="python")
code_right.code(SEED_NUMPY, language="python")

# Inputs: a run with weights, and a review. A run without usable weights is refused with its reason.
run = widgets.usable_run_ui(
    resources.list_runs(),
    key="inside_run",
    action="look inside",
    none_message="No trained run yet: train one on the Train page, then come back to look inside it.",
)
try:
    weights = resources.run_weights(run.path)
    vocabulary = read_vocabulary(run.path)
except ValueError as error:
    st.error(widgets.message(str(error)))
    st.stop()
text = widgets.review_choice_ui(EXAMPLE_REVIEWS, key="inside_review")
if not text.strip():
    st.info("Type a review above to follow it through the network.")
    st.stop()

# One call into core: the NumPy reference forward over the padded ids, every layer's state at every step.
config = run.config.model
ids = pad_sequences([vocabulary.encode(text).ids], config.sequence_length, config.padding, config.truncating)
reference = run_reference(weights, ids)

# Render. Only the steps that hold the review are shown; the padding steps run too but carry no word.
positions = np.flatnonzero(ids[0] != vocabulary.pad_id)
tokens = vocabulary.decode(ids[0][positions])
layer_index = 0
if len(weights.recurrent) > 1:
    layer_index = st.selectbox(
        "Recurrent layer",
        list(range(len(weights.recurrent))),
        format_func=lambda index: f"{index + 1}: {CELL_NAMES[weights.recurrent[index].cell]}",
        key="inside_layer",
    )
layer = weights.recurrent[layer_index]
states = reference.states[layer_index][0]
shown = states[positions]
numpy_steps = _head(weights, reference.states[-1][0][positions])
# The same steps without the start marker: what the exported step_probability output reports, one a word.
word_steps = None if numpy_steps is None else numpy_steps[ids[0][positions] != vocabulary.start_id]
comparison_id = (run.run_id, hashlib.sha256(text.encode("utf-8")).hexdigest())
if len(positions) > 1:
    # A new review or run starts at its last step, where the state the classifier reads lives.
    if st.session_state.get(STEP_FOR_KEY) != comparison_id or st.session_state.get(STEP_KEY, 1) > len(positions):
        st.session_state[STEP_KEY] = len(positions)
        st.session_state[STEP_FOR_KEY] = comparison_id
    step = st.slider("Time step", 1, len(positions), key=STEP_KEY)
else:
    step = 1
position = positions[step - 1]

columns = st.columns(4)
columns[0].metric("Token at this step", tokens[step - 1], border=True)
columns[1].metric("Token id", f"{int(ids[0][position])}", border=True)
if numpy_steps is not None:
    columns[2].metric(
        "Probability so far", f"{numpy_steps[step - 1]:.1%}", border=True, help="If the review ended at this step"
    )
    columns[3].metric("Final probability (NumPy)", f"{reference.probability[0]:.1%}", border=True)
if len(positions) < len(ids[0]):
    effect = "leave the state as it is (mask_padding)" if weights.mask_zero else "run through the loop too"
    st.caption(
        f"{len(ids[0]) - len(positions)} padding steps come {'before' if config.padding == 'pre' else 'after'} "
        f"the review; they {effect} but are not shown."
    )

state_column, heatmap_column = st.columns([1, 2])
with state_column:
    st.subheader(f"State vector at step {step}")
    st.plotly_chart(_state_figure(shown[step - 1]), key="inside_state")
with heatmap_column:
    st.subheader("All states over time")
    st.plotly_chart(_heatmap(shown, tokens, step), key="inside_heatmap")

if layer.cell == "simple_rnn":
    st.subheader("The loop at this step")
    inputs = weights.embedding[ids[0][position]] if layer_index == 0 else reference.states[layer_index - 1][0][position]
    previous = states[position - 1] if position > 0 else np.zeros(layer.units)
    table = _loop_table(layer, inputs, previous, states[position])
    st.dataframe(
        {"unit": list(range(layer.units)), **{name: np.round(values, 5) for name, values in table.items()}},
        hide_index=True,
        key="inside_loop",
    )
else:
    st.caption(f"{CELL_NAMES[layer.cell]} layers use gates; the table of the plain tanh loop applies to SimpleRNN only.")

st.subheader("NumPy beside Keras and onnxruntime")
if st.button("Compare with Keras and onnxruntime", key="inside_compare", icon=":material/compare_arrows:"):
    try:
        st.session_state[COMPARISON_KEY] = {"id": comparison_id, **_compare(run, text, ids, reference, word_steps)}
    except ValueError as error:
        st.error(widgets.message(str(error)))
comparison = st.session_state.get(COMPARISON_KEY)
if comparison and comparison["id"] == comparison_id:
    st.dataframe(
        comparison["rows"],
        hide_index=True,
        key="inside_comparison_table",
        column_config={
            "probability": st.column_config.NumberColumn(format="%.8f"),
            "|difference from NumPy|": st.column_config.NumberColumn(format="%.2e"),
        },
    )
    st.metric("Largest difference", f"{comparison['largest']:.2e}", border=True)
    if comparison["step_difference"] is not None:
        st.caption(
            "Probability after every word, NumPy vs onnxruntime's step_probability: largest difference "
            f"{comparison['step_difference']:.2e}."
        )
    if comparison["note"]:
        st.info(comparison["note"])
else:
    st.caption("Loads TensorFlow the first time (a few seconds): the rest of this page runs on NumPy alone.")
