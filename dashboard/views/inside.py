"""Inside the RNN page: the seed's NumPy loop run live on a trained model's own weights, step by step."""

import hashlib

import numpy as np
import streamlit as st

from core import cells
from core.data import EXAMPLE_REVIEWS
from core.runs import read_vocabulary
from core.model import compare_implementations, layer_terms, loop_terms, trace_review
from dashboard import access, figures, resources, widgets

STEP_KEY = "inside_step"
STEP_FOR_KEY = "inside_step_review"
COMPARISON_KEY = "inside_comparison"

GATE_NOTES = {
    "lstm": (
        "Each step, the forget gate says how much of the carry to keep, the input gate how much of the candidate to "
        "write into it, the output gate how much of the carry to show as the state. A forget gate near 1 carries what "
        "it holds across many steps: the path a SimpleRNN lacks."
    ),
    "gru": (
        "Each step, the update gate says how much of the old state to keep (1 keeps it all), the reset gate how much "
        "of it the candidate may read. An update gate near 1 carries the state across many steps."
    ),
}

SEED_PSEUDOCODE = """state_t = 0  # the state at t
for input_t in input_sequence:
    output_t = f(input_t, state_t)
    state_t = output_t  # the next state"""

SEED_NUMPY = """state_t = np.zeros((units,))
for input_t in inputs:  # embeddings
    output_t = np.tanh(np.dot(W, input_t)
                       + np.dot(U, state_t) + b)
    state_t = output_t"""


st.title("Inside the RNN")
access.read_only_note_ui()
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
trace = trace_review(weights, vocabulary, run.config.model, text)

# Render. Only the steps that hold the review are shown; the padding steps run too but carry no word.
positions, tokens = trace.positions, trace.tokens
layer_index = 0
if len(weights.recurrent) > 1:
    layer_index = st.selectbox(
        "Recurrent layer",
        list(range(len(weights.recurrent))),
        format_func=lambda index: f"{index + 1}: {cells.cell(weights.recurrent[index].cell).label}",
        key="inside_layer",
    )
layer = weights.recurrent[layer_index]
shown = trace.review_states(layer_index)
comparison_id = (run.run_id, hashlib.sha256(text.encode("utf-8")).hexdigest())
if len(positions) > 1:
    # A new review or run starts at its last step, where the state the classifier reads lives.
    if st.session_state.get(STEP_FOR_KEY) != comparison_id or st.session_state.get(STEP_KEY, 1) > len(positions):
        st.session_state[STEP_KEY] = len(positions)
        st.session_state[STEP_FOR_KEY] = comparison_id
    step = st.slider("Time step", 1, len(positions), key=STEP_KEY)
else:
    step = 1

facts = widgets.metric_row()
facts.metric("Token at this step", tokens[step - 1], border=True)
facts.metric("Token id", f"{int(trace.ids[positions[step - 1]])}", border=True)
if trace.steps is not None:
    facts.metric(
        "Probability so far", f"{trace.steps[step - 1]:.1%}", border=True, help="If the review ended at this step"
    )
    facts.metric("Final probability (NumPy)", f"{trace.probability:.1%}", border=True)
if trace.padding_steps:
    effect = "leave the state as it is (mask_padding)" if weights.mask_zero else "run through the loop too"
    st.caption(
        f"{trace.padding_steps} padding steps come {'before' if run.config.model.padding == 'pre' else 'after'} "
        f"the review; they {effect} but are not shown."
    )

state_column, heatmap_column = st.columns([1, 2])
with state_column:
    st.subheader(f"State vector at step {step}")
    st.plotly_chart(figures.state_figure(shown[step - 1]), key="inside_state")
with heatmap_column:
    st.subheader("All states over time")
    st.plotly_chart(figures.states_heatmap(shown, tokens, step), key="inside_heatmap")

cell = cells.cell(layer.cell)
if cell.gate_names:
    # A gated cell: its gates (0 shuts, 1 lets through) and, for an LSTM, the carry, over the same steps.
    gated = layer_terms(weights, trace, layer_index)
    st.subheader(f"The {cell.label}'s gates over time")
    st.caption(GATE_NOTES[cell.name])
    named = [*cell.gate_names, *(["carry"] if cell.has_carry else [])]
    # Two a row: four side by side left each heatmap too narrow to read its steps at 1,400 px.
    columns = [column for _ in range(0, len(named), 2) for column in st.columns(2)]
    for column, name in zip(columns, named):
        values = gated[name]
        bound = max(float(np.abs(values).max()), 1e-6)
        value_range, colours = ((0.0, 1.0), "Viridis") if name in cell.gate_names else ((-bound, bound), "RdBu")
        with column:
            st.markdown(f"**{name.capitalize()}**")
            st.plotly_chart(
                figures.states_heatmap(values, tokens, step, value_range, colours, height=260),
                key=f"inside_{name.replace(' ', '_')}",
            )

terms = loop_terms(weights, trace, layer_index, step)
st.subheader("The loop at this step" if not cell.gate_names else f"The {cell.label} cell at this step")
if cell.gate_names:
    st.code(cell.equations, language=None)
st.dataframe(
    {"unit": list(range(layer.units)), **{name: np.asarray(values, dtype=float) for name, values in terms.items()}},
    hide_index=True,
    key="inside_loop",
    # One precision for every term (rounded values showed as 1.751 beside 0.5773).
    column_config={name: st.column_config.NumberColumn(format="%.4f") for name in terms},
)

st.subheader("NumPy beside Keras and onnxruntime")
if st.button("Compare with Keras and onnxruntime", key="inside_compare", icon=":material/compare_arrows:"):
    onnx_path = run.path / "model.onnx"
    try:
        keras_model = resources.keras_model(run.path)
        predictor = resources.predictor(onnx_path) if onnx_path.is_file() else None
        result = compare_implementations(trace, keras_model, predictor)
        st.session_state[COMPARISON_KEY] = {"id": comparison_id, "result": result}
    except ValueError as error:
        st.error(widgets.message(str(error)))
comparison = st.session_state.get(COMPARISON_KEY)
if comparison and comparison["id"] == comparison_id:
    result = comparison["result"]
    rows = [("NumPy (this page)", result.numpy), ("Keras", result.keras), ("onnxruntime", result.onnxruntime)]
    st.dataframe(
        [
            {"implementation": name, "probability": value, "|difference from NumPy|": abs(value - result.numpy)}
            for name, value in rows
            if value is not None
        ],
        hide_index=True,
        key="inside_comparison_table",
        column_config={
            "probability": st.column_config.NumberColumn(format="%.8f"),
            "|difference from NumPy|": st.column_config.NumberColumn(format="%.2e"),
        },
    )
    st.metric("Largest difference", f"{result.largest:.2e}", border=True)
    if result.step_difference is not None:
        st.caption(
            "Probability after every word, NumPy vs onnxruntime's step_probability: largest difference "
            f"{result.step_difference:.2e}."
        )
    if result.onnxruntime is None:
        st.info("This run has no model.onnx: export it on the Export page to compare with onnxruntime too.")
else:
    st.caption("Loads TensorFlow the first time (a few seconds): the rest of this page runs on NumPy alone.")
