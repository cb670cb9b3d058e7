"""Build page: pick a preset, change the architecture and training settings, see the model summary live."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core.config import PRESET_DESCRIPTIONS, PRESETS, ExperimentConfig
from core.model import describe
from dashboard import access, build_form, resources, widgets


def _apply_preset() -> None:
    name = st.session_state["build_preset"]
    st.session_state[resources.PRESET_KEY] = name
    build_form.load_experiment_into_widgets(PRESETS[name])


def _reset_to_preset() -> None:
    build_form.load_experiment_into_widgets(PRESETS[st.session_state["build_preset"]])


st.title("Build")
access.read_only_note_ui()
st.caption("Change the model and see its layers and parameters at once; Train trains what is configured here.")

# Streamlit forgets widget values when the user is on another page: put the configured experiment back.
if build_form.build_widgets_missing():
    build_form.load_experiment_into_widgets(resources.current_experiment())
if "build_preset" not in st.session_state:
    st.session_state["build_preset"] = st.session_state.get(resources.PRESET_KEY, "seed")

# One column, in reading order: the preset, the model, its summary right under it, the training settings. Side by
# side, a 1,024 px window cut the cell names, the checkboxes' labels and the summary's Formula column.
preset_column, reset_column = st.columns([4, 1], vertical_alignment="bottom")
with preset_column:
    preset_name = st.selectbox(
        "Preset",
        list(PRESETS),
        key="build_preset",
        on_change=_apply_preset,
        help="  \n".join(f"**{name}**: {text}" for name, text in PRESET_DESCRIPTIONS.items()),
    )
with reset_column:
    st.button("Reset", key="build_reset", on_click=_reset_to_preset, help="Back to the preset's values")
preset_note = st.empty()  # the preset's description, or that the form no longer holds the preset
preset_note.caption(PRESET_DESCRIPTIONS[preset_name])
with st.expander("Load a config file"):
    config_file = st.file_uploader(
        "A config.json from a run or from Download config.json", type=["json"], key="build_config_file"
    )
    if config_file is not None:
        try:
            loaded = ExperimentConfig.from_json(config_file.getvalue().decode("utf-8", errors="replace"))
        except ValueError as error:
            # The message may quote the file's own keys: shown literally, never as markdown.
            build_form.field_error(widgets.message(str(error)))
        else:
            # Load a file once: later reruns keep the user's edits instead of reloading it.
            if st.session_state.get("build_config_file_applied") != config_file.file_id:
                st.session_state["build_config_file_applied"] = config_file.file_id
                build_form.load_experiment_into_widgets(loaded)
            st.caption(f"Loaded {len(loaded.model.recurrent_layers)} recurrent layer(s) from the file.")

st.subheader("Model")
model_config = build_form.model_config_ui()

st.subheader("Summary")
if model_config is None:
    st.info("Fix the field marked in red to see the summary.", icon=":material/edit:")
    st.stop()
description = describe(model_config)
table = pd.DataFrame(
    {
        "Layer": [layer.name for layer in description.layers],
        "Type": [layer.type for layer in description.layers],
        "Output shape": [str(layer.output_shape).replace("None", "batch") for layer in description.layers],
        "Parameters": [f"{layer.params:,}" for layer in description.layers],
        # st.table reads its cells as markdown: V*d = 10000*32 would turn into italics.
        "Formula": [widgets.escape_markdown(layer.formula) for layer in description.layers],
    }
)
# A static table: a few rows whose text wraps (in a scrolling frame, a 1,024 px window cut the Formula column).
st.table(table.set_index("Layer"))
total_column, size_column = st.columns(2)
total_column.metric("Total parameters", f"{description.total_params:,}")
size_column.metric("Size (float32)", f"{description.size_bytes / 1e6:,.2f} MB")
chart = px.bar(
    x=[layer.params for layer in description.layers],
    y=[layer.name for layer in description.layers],
    orientation="h",
    text=[f"{layer.params / description.total_params:.1%}" for layer in description.layers],
    labels={"x": "Parameters", "y": "Layer"},
    title="Where the parameters are",
)
chart.update_yaxes(autorange="reversed")
chart.update_layout(height=260, margin={"l": 10, "r": 10, "t": 40, "b": 10})
st.plotly_chart(chart, key="build_parameter_chart")

st.subheader("Training")
train_config = build_form.train_config_ui()
if train_config is None:
    st.info("Fix the training field marked in red; Train keeps the last valid settings.", icon=":material/edit:")
    st.stop()
experiment = ExperimentConfig(model_config, train_config)
st.session_state[resources.EXPERIMENT_KEY] = experiment
if experiment != PRESETS[preset_name]:
    preset_note.caption(
        f"Edited from {preset_name}: the form no longer holds the preset (Reset goes back to it). "
        "Train trains what the form holds."
    )
if not model_config.is_classifier:
    st.warning(
        "This model has no Dense(1, sigmoid) classifier on its final state, so it cannot be trained on reviews. "
        "It shows the seed's shapes and parameter counts.",
        icon=":material/info:",
    )
with st.expander("Config as JSON"):
    st.code(experiment.to_json(), language="json")
    st.download_button(
        "Download config.json",
        experiment.to_json(),
        file_name="config.json",
        mime="application/json",
        key="build_download_config",
        on_click="ignore",
    )
