"""Train page: train the configured model in its own process and follow it live; one training at a time."""

from dataclasses import replace

import streamlit as st

from core.data import DataError
from core.training import JobSnapshot, current_training
from core.runs import test_accuracy
from dashboard import access, resources, run_actions, widgets

# How often the live part of the page reads the run folder of the training it follows.
REFRESH_SECONDS = 1.0
DEMO_REVIEWS = 5_000
DEMO_EPOCHS = 3


def _show_ended(state: JobSnapshot) -> None:
    """The outcome of the latest training: where its run is, or why it failed."""
    run_name = state.run_dir.name if state.run_dir else None
    if state.status == "failed":
        st.error(widgets.escape_markdown(f"Training failed: {state.error}"), icon=":material/error:")
    elif state.status == "interrupted":
        st.warning(widgets.escape_markdown(widgets.status_note(state.run)), icon=":material/warning:")
        run_actions.resume_button_ui(state.run, "train_resume")
    elif state.status == "cancelled":
        st.warning(
            f"Stopped after {state.epochs_done} of {state.epochs_total} epochs; run {run_name} is kept.",
            icon=":material/stop_circle:",
        )
        run_actions.resume_button_ui(state.run, "train_resume")
    else:
        accuracy = test_accuracy(state.run) if state.run else None
        tested = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
        st.success(f"Finished run {run_name}{tested}.", icon=":material/check_circle:")
    if run_name:
        st.page_link("views/runs.py", label="See it under Runs", icon=":material/history:")


st.title("Train")
access.read_only_note_ui()
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
vocabulary_size = access.vocabulary_size_for(model_config.vocabulary_size)  # a session that cannot train reads
try:
    dataset = resources.dataset(source, vocabulary_size)
except DataError as error:
    st.error(widgets.message(str(error)), icon=":material/error:")
    # The message may speak of the command line; in the dashboard, a CSV upload on the Data page is the quick way.
    st.page_link("views/data.py", label="Upload a CSV of reviews on the Data page", icon=":material/upload:")
    st.stop()

slot = resources.training_slot()
store = resources.run_store()

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
state = current_training(store, slot.launch)
busy = state is not None and state.active
with start_column:
    start = st.button(
        "Start training",
        key="train_start",
        type="primary",
        icon=":material/play_arrow:",
        disabled=not access.can_write() or busy,
        help="One training at a time: this one starts when the running one ends" if busy else None,
    )
# The source may be an uploaded file's name: shown literally.
st.caption(
    f"Reviews from {widgets.escape_markdown(resources.describe_source(source))}; the training runs in its own process, "
    "one at a time for this runs folder."
)

if start and access.require_write("starting a training"):
    try:
        slot.start(
            replace(experiment, train=replace(settings, epochs=int(epochs))),
            store,
            limit=int(limit) or None,
            data=source,
        )
    except ValueError as error:
        # Another tab's or process's training, or a runs folder that cannot be written: one line, the page goes on.
        st.error(widgets.message(str(error)), icon=":material/block:")
    state = current_training(store, slot.launch)
if state is None:
    run_actions.message_ui()
    # A training killed (or a server restarted while it trained) leaves its run interrupted: say so, offer Resume.
    latest = next(iter(resources.list_runs()), None)
    if latest is not None and latest.status == "interrupted":
        st.warning(widgets.escape_markdown(widgets.status_note(latest)), icon=":material/warning:")
        run_actions.resume_button_ui(latest, "train_resume_latest")
        st.page_link("views/runs.py", label="See it under Runs", icon=":material/history:")
    # In read-only mode the note at the top says who may train: no invitation beside a disabled button.
    invitation = " Press Start training." if access.can_write() else ""
    st.info(f"No training yet on this server.{invitation}", icon=":material/info:")
    st.stop()

# The live part reruns alone every REFRESH_SECONDS while a training runs, reading its run folder; any tab, any process.
running = state.active


@st.fragment(run_every=REFRESH_SECONDS if running else None)
def live_training() -> None:
    state = current_training(store, slot.launch)
    if state is None or state.active != running:
        # A training ended (or its process died), or one started from a button in here (Resume), since the page was
        # drawn: redraw it whole, which starts or stops the refresh.
        st.rerun(scope="app")
    # A click inside a fragment reruns only the fragment: a Resume refused in here is said in here.
    run_actions.message_ui()
    if state.active:
        if state.run_dir is not None:
            st.caption(
                f"A training is running (run {state.run_dir.name}, epoch {max(state.epoch, 1)} of "
                f"{state.epochs_total}) in its own process."
            )
        progress_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
        with progress_column:
            st.progress(state.done_share, text=state.progress_text)
        with stop_column:
            st.button(
                "Stop",
                key="train_stop",
                on_click=run_actions.stop,
                args=(state.run_dir,),
                icon=":material/stop:",
                disabled=not access.can_write(),
                help="Ends after the current batch and keeps the run",
            )
    else:
        _show_ended(state)
    if state.history.get("loss"):
        widgets.history_figures_ui(state.history, key="train_figures")
    elif state.active:
        st.caption("The curves appear when the first epoch ends.")


live_training()
