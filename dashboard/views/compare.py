"""Compare page: finished runs side by side (the book's SimpleRNN, LSTM and GRU): curves, accuracy, size, speed."""

import pandas as pd
import streamlit as st

from core.evaluation import (
    comparable_problem,
    compare_runs,
    default_selection,
    load_comparison,
    single_review_latency_ms,
)
from core.errors import first_line
from core.history import best_epoch
from core.runs import BEST_EPOCH_COLUMN, PEAK_COLUMN
from dashboard import access, resources, run_figures, widgets

TRAIN_COMMAND = "python -m core compare --presets seed,book-lstm,book-gru"
METRICS = {"accuracy": "Accuracy", "loss": "Loss"}


@st.cache_data(max_entries=32, show_spinner="Timing one review through the exported file...")
def _cached_latency(path: str, modified_ns: int) -> float:
    return single_review_latency_ms(path)


def _latency(path) -> float:
    # Keyed by modification time: a re-exported file is timed again.
    return _cached_latency(str(path), path.stat().st_mtime_ns)


st.title("Compare runs")
access.read_only_note_ui()
st.caption(
    "The book's next step: SimpleRNN, LSTM and GRU trained on the same data and budget, side by side. "
    "Pick finished runs; the latency is measured on each run's exported model.onnx."
)

# Inputs: finished or stopped runs with weights, starting from the last comparison saved by the command line.
runs = resources.list_runs()
comparable = [run for run in runs if comparable_problem(run) is None]
if not comparable:
    st.info("No finished runs to compare yet. Train the book's three models one after another with:")
    st.code(TRAIN_COMMAND, language="sh")
    st.stop()
by_id = {run.run_id: run for run in comparable}
saved = load_comparison(resources.run_store().root)
chosen = st.multiselect(
    "Runs",
    list(by_id),
    default=default_selection(comparable, saved),
    format_func=lambda run_id: widgets.run_label(by_id[run_id]),
    key="compare_runs",
)
if not chosen:
    st.info("Pick at least one run to compare.")
    st.stop()
chosen_runs = [by_id[run_id] for run_id in chosen]

# Runs without an exported file: their latency and size need an export first (TensorFlow, a few seconds a run).
missing = [run for run in chosen_runs if not (run.path / "model.onnx").is_file()]
if missing:
    note_column, button_column = st.columns([3, 1], vertical_alignment="center")
    note_column.caption(
        f"{len(missing)} of these runs {'has' if len(missing) == 1 else 'have'} no model.onnx yet, "
        "so there is no latency or file size to show for them."
    )
    label = f"Export {len(missing)} run{'s' if len(missing) > 1 else ''}"
    if button_column.button(
        label, key="compare_export", icon=":material/conversion_path:", disabled=not access.can_write()
    ) and access.require_write("exporting runs to ONNX"):
        from core.export import export_run

        failed = []
        for run in missing:
            with st.spinner(f"Exporting {run.run_id} to ONNX and checking parity with Keras..."):
                try:
                    export_run(run.path)
                except ValueError as error:
                    failed.append(f"{run.run_id}: {first_line(error)}")
        if failed:
            st.error(widgets.message("; ".join(failed)))
            st.stop()
        st.rerun()

# One call into core: the rows, read from the run folders and their exported files.
try:
    comparison = compare_runs(chosen_runs, export=False, latency=_latency)
except ValueError as error:
    st.error(widgets.message(str(error)))
    st.stop()

for note in comparison.notes:
    st.warning(widgets.message(note), icon=":material/warning:")
table = pd.DataFrame(
    [
        {
            "Model": row.name,
            "Parameters": row.parameters,
            "Epochs": row.epochs_run,
            # compare.json's best_val_accuracy is the peak of any epoch; the best epoch is the lowest val loss.
            PEAK_COLUMN: widgets.as_percent(row.best_val_accuracy),
            "Peak epoch": row.best_val_epoch,
            BEST_EPOCH_COLUMN: getattr(best_epoch(row.history), "epoch", None),
            "Test accuracy": widgets.as_percent(row.test_accuracy),
            "s/epoch": row.seconds_per_epoch,
            "Latency (ms)": row.latency_ms,
            "File (KiB)": None if row.file_bytes is None else row.file_bytes / 1024,
            "Run": row.run_id,
        }
        for row in comparison.rows
    ]
)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "Parameters": st.column_config.NumberColumn(format="localized"),
        PEAK_COLUMN: widgets.percent_column(),
        "Test accuracy": widgets.percent_column(),
        "s/epoch": st.column_config.NumberColumn(format="%.1f"),
        "Latency (ms)": st.column_config.NumberColumn(format="%.3f"),
        "File (KiB)": st.column_config.NumberColumn(format="%.0f"),
    },
    key="compare_table",
)
st.caption(
    f"{PEAK_COLUMN}: the highest of any epoch (at its peak epoch). {BEST_EPOCH_COLUMN}: the epoch early stopping "
    "watches and restores. Test accuracy: the whole test split, after the last epoch (or with the best epoch's "
    "weights, when early stopping restored them). s/epoch: the median epoch when the comparison trained the run, "
    "else fit time / epochs. "
    f"Latency: {comparison.latency_input or 'needs an exported file'}."
)

accuracy_column, loss_column = st.columns(2)
with accuracy_column:
    st.plotly_chart(
        run_figures.comparison_overlay(comparison.rows, "accuracy", METRICS["accuracy"]), key="compare_accuracy"
    )
with loss_column:
    st.plotly_chart(run_figures.comparison_overlay(comparison.rows, "loss", METRICS["loss"]), key="compare_loss")

st.caption("Train the three book models on the same data and budget, then compare them, with:")
st.code(TRAIN_COMMAND, language="sh")
if saved is not None:
    st.caption(widgets.escape_markdown(f"Last comparison saved in the runs folder: {saved.created}."))
