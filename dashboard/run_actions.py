"""What the Train and Runs pages may do to a run: stop, resume and delete, each checked for write access (and resume
and delete for a run id the server listed itself), with one message for the next rerun."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.training import stop_training
from dashboard import access, resources, widgets

# The outcome of the last action, ("error" | "success", text), shown by message_ui() on the next rerun.
MESSAGE_KEY = "run_action_message"
# Widgets that may still point at a deleted run: a value that is no longer an option would break them.
RUN_WIDGET_KEYS = ("runs_detail", "runs_diff_first", "runs_diff_second", "runs_delete_id")


def _listed(run_id: object) -> str | None:
    """run_id when it names a run the server lists now, else None: no id from the browser becomes a path otherwise."""
    return access.safe_choice(run_id, [run.run_id for run in resources.list_runs()])


def _allowed(action: str, run_id: object) -> str | None:
    """The listed run id when this session may do action to it; else the reason is kept for message_ui and None."""
    if not access.can_write():
        st.session_state[MESSAGE_KEY] = ("error", access.refusal(action))
        return None
    listed = _listed(run_id)
    if listed is None:
        st.session_state[MESSAGE_KEY] = ("error", "That run is no longer in the runs folder: pick another.")
    return listed


def resume(run_id: str) -> None:
    """on_click of a Resume button: the run goes on in its own process."""
    listed = _allowed("resuming a training", run_id)
    if listed is None:
        return
    try:
        resources.training_slot().resume(resources.run_store().root / listed)
    except ValueError as error:
        st.session_state[MESSAGE_KEY] = ("error", widgets.message(str(error)))
    else:
        st.session_state[MESSAGE_KEY] = ("success", f"Resumed run {listed} in its own process: follow it on Train.")


def stop(run_dir: Path | None) -> None:
    """on_click of the Train page's Stop: SIGTERM to the training of run_dir (or to the launch still starting)."""
    if not access.can_write():
        st.session_state[MESSAGE_KEY] = ("error", access.refusal("stopping a training"))
        return
    stop_training(run_dir, resources.training_slot().launch)


def delete(run_id: str) -> None:
    """on_click of the Runs page's Delete button."""
    listed = _allowed("deleting a run", run_id)
    if listed is None:
        return
    try:
        resources.run_store().delete(listed)
    except ValueError as error:
        st.session_state[MESSAGE_KEY] = ("error", widgets.message(str(error)))
    else:
        st.session_state[MESSAGE_KEY] = ("success", f"Deleted run {listed}.")
    st.session_state["runs_delete_confirm"] = False
    for key in RUN_WIDGET_KEYS:
        if st.session_state.get(key) == listed:
            del st.session_state[key]
    if listed in st.session_state.get("runs_compare", []):
        st.session_state["runs_compare"] = [other for other in st.session_state["runs_compare"] if other != listed]


def message_ui() -> None:
    """Say how the last action went (its callback ran before this rerun), once."""
    kind, text = st.session_state.pop(MESSAGE_KEY, (None, None))
    if kind == "error":
        st.error(text, icon=":material/error:")
    elif kind == "success":
        st.success(text, icon=":material/check:")


def resume_button_ui(run, key: str, help_text: str = "Goes on in its own process with the run's own config and data") -> None:
    """A Resume button for a run that stopped short of its epochs with a checkpoint to go on from."""
    if run is not None and run.resumable:
        st.button(
            f"Resume from epoch {run.checkpoint_epoch}",
            key=key,
            on_click=resume,
            args=(Path(run.path).name,),
            disabled=not access.can_write(),
            icon=":material/play_circle:",
            help=help_text,
        )
