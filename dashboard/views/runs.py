"""Runs page: every training run in a table, their curves overlaid, two configs compared, one run's figures, delete."""

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.runs import RunInfo
from dashboard import resources, widgets

CURVE_METRICS = {
    "val_accuracy": "Validation accuracy",
    "accuracy": "Training accuracy",
    "val_loss": "Validation loss",
    "loss": "Training loss",
}


def _seconds(run: RunInfo) -> float | None:
    measured = (run.metrics or {}).get("train_seconds")
    if isinstance(measured, (int, float)):
        return float(measured)
    # Runs that never wrote metrics (killed, failed) still have their start and end times.
    if not run.created or not run.finished:
        return None
    try:
        return (datetime.fromisoformat(run.finished) - datetime.fromisoformat(run.created)).total_seconds()
    except ValueError:
        return None


def _test_accuracy(run: RunInfo) -> float | None:
    value = (run.metrics or {}).get("test_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def _row(run: RunInfo) -> dict:
    validation = run.history.get("val_accuracy") or []
    planned = run.epochs_planned
    return {
        "Run": run.run_id,
        "Architecture": widgets.architecture_label(run.config.model) if run.config else "unknown",
        # A broken run says so in its status, where people look first; the reason is in the Problem column.
        "Status": f"{run.status}, broken" if run.broken else run.status,
        "Epochs": f"{run.epochs_done}/{planned}" if planned else str(run.epochs_done),
        "Best val accuracy": max(validation) if validation else None,
        "Test accuracy": _test_accuracy(run),
        "Time (s)": _seconds(run),
        "Reviews": run.data.get("reviews") or run.data.get("limit"),
        "Problem": run.broken or run.error or "",
    }


def _delete(run_id: str) -> None:
    try:
        resources.run_store().delete(run_id)
    except ValueError as error:
        st.session_state["runs_message"] = ("error", widgets.message(str(error)))
    else:
        st.session_state["runs_message"] = ("success", f"Deleted run {run_id}.")
    st.session_state["runs_delete_confirm"] = False
    # Widgets still pointing at the deleted run would hold a value that is no longer an option.
    for key in ("runs_detail", "runs_diff_first", "runs_diff_second", "runs_delete_id"):
        if st.session_state.get(key) == run_id:
            del st.session_state[key]
    if run_id in st.session_state.get("runs_compare", []):
        st.session_state["runs_compare"] = [other for other in st.session_state["runs_compare"] if other != run_id]


st.title("Runs")
st.caption("Every training in the runs folder (shown in the sidebar), newest first.")

runs = resources.list_runs()
kind, message = st.session_state.pop("runs_message", (None, None))
if kind == "error":
    st.error(message, icon=":material/error:")
elif kind == "success":
    st.success(message, icon=":material/check:")
if not runs:
    st.info("No runs yet. Configure a model on Build, then train it on Train.", icon=":material/info:")
    st.stop()

by_id = {run.run_id: run for run in runs}
table = pd.DataFrame([_row(run) for run in runs])
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "Best val accuracy": st.column_config.NumberColumn(format="percent"),
        "Test accuracy": st.column_config.NumberColumn(format="percent"),
        "Time (s)": st.column_config.NumberColumn(format="%.0f"),
    },
)

# Overlaid curves of the chosen runs.
st.subheader("Compare curves")
with_history = [run.run_id for run in runs if run.epochs_done]
chosen_column, metric_column = st.columns([3, 1])
with chosen_column:
    chosen = st.multiselect("Runs", with_history, default=with_history[:2], key="runs_compare")
with metric_column:
    metric = st.selectbox("Curve", list(CURVE_METRICS), format_func=CURVE_METRICS.get, key="runs_curve_metric")
if chosen:
    overlay = go.Figure()
    for run_id in chosen:
        values = by_id[run_id].history.get(metric) or []
        overlay.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=run_id))
    overlay.update_layout(
        xaxis_title="Epochs",
        yaxis_title=CURVE_METRICS[metric],
        height=360,
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    overlay.update_xaxes(dtick=1 if max(by_id[run_id].epochs_done for run_id in chosen) <= 20 else None)
    st.plotly_chart(overlay, key="runs_overlay_chart")
else:
    st.caption("Choose runs with at least one finished epoch to overlay their curves.")

# One run in detail: the seed's two figures.
st.subheader("One run")
detail_id = st.selectbox(
    "Run", list(by_id), format_func=lambda run_id: widgets.run_label(by_id[run_id]), key="runs_detail"
)
detail = resources.load_run(detail_id)
if detail.broken:
    st.warning(widgets.escape_markdown(f"This run is broken: {detail.broken}"), icon=":material/warning:")
if detail.status == "failed":
    st.error(widgets.escape_markdown(f"Training failed: {detail.error or 'no reason was recorded'}"), icon=":material/error:")
elif widgets.status_note(detail):
    st.info(widgets.escape_markdown(widgets.status_note(detail)), icon=":material/info:")
if detail.config:
    st.text(widgets.architecture_label(detail.config.model))
if detail.epochs_done:
    widgets.history_figures_ui(detail.history, key="runs_figures")
else:
    st.caption("This run has no finished epoch yet.")
if detail.metrics:
    metrics = detail.metrics
    test_column, best_column, seconds_column = st.columns(3)
    test_accuracy = _test_accuracy(detail)
    test_column.metric("Test accuracy", f"{test_accuracy:.1%}" if test_accuracy is not None else "not tested")
    best = metrics.get("best_epoch")
    best_accuracy = metrics.get("best_val_accuracy")
    best_column.metric(
        "Best epoch (lowest val loss)",
        f"{best} ({best_accuracy:.1%})" if best and isinstance(best_accuracy, (int, float)) else str(best or "-"),
    )
    seconds = _seconds(detail)
    seconds_column.metric("Training time", f"{seconds:,.0f} s" if seconds is not None else "-")

# The differences between two configs.
st.subheader("Differences between two configs")
with_config = [run.run_id for run in runs if run.config]
if len(with_config) < 2:
    st.caption("Two runs with a readable config are needed to compare.")
else:
    first_column, second_column = st.columns(2)
    with first_column:
        first_id = st.selectbox("First run", with_config, index=0, key="runs_diff_first")
    with second_column:
        second_id = st.selectbox("Second run", with_config, index=1, key="runs_diff_second")
    first = widgets.flatten_config(by_id[first_id].config)
    second = widgets.flatten_config(by_id[second_id].config)
    differences = [
        {"Field": name, first_id: str(first.get(name, "-")), second_id: str(second.get(name, "-"))}
        for name in sorted(set(first) | set(second))
        if first.get(name) != second.get(name)
    ]
    if first_id == second_id:
        st.caption("Pick two different runs.")
    elif differences:
        st.dataframe(pd.DataFrame(differences), hide_index=True)
    else:
        st.success("The two configs are identical.", icon=":material/check:")

# Delete, behind a confirmation.
st.subheader("Delete a run")
delete_column, confirm_column, button_column = st.columns([3, 2, 1], vertical_alignment="bottom")
with delete_column:
    delete_id = st.selectbox(
        "Run to delete", list(by_id), format_func=lambda run_id: widgets.run_label(by_id[run_id]), key="runs_delete_id"
    )
with confirm_column:
    confirmed = st.checkbox("Yes, delete it for good", key="runs_delete_confirm")
with button_column:
    st.button(
        "Delete",
        key="runs_delete",
        type="primary",
        disabled=not confirmed,
        on_click=_delete,
        args=(delete_id,),
        icon=":material/delete:",
    )
