"""Export page: turn a trained run into one self-describing .onnx file and show what is inside it.

One idea, several files: the export, its text-reading companion and its int8 copy are each offered here with what
the file holds (ops, inputs and outputs, metadata), and the commands that serve it over HTTP, so the page runs past 200
lines; the computing is in core.export (and core.serving).
"""

import time

import plotly.graph_objects as go
import streamlit as st

from core import cells
from core.evaluation import NO_DATA_PAGE, compare_files, quantization_summary, reviews_to_score
from core.export import (
    PARITY_TOLERANCE,
    file_notes,
    file_problem,
    float_metadata,
    generic_loops,
    int8_path,
    io_rows,
    metadata_rows,
    quantize_file,
    text_path,
)
from core.serving import serve_commands
from dashboard import access, resources, served_page, widgets

LAST_EXPORT_KEY = "export_last"
GENERIC_LOOPS = ("Loop", "Scan")


def _download_ui(label: str, path, file_name: str, key: str, **options) -> None:
    """A download button for one of the run's model files, named file_name in the browser."""
    st.download_button(
        label,
        data=path.read_bytes(),
        file_name=file_name,
        mime="application/octet-stream",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        **options,
    )


def _op_figure(counts: dict[str, int]) -> go.Figure:
    names = list(counts)
    colours = ["#c2410c" if name in cells.RECURRENT_OPS else "#dc2626" if name in GENERIC_LOOPS else "#9ca3af" for name in names]
    figure = go.Figure(go.Bar(x=names, y=[counts[name] for name in names], marker_color=colours, text=list(counts.values())))
    figure.update_layout(
        height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="nodes", xaxis_title="ONNX op type"
    )
    return figure


@st.cache_data(max_entries=8, show_spinner="Timing both files and scoring the test reviews with each...")
def _int8_comparison(float_path: str, float_modified: int, int8_path: str, int8_modified: int, source: str | None):
    # Keyed on both files' paths and modification times: a new export or quantization measures again.
    vocabulary = float_metadata(float_path).vocabulary
    reviews = reviews_to_score(vocabulary, source, no_data=NO_DATA_PAGE, keep_going=True, load=resources.dataset)
    return compare_files(float_path, int8_path, reviews, single_repeats=100)


st.title("Export a run to ONNX")
access.read_only_note_ui()

# Inputs: a run. One that still trains, is broken or died before saving weights is refused with its reason below.
run = widgets.usable_run_ui(
    resources.list_runs(),
    key="export_run",
    action="export",
    none_message="No trained run to export yet: train one on the Train page (finished and stopped runs can be exported).",
)
trajectory = st.toggle(
    "Add the sentiment-over-time output (step_probability)",
    value=True,
    key="export_trajectory",
    help="A second output with the probability after every word, which the Classify page charts.",
)
left, right = st.columns([1, 2], vertical_alignment="center")
export_clicked = left.button(
    "Export to ONNX",
    key="export_start",
    type="primary",
    icon=":material/conversion_path:",
    disabled=not access.can_write(),
)
with right:
    st.download_button(
        "Download the run as a zip",
        data=resources.run_archive(run.path),
        file_name=f"{run.run_id}.zip",
        mime="application/zip",
        key="export_download_zip",
        on_click="ignore",
        icon=":material/folder_zip:",
        help="config.json, vocab.json, metrics.json, history as JSON and CSV, model.keras and model.onnx when exported",
    )

# One call into core: conversion, native-op rewrite, parity check and atomic write all happen in export_run.
if export_clicked and access.require_write("exporting a run to ONNX"):
    from core.export import export_run

    clicked_at = time.perf_counter()
    # The stage it is in as the label: loading TensorFlow, reading reviews and the parity check take seconds each.
    with st.status("Exporting...") as status:
        try:
            result = export_run(
                run.path,
                trajectory=trajectory,
                on_stage=lambda text: status.update(label=widgets.message(text) + "..."),
            )
        except ValueError as error:
            status.update(label="The export failed", state="error")
            st.error(widgets.message(str(error)))
            st.stop()
    st.session_state[LAST_EXPORT_KEY] = {
        "run": run.run_id,
        "seconds": time.perf_counter() - clicked_at,  # the whole wait, as the person saw it
        "converting": result.seconds,
        "parity_inputs": result.parity_inputs,
    }
    st.rerun()  # the zip above now holds the new model.onnx

onnx_path = run.path / "model.onnx"
if not onnx_path.is_file():
    st.info("This run has no model.onnx yet: press Export to ONNX.")
    st.stop()
try:
    predictor = resources.predictor(onnx_path)
except ValueError as error:
    st.error(widgets.escape_markdown(f"{error}. Export the run again to replace it."))
    st.stop()

# Render: what the file holds.
last = st.session_state.get(LAST_EXPORT_KEY)
if last and last["run"] == run.run_id:
    checked_on = widgets.escape_markdown(last["parity_inputs"] or "random ids")
    st.success(
        f"Exported in {last['seconds']:.1f} s: {last['converting']:.1f} s converting, checking parity on {checked_on} "
        "and writing; the rest loading TensorFlow, the run's model and its reviews."
    )
counts = resources.onnx_op_counts(onnx_path)
recurrent = resources.onnx_recurrent_layers(onnx_path)
loops = generic_loops(counts)
parity = predictor.metadata.parity_max_abs_diff
facts = widgets.metric_row()
facts.metric("File size", f"{onnx_path.stat().st_size / 1024:,.1f} KiB", border=True)
facts.metric(
    "Parity (max difference)",
    f"{parity:.1e}",
    border=True,
    help=f"Largest |Keras - onnxruntime| at export, on real reviews and random ids; the export fails above {PARITY_TOLERANCE:.0e}.",
)
facts.metric(
    "Native recurrent ops",
    ", ".join(f"{count} {name}" for name, count in recurrent.items()) or "none",
    border=True,
    help="The recurrent layers by the ONNX op that runs each (RNN, LSTM, GRU), a layer counted once",
)
facts.metric("Generic loop nodes", f"{loops}", border=True, help="tf2onnx's Loop; a file from this version has none")
clean_rows = resources.onnx_has_clean_rows_path(onnx_path)
for note in file_notes(counts, predictor.metadata.padding_skip, predictor.metadata.sequence_length, clean_rows):
    st.caption(widgets.escape_markdown(note))
problem = file_problem(counts, parity)
if problem:
    st.error(problem)
_download_ui("Download model.onnx", onnx_path, f"{run.run_id}.onnx", "export_download_onnx", type="primary")

# The companion that reads raw reviews: written by the same export, after model.onnx.
text_file = text_path(onnx_path)
if text_file.is_file() and text_file.stat().st_mtime_ns >= onnx_path.stat().st_mtime_ns:
    _download_ui(
        "Download model.text.onnx (raw reviews in)",
        text_file,
        f"{run.run_id}.text.onnx",
        "export_download_text",
        help="The same model with the text rule inside the graph: a string tensor of reviews in, the probability and "
        "word counts out, in any onnxruntime with string tensors and its contrib ops (Python, Java, C#, "
        "JavaScript's wasm build); no tokenizer to write.",
    )
    st.caption(
        f"model.text.onnx: {text_file.stat().st_size / 1024:,.1f} KiB; input `review` (string), outputs "
        "`probability`, `tokens` and `unknown_tokens` (tokens 0: no word was read, give no label)."
    )
else:
    st.caption("No model.text.onnx from this export (it was made before the text file): press Export to ONNX again.")

served_page.export_ui(run, onnx_path)

# The same file behind an HTTP API (core.serving): the commands that serve it, for a practitioner's next step.
st.subheader("HTTP API")
st.caption(
    "The Open Inference Protocol (KServe's V2 REST API), served by MLServer in its own environment: reviews (`review`, "
    "BYTES) or ids (`input_ids`, INT32) in, `probability` and `label` out, from any V2 client (tritonclient, KServe, "
    "curl). Run from the project's folder; the README's section on the API says what each request may hold."
)
st.code(serve_commands(onnx_path, run.run_id), language="sh")

# int8: onnxruntime's dynamic quantization of the embedding, written beside model.onnx and compared with it.
st.subheader("int8 model")
int8_file = int8_path(onnx_path)
if st.button(
    "Quantize to int8",
    key="export_quantize",
    icon=":material/compress:",
    help="Writes model.int8.onnx: the embedding table in uint8, everything else float32, standard ONNX ops only.",
    disabled=not access.can_write(),
) and access.require_write("quantizing a model to int8"):
    with st.spinner("Quantizing the embedding with onnxruntime..."):
        try:
            quantize_file(onnx_path, int8_file)
        except ValueError as error:
            st.error(widgets.message(str(error)))
if not int8_file.is_file():
    st.caption("No int8 copy yet: Quantize to int8 writes one and compares it with model.onnx on the test reviews.")
elif int8_file.stat().st_mtime_ns < onnx_path.stat().st_mtime_ns:
    st.info("model.int8.onnx was made from an earlier export of this run: press Quantize to int8 again.")
else:
    # The run's own reviews when they are still where it read them, else the data source of this session.
    source = run.data_source(resources.data_source())
    found = _int8_comparison(
        str(onnx_path), onnx_path.stat().st_mtime_ns, str(int8_file), int8_file.stat().st_mtime_ns, source
    )
    st.dataframe(found.comparison.rows(), hide_index=True, key="export_int8_table")
    if found.missing:
        st.info(widgets.message(f"Test accuracy not measured: {found.missing}."))
    st.caption(widgets.escape_markdown(quantization_summary(found.quantization)))
    _download_ui("Download model.int8.onnx", int8_file, f"{run.run_id}.int8.onnx", "export_download_int8")

st.subheader("Op histogram")
st.plotly_chart(_op_figure(counts), key="export_ops")
copies = [
    f"{counts[name]} {name} nodes for {layers} {'layer' if layers == 1 else 'layers'}"
    for name, layers in recurrent.items()
    if counts.get(name, 0) > layers
]
if copies:
    st.caption(
        f"Nodes as the graph holds them, {', '.join(copies)}: an If holds a copy of a layer in each branch (the steps "
        "switch, which computes step_probability only when asked for it, and the path for cleanly padded batches)."
    )

st.subheader("Inputs and outputs")
st.dataframe(io_rows(predictor), hide_index=True, key="export_io")

st.subheader("Metadata")
props = predictor.metadata.to_props()
rows = metadata_rows(props)
st.dataframe(rows, hide_index=True, key="export_metadata", height=36 * (len(rows) + 1))
config_column, metrics_column, versions_column = st.columns(3)
with config_column:
    st.caption("config")
    st.json(predictor.metadata.config.to_dict(), expanded=False)
with metrics_column:
    st.caption("metrics")
    st.json(predictor.metadata.metrics, expanded=True)
with versions_column:
    st.caption("versions")
    st.json(predictor.metadata.versions, expanded=True)
