"""Widget helpers shared by the pages: run and model pickers, history figures, escaping; each *_ui() returns plain values."""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st

from core import cells
from core.config import ModelConfig



def architecture_label(model: ModelConfig) -> str:
    """A model in one line, as the Runs table and the Train page show it: Embedding(10000, 32) > SimpleRNN(32) > Dense(1)."""
    parts = [f"Embedding({model.vocabulary_size}, {model.embedding_dim})"]
    parts += [f"{cells.cell(layer.cell).label}({layer.units})" for layer in model.recurrent_layers]
    if model.hidden_dense_units:
        parts.append(f"Dense({model.hidden_dense_units}, relu)")
    if model.output_layer:
        parts.append("Dense(1)")
    return " > ".join(parts)


def history_figures_ui(history: dict, key: str) -> None:
    """The book's two figures side by side: training and validation accuracy, training and validation loss."""
    from dashboard.run_figures import history_figure

    accuracy_column, loss_column = st.columns(2)
    with accuracy_column:
        st.plotly_chart(history_figure(history, "accuracy", "Training and validation accuracy"), key=f"{key}_accuracy")
    with loss_column:
        st.plotly_chart(history_figure(history, "loss", "Training and validation loss"), key=f"{key}_loss")


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~:$&=\"'")


def escape_markdown(text: str) -> str:
    """Text that st.markdown shows literally: every markdown, directive and HTML character backslash-escaped."""
    return "".join("\\" + character if character in _MARKDOWN_SPECIALS else character for character in text)


def message(text: str) -> str:
    """A message from core (or quoting user input) for st.error and friends: a capital first letter, shown literally."""
    # core's messages start in lower case to read well after "error:" on a command line. A first word that is part of
    # a file name or path (mine.csv, runs/x) keeps its case.
    if re.match(r"[a-z]+(?![\w./\\-])", text):
        text = text[:1].upper() + text[1:]
    return escape_markdown(text)


# ---- Classify, Export and Inside the RNN ------------------------------------------------------------------------------

UPLOAD_MODEL_OPTION = "Upload an .onnx file"


def model_choice_ui(models: dict, key: str):
    """Pick a model: one of models (label -> .onnx path) or an uploaded file; its path, or None while none is chosen."""
    from dashboard import access
    from dashboard.resources import save_upload

    # An upload is stored on the server, so read-only mode does not offer it (and refuses it if asked anyway).
    writable = access.can_write()
    choice = st.selectbox("Model", [*models, *([UPLOAD_MODEL_OPTION] if writable else [])], key=key)
    if choice != UPLOAD_MODEL_OPTION:
        return models.get(choice)
    if not access.require_write("storing an uploaded model"):
        return None
    uploaded = st.file_uploader(
        "An .onnx file exported by this project (python -m core export RUN_DIR)", type=["onnx"], key=f"{key}_upload"
    )
    if uploaded is None:
        return None
    # Stored under its content hash: the uploaded name never becomes a path on the server.
    return save_upload(uploaded.getvalue(), ".onnx")


def run_label(run) -> str:
    """One line naming a run in a picker: id, status (and broken), test accuracy when known."""
    from core.runs import test_accuracy

    accuracy = test_accuracy(run)
    parts = [run.run_id, run.status]
    if run.broken:
        parts.append("broken")
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.1%}")
    return " · ".join(parts)


def metric_row():
    """A row of metrics that wraps onto another line when the window is narrow: as wide as st.columns where there is
    room (1,400 px), where st.columns would cut each value to "98.7..." (1,024 px, beside the sidebar)."""
    return st.container(horizontal=True, wrap=True)


def percent_column(help_text: str | None = None):
    """A table column of shares (0 to 1, given through as_percent) shown with one decimal, "52.1%", as every accuracy
    on the pages is: Streamlit's "percent" format drops trailing zeros, so "51%" stood beside "52.14%"."""
    return st.column_config.NumberColumn(format="%.1f%%", help=help_text)


def as_percent(share: float | None) -> float | None:
    """A share (0 to 1) in percent for a percent_column; None stays None (an empty cell)."""
    return None if share is None else 100 * share


def run_problem(run, action: str) -> str | None:
    """Why run cannot be used to `action` (export, look inside) as one polite line (core's one rule), escaped for
    markdown, or None."""
    problem = run.why_unusable(action)
    return message(problem) + "." if problem else None


def status_note(run) -> str | None:
    """One line for a run that did not finish normally (interrupted, cancelled), or None."""
    planned = f" of {run.epochs_planned}" if run.epochs_planned else ""
    if run.status == "interrupted":
        return (
            f"Run {run.run_id} was interrupted: {run.error or 'its training process ended without saving a result'}. "
            f"It had finished {run.epochs_done}{planned} epochs; their curves are kept."
        )
    if run.status == "cancelled":
        return f"Run {run.run_id} was stopped after {run.epochs_done}{planned} epochs; its weights are kept."
    return None


def run_choice_ui(runs: list, key: str, action: str | None = None, label: str = "Run"):
    """Pick one of runs (RunInfo, newest first), starting on the newest one usable to `action`; returns a RunInfo."""
    by_id = {run.run_id: run for run in runs}
    usable = [index for index, run in enumerate(runs) if action is None or run_problem(run, action) is None]
    run_id = st.selectbox(
        label, list(by_id), index=usable[0] if usable else 0, format_func=lambda value: run_label(by_id[value]), key=key
    )
    return by_id[run_id]


def usable_run_ui(runs: list, key: str, action: str, none_message: str):
    """Pick a run to `action` (export, look inside); stops the page with a friendly line when none is usable."""
    if not runs:
        st.info(none_message)
        st.stop()
    run = run_choice_ui(runs, key=key, action=action)
    problem = run_problem(run, action)
    if problem:
        st.warning(problem, icon=":material/block:")  # escaped by run_problem
        st.stop()
    note = status_note(run)
    if note:
        st.caption(escape_markdown(note))
    return run


def review_choice_ui(examples: list, key: str, default_index: int = 0) -> str:
    """A review to look at: one of the examples ((title, text) pairs) or the user's own; returns its text."""
    own = "My own review"
    titles = [title for title, _ in examples]
    choice = st.selectbox("Review", [*titles, own], index=default_index, key=key)
    if choice == own:
        # Far more than any model reads (its window is sequence_length words), and bounded: a shared server.
        return st.text_area("Your review", key=f"{key}_text", height=120, max_chars=100_000) or ""
    return dict(examples)[choice]


# A step that moves the probability by this much is coloured; by STRONG_STEP or more, it is also bold.
VISIBLE_STEP = 0.01
STRONG_STEP = 0.05


def coloured_words(words: Sequence[str], changes: Sequence[float], unknown: Sequence[bool]) -> str:
    """The review's words as markdown, coloured by the change each made; unknown words (flagged) in italics.

    Neighbouring words of one colour share one colour directive: the browser styles a span a run of them, not a span
    a word (about 120 runs for the 185 coloured words of an average review; a Chromium page spent about 15 ms less a
    click drawing the result)."""
    # Every word is markdown-escaped inside the colour directive: user text is never read as markup or HTML.
    runs: list[tuple[str | None, list[str]]] = []
    for word, change, outside in zip(words, changes, unknown):
        text = escape_markdown(word)
        if outside:
            text = f"*{text}*"
        if abs(change) >= STRONG_STEP:
            text = f"**{text}**"
        colour = "green" if change >= VISIBLE_STEP else "red" if change <= -VISIBLE_STEP else None
        if runs and runs[-1][0] == colour:
            runs[-1][1].append(text)
        else:
            runs.append((colour, [text]))
    return " ".join(f":{colour}-background[{' '.join(run)}]" if colour else " ".join(run) for colour, run in runs)


def predictor_choice_ui(key: str):
    """The Classify page's model picker and loader: (model path, Predictor); stops the page when there is no model or
    the chosen file cannot be used (an upload's stored path never shows in the message)."""
    from dashboard import resources

    models = resources.classify_models()
    model_path = model_choice_ui(models, key=key)
    if model_path is None:
        if not models:
            st.info("No model yet: upload an .onnx file exported by this project, or export a run on the Export page.")
        st.stop()
    try:
        return model_path, resources.predictor(model_path)
    except ValueError as error:
        text = str(error)
        if model_path not in models.values():
            # An upload is stored under its content hash; that path means nothing to the user.
            for name in (str(model_path.resolve()), str(model_path)):
                text = text.replace(name, "the uploaded file")
        st.error(message(text))
        st.stop()


def predictions_download_ui(name: str, csv_bytes: bytes, parquet_bytes: bytes | None) -> None:
    """The downloads of a scored file: CSV for anyone, and Parquet (typed columns) back for a Parquet upload; the
    names are made from the upload's name by access.download_name, so no user text becomes a path."""
    from dashboard import access

    stem = f"predictions-{name.rsplit('.', 1)[0]}"
    downloads = [("CSV", csv_bytes, ".csv", "text/csv", "classify_csv_download")]
    if parquet_bytes is not None:
        downloads.append(
            ("Parquet", parquet_bytes, ".parquet", "application/vnd.apache.parquet", "classify_parquet_download")
        )
    for column, (kind, data, suffix, mime, key) in zip(st.columns(2), downloads):
        column.download_button(
            f"Download predictions as {kind}",
            data=data,
            file_name=access.download_name(stem, suffix),
            mime=mime,
            key=key,
            on_click="ignore",
            icon=":material/download:",
        )
