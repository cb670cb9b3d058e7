"""Runs page: every training run in a table, their curves overlaid, two configs compared, one run's figures, delete."""

import pandas as pd
import streamlit as st

from core.runs import (
    BEST_EPOCH_COLUMN,
    PEAK_COLUMN,
    RunInfo,
    config_differences,
    run_row,
    test_accuracy,
    training_seconds,
)
from dashboard import access, resources, run_actions, run_figures, widgets

CURVE_METRICS = {
    "val_accuracy": "Validation accuracy",
    "accuracy": "Training accuracy",
    "val_loss": "Validation loss",
    "loss": "Training loss",
}


def _table_row(run: RunInfo) -> dict:
    row = run_row(run)
    # What tells runs apart first (the window may show only these at 1,024 px), the longer text last.
    return {
        "Run": row.run_id,
        "Status": row.status,
        "Test accuracy": widgets.as_percent(row.test_accuracy),
        PEAK_COLUMN: widgets.as_percent(row.peak_val_accuracy),
        "Epochs": row.epochs,
        BEST_EPOCH_COLUMN: row.best_epoch.epoch if row.best_epoch else None,
        "Time (s)": row.seconds,
        "Reviews": row.reviews,
        "Architecture": widgets.architecture_label(run.config.model) if run.config else "unknown",
        "Problem": row.problem,
    }


st.title("Runs")
access.read_only_note_ui()
st.caption("Every training in the runs folder (shown in the sidebar), newest first.")

runs = resources.list_runs()
run_actions.message_ui()
if not runs:
    st.info("No runs yet. Configure a model on Build, then train it on Train.", icon=":material/info:")
    st.stop()

by_id = {run.run_id: run for run in runs}
table = pd.DataFrame([_table_row(run) for run in runs])
if not table["Problem"].fillna("").astype(bool).any():
    table = table.drop(columns="Problem")  # an empty column only pushes the others out of a 1,024 px window
st.dataframe(
    table,
    hide_index=True,
    column_config={
        # Pinned: scrolled sideways in a narrow window, each row still says which run it is.
        "Run": st.column_config.TextColumn(pinned=True),
        PEAK_COLUMN: widgets.percent_column("The highest validation accuracy of any epoch"),
        BEST_EPOCH_COLUMN: st.column_config.NumberColumn(help="The epoch early stopping watches and restores"),
        "Test accuracy": widgets.percent_column(),
        "Time (s)": st.column_config.NumberColumn(format="%.0f"),
    },
)

# Overlaid curves of the chosen runs.
st.subheader("Compare curves")
with_history = [run.run_id for run in runs if run.epochs_done]
chosen_column, metric_column = st.columns([2, 1])
with chosen_column:
    chosen = st.multiselect("Runs", with_history, default=with_history[:2], key="runs_compare")
with metric_column:
    metric = st.selectbox("Curve", list(CURVE_METRICS), format_func=CURVE_METRICS.get, key="runs_curve_metric")
if chosen:
    histories = {run_id: by_id[run_id].history for run_id in chosen}
    st.plotly_chart(run_figures.runs_overlay(histories, metric, CURVE_METRICS[metric]), key="runs_overlay_chart")
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
if detail.partial:
    # Its model.keras is the best epoch so far: it can be evaluated and exported, and says it is partial.
    st.caption(f"This run is {detail.partial}: its saved model is the best epoch so far.")
run_actions.resume_button_ui(
    detail, "runs_resume", "Goes on in its own process with the run's own config and data; follow it on Train"
)
if detail.config:
    st.text(widgets.architecture_label(detail.config.model))
if detail.epochs_done:
    widgets.history_figures_ui(detail.history, key="runs_figures")
else:
    st.caption("This run has no finished epoch yet.")
if detail.metrics:
    metrics = detail.metrics
    test_column, best_column, seconds_column = st.columns(3)
    tested = test_accuracy(detail)
    test_column.metric("Test accuracy", f"{tested:.1%}" if tested is not None else "not tested")
    # metrics.json's best_val_accuracy is the validation accuracy at the best epoch, not the peak of any epoch.
    best = metrics.get("best_epoch")
    best_accuracy = metrics.get("best_val_accuracy")
    best_column.metric(
        BEST_EPOCH_COLUMN,
        f"{best} ({best_accuracy:.1%})" if best and isinstance(best_accuracy, (int, float)) else str(best or "-"),
    )
    seconds = training_seconds(detail)
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
    differences = [
        {"Field": name, first_id: first_value, second_id: second_value}
        for name, first_value, second_value in config_differences(by_id[first_id].config, by_id[second_id].config)
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
        disabled=not confirmed or not access.can_write(),
        on_click=run_actions.delete,
        args=(delete_id,),
        icon=":material/delete:",
    )
