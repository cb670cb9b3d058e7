"""Classify page: one review or a CSV of them with an exported .onnx model, through onnxruntime only (no TensorFlow)."""

import time
from array import array

import streamlit as st

from core.examples import EXAMPLE_REVIEWS
from dashboard import resources, widgets

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


def _words_read(prediction, predictor) -> int:
    # The start id takes one of the sequence_length places unless "pre" truncation cut it off.
    length = predictor.sequence_length
    if not prediction.truncated:
        return prediction.tokens
    return length if predictor.metadata.truncating == "pre" else length - 1


def _classify(predictor, model_path, text: str) -> dict:
    started = time.perf_counter()
    prediction = predictor.predict(text)[0]
    latency_ms = (time.perf_counter() - started) * 1000
    result = {"model": str(model_path), "prediction": prediction, "latency_ms": latency_ms, "words": None}
    if predictor.has_trajectory and prediction.tokens:
        words, steps = predictor.trajectory(text)
        # The probability before the first word: the start id alone, as the model sees it before any word.
        baseline = float(predictor.probabilities(predictor.pad([[predictor.vocabulary.start_id]]))[0])
        result.update(words=words, steps=[float(step) for step in steps], baseline=baseline)
    return result


def _show_result(result: dict, predictor) -> None:
    prediction = result["prediction"]
    read = _words_read(prediction, predictor)
    top = st.columns(3)
    top[0].metric("Positive probability", f"{prediction.score:.1%}", border=True)
    top[1].metric("Label", prediction.label, border=True)
    top[2].metric("Latency", f"{result['latency_ms']:.1f} ms", border=True, help="predict() on the server")
    counts = st.columns(3)
    counts[0].metric("Tokens used", f"{read:,}", help="Words the model read (the start marker not counted)")
    counts[1].metric("Unknown", f"{prediction.unknown_tokens:,}", help="Words outside the vocabulary, read as <unk>")
    counts[2].metric(
        "Cut off", f"{prediction.tokens - read:,}", help=f"Words beyond the sequence length of {predictor.sequence_length}"
    )
    skip = predictor.metadata.padding_skip if predictor.skips_padding else None
    if skip:
        why = (
            "a masked model, whose padded steps leave the state unchanged"
            if skip.get("method") == "sequence_lens"
            else "it starts from the state the padding would have left"
        )
        steps = min(read + 1, predictor.sequence_length)
        st.caption(
            f"The recurrence ran {steps:,} steps, not {predictor.sequence_length:,}: this file skips the padding "
            f"({why}), with the same score."
        )
    if prediction.tokens == 0:
        st.info("The review holds no words (only punctuation, symbols or emoji): the score is the model's prior.")
    elif prediction.unknown_tokens == prediction.tokens:
        st.warning("None of the review's words are in the model's vocabulary: the score says little.")
    if prediction.tokens > read:
        side = "first" if predictor.metadata.truncating == "pre" else "last"
        st.caption(
            f"The model reads {predictor.sequence_length} ids: the review's {side} {prediction.tokens - read:,} words "
            "were cut off."
        )

    if result["words"] is None:
        if prediction.tokens:
            st.info("This model file has no step_probability output: export it with --trajectory to see the chart.")
        return
    words, steps = result["words"], result["steps"]
    changes = [after - before for before, after in zip([result["baseline"], *steps[:-1]], steps)]
    st.subheader("Sentiment over time")
    st.plotly_chart(widgets.trajectory_figure(words, steps, changes, predictor.threshold), key="classify_trajectory")
    st.caption(
        "Each word coloured by how much it moved the positive probability: green up, red down, bold by 5 points or "
        "more; words in italics are unknown to the model, which reads them all as one <unk> word."
    )
    st.markdown(widgets.coloured_words(words, changes, predictor.vocabulary))


# A fragment: a click on Classify reruns this part alone, not the model picker, the sidebar or the batch tab.
@st.fragment
def _single_review(predictor, model_path) -> None:
    st.pills(
        "Try an example",
        [title for title, _ in EXAMPLE_REVIEWS],
        key="classify_example",
        on_change=_take_example,
    )
    text = st.text_area("Review", key=REVIEW_KEY, height=160, placeholder="Type or paste a movie review...")
    clicked = st.button("Classify", key="classify_run", type="primary", icon=":material/play_arrow:")
    if clicked or st.session_state.pop(PENDING_KEY, False):
        if not (text or "").strip():
            st.session_state.pop(RESULT_KEY, None)
            st.warning("The review is empty: type or paste some text, or pick an example above.")
            return
        try:
            st.session_state[RESULT_KEY] = _classify(predictor, model_path, text)
        except ValueError as error:
            st.session_state.pop(RESULT_KEY, None)
            st.error(widgets.message(str(error)))
            return
    result = st.session_state.get(RESULT_KEY)
    if result is not None and result["model"] == str(model_path):
        _show_result(result, predictor)
    elif predictor.has_trajectory:
        # An empty chart until the first result: the browser loads its charting code now, not after the click.
        st.subheader("Sentiment over time")
        st.plotly_chart(widgets.trajectory_figure([], [], [], predictor.threshold), key="classify_trajectory")
        st.caption("Classify a review to see its positive probability after every word.")


def _predict_table(predictor, path, text_column: str | None, progress):
    """Every row of the CSV at path as a table (row, label, score, counts, error) and the first rows' text."""
    import numpy as np
    import pandas as pd

    # Typed arrays, not a dict a row: a million rows must stay far below a gigabyte. Labels and errors are stored as
    # codes into a short list (-1 for none); an empty review has no label and no score (NaN).
    rows, codes, scores = array("l"), array("b"), array("d")
    tokens, unknown, truncated, error_codes = array("l"), array("l"), array("b"), array("l")
    messages: list[str] = []
    previews = []
    for item in predictor.predict_csv(path, text_column=text_column, progress=progress):
        prediction = item.prediction
        rows.append(item.row)
        if prediction is None:
            if item.error not in messages:
                messages.append(item.error)
            codes.append(-1)
            scores.append(float("nan"))
            tokens.append(0)
            unknown.append(0)
            truncated.append(0)
            error_codes.append(messages.index(item.error))
        else:
            codes.append(predictor.labels.index(prediction.label))
            scores.append(prediction.score)
            tokens.append(prediction.tokens)
            unknown.append(prediction.unknown_tokens)
            truncated.append(prediction.truncated)
            error_codes.append(-1)
        if len(previews) < TABLE_ROWS:
            previews.append(item.text[:120])
    table = pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "label": pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(predictor.labels)),
            "score": np.asarray(scores, dtype=np.float64),
            "tokens": np.asarray(tokens, dtype=np.int64),
            "unknown_tokens": np.asarray(unknown, dtype=np.int64),
            "truncated": np.asarray(truncated, dtype=bool),
            "error": pd.Categorical.from_codes(np.asarray(error_codes, dtype=np.int64), categories=messages),
        }
    )
    return table, previews


@st.fragment
def _batch(predictor) -> None:
    uploaded = st.file_uploader("A CSV file with a text or review column (UTF-8)", type=["csv"], key="classify_csv")
    column = st.text_input("Text column (blank: the column named text or review)", key="classify_csv_column")
    start = st.button("Classify the CSV", key="classify_csv_run", disabled=uploaded is None, icon=":material/table:")
    if start and uploaded is not None:
        path = resources.save_upload(uploaded.getvalue(), ".csv")
        bar = st.progress(0.0, text="Classifying...")
        try:
            table, previews = _predict_table(
                predictor,
                path,
                column.strip() or None,
                lambda fraction, done: bar.progress(fraction, text=f"{done:,} reviews classified"),
            )
        except ValueError as error:
            st.session_state.pop(BATCH_KEY, None)
            # The stored copy has a hashed name; say the user's own file name instead. The message may quote the
            # file's own column names, so it is shown as plain text, never as markdown.
            st.error(widgets.message(str(error).replace(str(path), uploaded.name)))
            return
        finally:
            bar.empty()
        if table.empty:
            st.session_state.pop(BATCH_KEY, None)
            st.warning(widgets.escape_markdown(f"{uploaded.name} has a header but no reviews."))
            return
        # The download is made once here, not on every rerun: for a million rows it takes seconds.
        csv_bytes = table.to_csv(index=False).encode("utf-8")
        st.session_state[BATCH_KEY] = {"name": uploaded.name, "table": table, "previews": previews, "csv": csv_bytes}
    batch = st.session_state.get(BATCH_KEY)
    if batch is None:
        return
    table = batch["table"]
    counts = table["label"].value_counts()
    summary = ", ".join(f"{counts.get(label, 0):,} {label}" for label in predictor.labels)
    if table["error"].notna().any():
        summary += f", {table['error'].notna().sum():,} empty"
    st.success(widgets.escape_markdown(f"{len(table):,} reviews from {batch['name']}: {summary}"))
    st.dataframe(
        table.head(TABLE_ROWS).assign(text=batch["previews"]),
        key="classify_csv_table",
        hide_index=True,
        column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f")},
    )
    if len(table) > TABLE_ROWS:
        st.caption(f"The first {TABLE_ROWS:,} rows are shown; the download holds all {len(table):,}.")
    st.download_button(
        "Download predictions as CSV",
        data=batch["csv"],
        file_name=f"predictions-{batch['name'].rsplit('.', 1)[0]}.csv",
        mime="text/csv",
        key="classify_csv_download",
        on_click="ignore",
        icon=":material/download:",
    )


st.title("Classify a review")

# Inputs: the model.
model_path, predictor = widgets.predictor_choice_ui("classify_model")
# The model's facts as metrics: besides informing, this has the browser load the metric code before the first click.
accuracy = (predictor.metrics or {}).get("test_accuracy")
facts = st.columns(3)
facts[0].metric("Model test accuracy", f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "unknown")
facts[1].metric("Sequence length", f"{predictor.sequence_length:,}", help="Ids the model reads, the start id included")
facts[2].metric("Vocabulary", f"{predictor.vocabulary.num_words:,}", help="num_words: ids below it are words")

one_review, csv_file = st.tabs(["One review", "A CSV file"])
with one_review:
    _single_review(predictor, model_path)
with csv_file:
    _batch(predictor)
