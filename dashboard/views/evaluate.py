"""Evaluate page: a model's metrics and curves on the test split, a threshold slider, its most confident mistakes."""

import functools
import hashlib
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import paths
from core.data import DataError, split_for_vocabulary
from core.metrics import ThresholdSweep, average_precision, precision_recall_curve, roc_auc, roc_curve, score_split
from core.model_file import with_threshold, write_threshold
from dashboard import resources, widgets

THRESHOLD_KEY = "evaluate_threshold"
# The model the slider was last set for: a newly chosen model starts the slider at its file's threshold.
THRESHOLD_MODEL_KEY = "evaluate_threshold_model"
SAVED_KEY = "evaluate_saved"
# The mistakes table lists this many, most confident first.
MISTAKES_SHOWN = 200
FIRST_WORDS = 14
# Curves are drawn through at most this many points; 25,000 would make every slider move ship megabytes.
CURVE_POINTS = 1500
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _stamp(path: str | None) -> tuple:
    # A changed data file or model file is scored again instead of served from memory.
    if path is None:
        return ()
    try:
        status = Path(path).stat()
    except OSError:
        return ()
    return (status.st_mtime_ns, status.st_size)


@st.cache_data(max_entries=16, show_spinner=False)
def _scoring_key(model: str, stamp: tuple) -> str:
    """What the scores depend on: the file with its threshold blanked out, so saving a threshold keeps the scores."""
    import onnx

    parsed = onnx.load(model, load_external_data=False)
    for prop in parsed.metadata_props:
        if prop.key == "threshold":
            prop.value = ""
    return hashlib.sha256(parsed.SerializeToString()).hexdigest()


@st.cache_data(max_entries=4, show_spinner=False)
def _scored(model: str, content: str, source: str | None, source_stamp: tuple) -> dict:
    """Every test review's positive probability, label and name; the review ids exact or mapped from Keras's."""
    predictor = resources.predictor(model)
    dataset = resources.dataset(source, predictor.vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, predictor.vocabulary)
    return {"scores": score_split(predictor, split), "labels": split.labels, "names": split.names, "exact": exact}


def _thinned(*arrays: np.ndarray) -> list[np.ndarray]:
    """At most CURVE_POINTS evenly spaced points of a curve, both ends kept."""
    count = len(arrays[0])
    if count <= CURVE_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, count - 1, CURVE_POINTS).round().astype(int))
    return [array[keep] for array in arrays]


def _confusion_figure(metrics, labels: tuple[str, str]) -> go.Figure:
    counts = [[metrics.tn, metrics.fp], [metrics.fn, metrics.tp]]
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=list(labels),
            y=list(labels),
            text=[[f"{value:,}" for value in row] for row in counts],
            texttemplate="%{text}",
            textfont={"size": 18},
            colorscale="Blues",
            showscale=False,
            hovertemplate="actually %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title="Confusion matrix",
        xaxis={"title": "predicted", "tickangle": 0},
        yaxis={"title": "actual", "autorange": "reversed"},
    )
    return figure


def _curve_figure(x, y, point, title: str, x_title: str, y_title: str, diagonal: bool) -> go.Figure:
    figure = go.Figure(go.Scatter(x=x, y=y, mode="lines", name=title, line={"color": "#2563eb"}))
    if diagonal:
        figure.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#9ca3af"})
        )
    figure.add_trace(
        go.Scatter(
            x=[point[0]], y=[point[1]], mode="markers", name="this threshold", marker={"size": 12, "color": "#dc2626"}
        )
    )
    figure.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=title,
        xaxis={"title": x_title, "range": [0, 1]},
        yaxis={"title": y_title, "range": [0, 1.02]},
        showlegend=False,
    )
    return figure


def _review_text(source: str | None, name: str) -> str | None:
    """The raw text of a test review, or None when the source keeps ids only (Keras's imdb.npz)."""
    try:
        review = resources.raw_review(source, "test", name)
    except DataError:
        return None
    return review.text if review is not None else None


def _first_words(text: str | None) -> str:
    if text is None:
        return ""
    words = _BREAK.sub(" ", text).split()
    return " ".join(words[:FIRST_WORDS]) + (" ..." if len(words) > FIRST_WORDS else "")


def _save_threshold_ui(model_path: Path, writable: bool, threshold: float) -> None:
    """Store the slider's threshold in the file, or offer a copy that holds it when the file is not the user's."""
    if writable:
        if st.button(
            f"Save threshold {threshold:.3f} into the file",
            key="evaluate_save",
            icon=":material/save:",
            help="Writes the threshold into this run's model.onnx: Classify and python -m core predict then use it.",
        ):
            try:
                previous = write_threshold(model_path, threshold)
            except (ValueError, OSError) as error:
                st.error(widgets.message(str(error)))
                return
            st.session_state[SAVED_KEY] = (str(model_path), threshold, previous)
            st.rerun(scope="app")
        return
    # The shipped model and uploads are not the user's to change on the server: a copy with the threshold instead.
    st.download_button(
        f"Download a copy with threshold {threshold:.3f}",
        # Made only when clicked: serializing the file at every slider move would slow the page.
        data=functools.partial(with_threshold, model_path, threshold),
        file_name=f"{model_path.stem}-threshold-{threshold:.3f}.onnx",
        mime="application/octet-stream",
        key="evaluate_download",
        on_click="ignore",
        icon=":material/download:",
        help="The same model with this threshold in its metadata; upload it on Classify, or use it with --model.",
    )


def _mistakes_ui(predictor, scored: dict, source: str | None, threshold: float) -> None:
    scores, labels, names = scored["scores"], scored["labels"], scored["names"]
    predicted = scores >= threshold
    wrong = np.flatnonzero(predicted != (labels == 1))
    st.subheader("Most confident mistakes")
    if not len(wrong):
        st.success("No test review is misclassified at this threshold.")
        return
    # How far the score is from the truth: a negative review scored 0.99 is the most confident mistake there is.
    distance = np.abs(scores[wrong].astype(np.float64) - labels[wrong])
    shown = wrong[np.argsort(-distance, kind="stable")][:MISTAKES_SHOWN]
    texts = [_review_text(source, str(names[index])) if names is not None else None for index in shown]
    label_names = predictor.labels
    st.dataframe(
        {
            "rank": list(range(1, len(shown) + 1)),
            "score": [float(scores[index]) for index in shown],
            "true label": [label_names[int(labels[index])] for index in shown],
            "predicted": [label_names[int(predicted[index])] for index in shown],
            "first words": [_first_words(text) for text in texts],
        },
        key="evaluate_mistakes_table",
        hide_index=True,
        column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f")},
    )
    st.caption(
        f"{len(wrong):,} of {len(scores):,} test reviews are misclassified at {threshold:.3f}; "
        f"the {len(shown):,} most confident are listed."
    )
    if all(text is None for text in texts):
        st.info("These reviews come from Keras's imdb.npz, which holds token ids only: there is no text to show.")
        return
    choice = st.selectbox(
        "Open a mistake",
        list(range(len(shown))),
        format_func=lambda rank: (
            f"#{rank + 1}: a {label_names[int(labels[shown[rank]])]} review scored {float(scores[shown[rank]]):.3f}"
        ),
        key="evaluate_mistake",
    )
    index, text = shown[choice], texts[choice]
    columns = st.columns(3)
    columns[0].metric("Positive probability", f"{float(scores[index]):.1%}")
    columns[1].metric("True label", label_names[int(labels[index])])
    columns[2].metric("Predicted", label_names[int(predicted[index])])
    # Review text is user data: markdown-escaped, its <br /> tags turned into paragraph breaks first.
    paragraphs = [widgets.escape_markdown(part.strip()) for part in _BREAK.split(text) if part.strip()]
    with st.container(height=220, key="evaluate_review"):
        st.markdown("\n\n".join(paragraphs))
    if not predictor.has_trajectory:
        st.info("This model file has no step_probability output: export it with --trajectory to see the chart.")
        return
    try:
        words, steps = predictor.trajectory(text)
    except ValueError as error:
        st.warning(widgets.message(str(error)))
        return
    # As on the Classify page: each word's change from the probability before it (the start id alone first).
    baseline = float(predictor.probabilities(predictor.pad([[predictor.vocabulary.start_id]]))[0])
    changes = [float(after - before) for before, after in zip([baseline, *steps[:-1]], steps)]
    st.markdown("**Sentiment over time**")
    st.plotly_chart(
        widgets.trajectory_figure(words, [float(step) for step in steps], changes, threshold),
        key="evaluate_trajectory",
    )
    st.markdown(widgets.coloured_words(words, changes, predictor.vocabulary))


# A fragment: moving the slider reruns this part alone, not the model picker or the scoring.
@st.fragment
def _evaluation(predictor, model_path: Path, writable: bool, scored: dict, curves: dict, source: str | None) -> None:
    threshold = st.slider(
        "Threshold: a review is positive when its score is at least this",
        min_value=0.001,
        max_value=0.999,
        step=0.001,
        format="%.3f",
        key=THRESHOLD_KEY,
    )
    sweep: ThresholdSweep = curves["sweep"]
    at = sweep.at(threshold)
    file_threshold = predictor.threshold
    file_at = sweep.at(file_threshold)
    cards = st.columns(4)
    for column, (name, value, reference) in zip(
        cards,
        [
            ("Accuracy", at.accuracy, file_at.accuracy),
            ("Precision", at.precision, file_at.precision),
            ("Recall", at.recall, file_at.recall),
            ("F1", at.f1, file_at.f1),
        ],
    ):
        delta = value - reference
        column.metric(
            name,
            f"{value:.2%}",
            delta=f"{delta:+.2%} vs the file's threshold" if abs(delta) >= 5e-5 else None,
            border=True,
        )
    summary = st.columns(4)
    summary[0].metric(
        "ROC AUC", "undefined" if curves["auc"] is None else f"{curves['auc']:.4f}", help="Needs both classes"
    )
    summary[1].metric(
        "Average precision",
        "undefined" if curves["ap"] is None else f"{curves['ap']:.4f}",
        help="scikit-learn's definition: precision at each threshold weighted by the recall it adds",
    )
    summary[2].metric("Test reviews", f"{sweep.positives + sweep.negatives:,}")
    summary[3].metric("Threshold in the file", f"{file_threshold:g}")

    left, middle, right = st.columns(3)
    with left:
        st.plotly_chart(_confusion_figure(at, predictor.labels), key="evaluate_confusion")
    with middle:
        fpr, tpr = _thinned(curves["fpr"], curves["tpr"])
        auc = "undefined" if curves["auc"] is None else f"{curves['auc']:.3f}"
        figure = _curve_figure(
            fpr, tpr, (at.false_positive_rate, at.recall), f"ROC curve (AUC {auc})", "false-positive rate",
            "true-positive rate (recall)", diagonal=True,
        )
        st.plotly_chart(figure, key="evaluate_roc")
    with right:
        recall, precision = _thinned(curves["recall"], curves["precision"])
        ap = "undefined" if curves["ap"] is None else f"{curves['ap']:.3f}"
        figure = _curve_figure(
            recall, precision, (at.recall, at.precision), f"Precision-recall (AP {ap})", "recall", "precision",
            diagonal=False,
        )
        st.plotly_chart(figure, key="evaluate_pr")

    _save_threshold_ui(model_path, writable, threshold)
    _mistakes_ui(predictor, scored, source, threshold)


st.title("Evaluate a model")

# Inputs: the model, chosen as on the Classify page.
model_path, predictor = widgets.predictor_choice_ui("evaluate_model")
source = resources.data_source()
st.caption("On the test split of " + widgets.escape_markdown(resources.describe_source(source)))

# One call into core: every test review scored once per model file and data source, then kept.
model_key = str(model_path.resolve())
try:
    with st.spinner("Scoring the test reviews with onnxruntime (once per model and data)..."):
        scored = _scored(model_key, _scoring_key(model_key, _stamp(model_key)), source, _stamp(source))
except ValueError as error:
    st.error(widgets.message(str(error)))
    st.stop()
if not len(scored["labels"]):
    st.warning("The test split holds no reviews: there is nothing to evaluate.")
    st.stop()
if not scored["exact"]:
    st.caption(
        "Keras's imdb.npz has no raw text to encode with the model's vocabulary: its ids were mapped word by word, "
        "so words its own vocabulary lacks count as unknown."
    )
saved = st.session_state.pop(SAVED_KEY, None)
if saved is not None and saved[0] == str(model_path):
    st.success(f"Threshold {saved[1]:.3f} saved into the file (it was {saved[2]:g}): Classify and the CLI now use it.")

# A newly chosen model starts the slider at the threshold its file holds.
if st.session_state.get(THRESHOLD_MODEL_KEY) != str(model_path):
    st.session_state[THRESHOLD_MODEL_KEY] = str(model_path)
    st.session_state[THRESHOLD_KEY] = min(max(round(predictor.threshold, 3), 0.001), 0.999)

labels, scores = scored["labels"], scored["scores"]
fpr, tpr, _ = roc_curve(labels, scores)
precision, recall, _ = precision_recall_curve(labels, scores)
curves = {
    "sweep": ThresholdSweep.build(labels, scores),
    "fpr": fpr,
    "tpr": tpr,
    "precision": precision,
    "recall": recall,
    "auc": roc_auc(labels, scores),
    "ap": average_precision(labels, scores),
}
# Exported runs' files are the user's to change; the shipped model and uploads get a downloadable copy instead.
writable = (
    model_path in resources.classify_models().values() and Path(model_path).resolve() != paths.DEFAULT_MODEL.resolve()
)
_evaluation(predictor, model_path, writable, scored, curves, source)
