"""Train page: train the configured model on a background thread and follow it live; one training per server."""

from dataclasses import replace

import streamlit as st

from core.data import DataError
from core.jobs import JobSnapshot
from core.run_table import test_accuracy
from dashboard import resources, widgets

# How often the live part of the page asks the training thread where it stands.
REFRESH_SECONDS = 1.0
DEMO_REVIEWS = 5_000
DEMO_EPOCHS = 3


def _show_ended(state: JobSnapshot) -> None:
    """The outcome of the latest training: where its run is, or why it failed."""
    run_name = state.run_dir.name if state.run_dir else None
    if state.status == "failed":
        st.error(widgets.escape_markdown(f"Training failed: {state.error}"), icon=":material/error:")
    elif state.status == "cancelled":
        st.warning(
            f"Stopped after {state.epochs_done} of {state.epochs_total} epochs; run {run_name} is kept.",
            icon=":material/stop_circle:",
        )
    else:
        accuracy = test_accuracy(state.run) if state.run else None
        tested = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
        st.success(f"Finished run {run_name}{tested}.", icon=":material/check_circle:")
    if run_name:
        st.page_link("views/runs.py", label="See it under Runs", icon=":material/history:")


st.title("Train")
experiment = resources.current_experiment()
model_config = experiment.model
st.text(widgets.architecture_label(model_config))
settings = experiment.train
st.caption(
    f"{settings.optimizer}, learning rate {settings.learning_rate:g}, batch size {settings.batch_size}, "
    f"validation split {settings.validation_split:g}, early stopping patience {settings.early_stopping_patience} "
    "(change them on Build)."
)

# Guards: a classifier to train, and reviews to train it on.
if not model_config.is_classifier:
    st.warning(
        "The model configured on Build has no Dense(1, sigmoid) on its final state, so it cannot learn sentiment. "
        "Turn the output layer on and 'returns every step' off, or pick seed, book-lstm or book-gru.",
        icon=":material/info:",
    )
    st.stop()
source = resources.data_source()
try:
    dataset = resources.dataset(source, model_config.vocabulary_size)
except DataError as error:
    st.error(widgets.message(str(error)), icon=":material/error:")
    # The message may speak of the command line; in the dashboard, a CSV upload on the Data page is the quick way.
    st.page_link("views/data.py", label="Upload a CSV of reviews on the Data page", icon=":material/upload:")
    st.stop()

slot = resources.training_slot()

# Inputs: how much to train, so that a demo ends in about a minute.
limit_column, epochs_column, start_column = st.columns([2, 1, 1], vertical_alignment="bottom")
with limit_column:
    if "train_limit" not in st.session_state:
        st.session_state["train_limit"] = min(DEMO_REVIEWS, len(dataset.train))
    # Another source may hold fewer reviews than the number kept from the last one.
    st.session_state["train_limit"] = min(st.session_state["train_limit"], len(dataset.train))
    limit = st.number_input(
        f"Train on the first N reviews (of {len(dataset.train):,}; 0 for all)",
        min_value=0,
        max_value=len(dataset.train),
        step=500,
        key="train_limit",
    )
with epochs_column:
    if "train_epochs" not in st.session_state:
        st.session_state["train_epochs"] = min(settings.epochs, DEMO_EPOCHS)
    epochs = st.number_input(
        "Epochs", min_value=1, max_value=1_000, step=1, key="train_epochs", help=f"Build says {settings.epochs}"
    )
with start_column:
    start = st.button("Start training", key="train_start", type="primary", icon=":material/play_arrow:")
# The source may be an uploaded file's name: shown literally.
st.caption(
    f"Reviews from {widgets.escape_markdown(resources.describe_source(source))}; one training at a time on this server."
)

if start:
    try:
        slot.start(
            model_config,
            replace(settings, epochs=int(epochs)),
            dataset,
            store=resources.run_store(),
            limit=int(limit) or None,
        )
    except ValueError as error:
        # Another tab's training, or settings that do not fit the data: one line, and the page goes on.
        st.error(widgets.message(str(error)), icon=":material/block:")

job = slot.job
if job is None:
    # A server restarted while it trained leaves that run interrupted: say so rather than nothing.
    latest = next(iter(resources.list_runs()), None)
    if latest is not None and latest.status == "interrupted":
        st.warning(widgets.escape_markdown(widgets.status_note(latest)), icon=":material/warning:")
        st.page_link("views/runs.py", label="See it under Runs", icon=":material/history:")
    st.info("No training yet on this server. Press Start training.", icon=":material/info:")
    st.stop()

# The live part reruns alone every REFRESH_SECONDS while a training runs; every tab reads the same job.
running = job.snapshot().active


@st.fragment(run_every=REFRESH_SECONDS if running else None)
def live_training() -> None:
    state = job.snapshot()
    if running and not state.active:
        # The training ended since the page was drawn: redraw it whole, which also stops the refresh.
        st.rerun(scope="app")
    if state.active:
        progress_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
        with progress_column:
            st.progress(min(max(state.epoch_fraction, 0.0), 1.0), text=state.progress_text)
        with stop_column:
            st.button(
                "Stop",
                key="train_stop",
                on_click=job.stop,
                icon=":material/stop:",
                help="Ends after the current batch and keeps the run",
            )
    else:
        _show_ended(state)
    if state.history.get("loss"):
        widgets.history_figures_ui(state.history, key="train_figures")
    elif state.active:
        st.caption("The curves appear when the first epoch ends.")


live_training()
