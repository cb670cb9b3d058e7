"""Classify page: one review, or a CSV or Parquet file of them, with an exported .onnx file through onnxruntime.

One page, two tabs: the single review (its form, result, chart and words) and the file batch; each tab is a fragment
of its own, so their code stays together here rather than in modules the page would have to thread state through."""

import streamlit as st

from core.data import EXAMPLE_REVIEWS
from core.scoring import Explanation, explain, parquet_bytes, score_table
from dashboard import access, figures, resources, served_page, widgets

REVIEW_KEY = "classify_review"
RESULT_KEY = "classify_result"
PENDING_KEY = "classify_pending"
BATCH_KEY = "classify_batch"
# The batch table shows this many rows; the download holds them all.
TABLE_ROWS = 5_000


def _take_example() -> None:
    # Runs before the script: copy the chosen example into the review box and classify it at once.
    title = st.session_state.get("classify_example")
    if title is not None:
        st.session_state[REVIEW_KEY] = dict(EXAMPLE_REVIEWS)[title]
        st.session_state[PENDING_KEY] = True
        st.session_state["classify_example"] = None


def _steps(count: int) -> str:
    return f"{count:,} step" + ("" if count == 1 else "s")


def _nothing_to_classify(explanation: Explanation) -> str | None:
    """Why a review has no label, as for an empty one: no word at all, or none the model knows (its score would be the
    model's prior, or what <unk> alone moves it to, not a reading of the review)."""
    prediction = explanation.prediction
    if prediction.tokens == 0:
        return "The review holds no words (only punctuation, symbols or emoji): there is nothing to classify."
    if prediction.unknown_tokens == prediction.tokens:
        return "None of the review's words are in the model's vocabulary: there is nothing to classify."
    return None


def _show_result(explanation: Explanation, predictor) -> None:
    prediction, read = explanation.prediction, explanation.words_read
    top = widgets.metric_row()
    top.metric("Positive probability", f"{prediction.score:.1%}", border=True)
    top.metric("Label", prediction.label, border=True)
    top.metric("Latency", f"{explanation.latency_ms:.1f} ms", border=True, help="predict() on the server")
    counts = widgets.metric_row()
    counts.metric("Tokens used", f"{read:,}", help="Words the model read (the start marker not counted)")
    counts.metric("Unknown", f"{prediction.unknown_tokens:,}", help="Words outside the vocabulary, read as <unk>")
    counts.metric(
        "Cut off",
        f"{explanation.words_cut:,}",
        help=f"Words beyond the sequence length of {explanation.sequence_length}",
    )
    if explanation.padding_skip is not None and explanation.steps_run < explanation.sequence_length:
        why = (
            "a masked model, whose padded steps leave the state unchanged"
            if explanation.masked_padding_skip
            else "it starts from the state the padding would have left"
        )
        st.caption(
            f"The recurrence ran {_steps(explanation.steps_run)}, not {explanation.sequence_length:,}: this file skips "
            f"the padding ({why}), with the same score."
        )
    if explanation.words_cut:
        st.caption(
            f"The model reads {explanation.sequence_length} ids: the review's {explanation.cut_side} "
            f"{explanation.words_cut:,} words were cut off."
        )

    if explanation.steps is None and prediction.tokens:
        st.info("This model file has no step_probability output: export it with --trajectory to see the chart.")
    if not explanation.steps:
        return
    words, steps, changes = explanation.words, explanation.steps, explanation.changes
    st.subheader("Sentiment over time")
    figure = figures.trajectory_figure(words, steps, changes, predictor.metadata.threshold)
    st.plotly_chart(figure, key="classify_trajectory")
    st.caption(
        "Each word coloured by how much it moved the positive probability: green up, red down, bold by 5 points or "
        "more; words in italics are unknown to the model, which reads them all as one <unk> word."
    )
    st.markdown(widgets.coloured_words(words, changes, explanation.unknown))


# A fragment: a click on Classify reruns this part alone, not the model picker, the sidebar or the batch tab.
@st.fragment
def _single_review(predictor, model_path) -> None:
    st.pills(
        "Try an example",
        [title for title, _ in EXAMPLE_REVIEWS],
        key="classify_example",
        on_change=_take_example,
    )
    # A form: typing sends nothing, and the click sends the review with itself, one rerun a classification (a text
    # area outside a form sends its text when it loses focus, and a click after typing cost two). Ctrl+Enter submits.
    with st.form("classify_form", border=False):
        text = st.text_area("Review", key=REVIEW_KEY, height=160, placeholder="Type or paste a movie review...")
        clicked = st.form_submit_button("Classify", key="classify_run", type="primary", icon=":material/play_arrow:")
    if clicked or st.session_state.pop(PENDING_KEY, False):
        if not (text or "").strip():
            st.session_state.pop(RESULT_KEY, None)
            st.warning("The review is empty: type or paste some text, or pick an example above.")
            return
        try:
            # One call into core: the prediction, the words read, the probability after each, the cut and the steps.
            explanation = explain(predictor, text)
        except ValueError as error:
            st.session_state.pop(RESULT_KEY, None)
            st.error(widgets.message(str(error)))
            return
        nothing = _nothing_to_classify(explanation)
        if nothing is not None:
            st.session_state.pop(RESULT_KEY, None)
            st.warning(nothing)
            return
        st.session_state[RESULT_KEY] = {"model": str(model_path), "explanation": explanation}
    result = st.session_state.get(RESULT_KEY)
    if result is not None and result["model"] == str(model_path):
        _show_result(result["explanation"], predictor)
    elif predictor.has_trajectory:
        # An empty chart until the first result: the browser loads its charting code now, not after the click.
        st.subheader("Sentiment over time")
        st.plotly_chart(figures.trajectory_figure([], [], [], predictor.metadata.threshold), key="classify_trajectory")
        st.caption("Classify a review to see its positive probability after every word.")


@st.fragment
def _batch(predictor) -> None:
    uploaded = st.file_uploader(
        "A CSV (UTF-8) or Parquet file with a text or review column", type=["csv", "parquet"], key="classify_csv"
    )
    column = st.text_input("Text column (blank: the column named text or review)", key="classify_csv_column")
    start = st.button("Classify the file", key="classify_csv_run", disabled=uploaded is None, icon=":material/table:")
    if start and uploaded is not None:
        # A session that may write keeps the upload in the cache; a read-only one scores a temporary copy, removed
        # at once, and at most batch_row_cap() rows of it.
        cap = access.batch_row_cap()
        # The stored copy is named by its content; its extension, from the user's file name, says how to read it.
        suffix = ".parquet" if uploaded.name.lower().endswith(".parquet") else ".csv"
        bar = st.progress(0.0, text="Classifying...")
        try:
            with resources.uploaded_file(uploaded.getvalue(), suffix, keep=cap is None) as path:
                scored = score_table(
                    predictor,
                    path,
                    column.strip() or None,
                    lambda fraction, done: bar.progress(fraction, text=f"{done:,} reviews classified"),
                    preview_rows=TABLE_ROWS,
                    max_rows=cap,
                )
        except ValueError as error:
            st.session_state.pop(BATCH_KEY, None)
            # The stored copy has a hashed name; say the user's own file name instead. The message may quote the
            # file's own column names, so it is shown as plain text, never as markdown.
            st.error(widgets.message(str(error).replace(str(path), uploaded.name)))
            return
        finally:
            bar.empty()
        if not len(scored):
            st.session_state.pop(BATCH_KEY, None)
            st.warning(widgets.escape_markdown(f"{uploaded.name} has a header but no reviews."))
            return
        table = scored.to_frame()
        # The downloads are made once here, not on every rerun: for a million rows they take seconds.
        csv_bytes = table.to_csv(index=False).encode("utf-8")
        # The table alone is kept, not the typed columns it was made from too: a million rows are tens of megabytes.
        st.session_state[BATCH_KEY] = {
            "name": uploaded.name, "table": table, "summary": scored.summary(), "previews": scored.previews,
            "csv": csv_bytes, "parquet": parquet_bytes(scored) if suffix == ".parquet" else None,
            "capped": cap if scored.capped else None,
        }
    batch = st.session_state.get(BATCH_KEY)
    if batch is None:
        return
    table = batch["table"]
    st.success(widgets.escape_markdown(f"{len(table):,} reviews from {batch['name']}: {batch['summary']}"))
    st.dataframe(
        table.head(TABLE_ROWS).assign(text=list(batch["previews"])),
        key="classify_csv_table",
        hide_index=True,
        column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f")},
    )
    if batch.get("capped"):
        st.warning(f"Read-only mode classifies the first {batch['capped']:,} rows of a file: the rest were not read.")
    if len(table) > TABLE_ROWS:
        st.caption(f"The first {TABLE_ROWS:,} rows are shown; the download holds all {len(table):,}.")
    widgets.predictions_download_ui(batch["name"], batch["csv"], batch.get("parquet"))


st.title("Classify a review")
access.read_only_note_ui()

# Inputs: the model.
model_path, predictor = widgets.predictor_choice_ui("classify_model")
# The model's facts as metrics: besides informing, this has the browser load the metric code before the first click.
accuracy = (predictor.metadata.metrics or {}).get("test_accuracy")
facts = widgets.metric_row()
facts.metric("Model test accuracy", f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "unknown")
facts.metric(
    "Sequence length", f"{predictor.metadata.sequence_length:,}", help="Ids the model reads, the start id included"
)
facts.metric("Vocabulary", f"{predictor.metadata.vocabulary.num_words:,}", help="num_words: ids below it are words")
served_page.link_ui("classify")

one_review, csv_file = st.tabs(["One review", "A CSV or Parquet file"])
with one_review:
    _single_review(predictor, model_path)
with csv_file:
    _batch(predictor)
