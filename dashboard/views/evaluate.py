"""Evaluate page: a model's metrics and curves on the test split, a threshold slider, its most confident mistakes."""

import functools
from pathlib import Path

import streamlit as st

from core import paths
from core.scoring import explain, first_words, paragraphs
from core.evaluation import EvaluationCurves, confident_mistakes, evaluation_curves
from core.export import label_names, with_threshold, write_threshold
from dashboard import access, figures, resources, widgets
from dashboard.scored_split import review_text, scored_test_split

THRESHOLD_KEY = "evaluate_threshold"
# The model the slider was last set for: a newly chosen model starts the slider at its file's threshold.
THRESHOLD_MODEL_KEY = "evaluate_threshold_model"
SAVED_KEY = "evaluate_saved"
# The mistakes table lists this many, most confident first.
MISTAKES_SHOWN = 200
FIRST_WORDS = 14


def _save_threshold_ui(model_path: Path, writable: bool, threshold: float) -> None:
    """Store the slider's threshold in the file, or offer a copy that holds it when the file is not the user's."""
    if writable:
        if st.button(
            f"Save threshold {threshold:.3f} into the file",
            key="evaluate_save",
            icon=":material/save:",
            help="Writes the threshold into this run's model.onnx: Classify and python -m core predict then use it.",
        ) and access.require_write("saving a threshold into the model file"):
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
    st.subheader("Most confident mistakes")
    wrong, shown = confident_mistakes(labels, scores, threshold, MISTAKES_SHOWN)
    if not wrong:
        st.success("No test review is misclassified at this threshold.")
        return
    texts = [review_text(source, str(names[index])) if names is not None else None for index in shown]
    names_of = predictor.metadata.labels
    truth = [names_of[int(labels[index])] for index in shown]
    predicted = label_names([scores[index] for index in shown], threshold, names_of)
    st.dataframe(
        {
            "rank": list(range(1, len(shown) + 1)),
            "score": [float(scores[index]) for index in shown],
            "true label": truth,
            "predicted": predicted,
            "first words": [first_words(text, FIRST_WORDS) for text in texts],
        },
        key="evaluate_mistakes_table",
        hide_index=True,
        column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f")},
    )
    every = "it is listed" if wrong == 1 else "all are listed"
    listed = f"the {len(shown):,} most confident are listed" if len(shown) < wrong else every
    st.caption(
        f"{wrong:,} of {len(scores):,} test reviews {'is' if wrong == 1 else 'are'} misclassified at {threshold:.3f}; "
        f"{listed}."
    )
    if all(text is None for text in texts):
        st.info("These reviews come from Keras's imdb.npz, which holds token ids only: there is no text to show.")
        return
    choice = st.selectbox(
        "Open a mistake",
        list(range(len(shown))),
        format_func=lambda rank: f"#{rank + 1}: a {truth[rank]} review scored {float(scores[shown[rank]]):.3f}",
        key="evaluate_mistake",
    )
    facts = widgets.metric_row()
    facts.metric("Positive probability", f"{float(scores[shown[choice]]):.1%}")
    facts.metric("True label", truth[choice])
    facts.metric("Predicted", predicted[choice])
    # Review text is user data: markdown-escaped, its <br /> tags turned into paragraph breaks first.
    with st.container(height=220, key="evaluate_review"):
        st.markdown("\n\n".join(widgets.escape_markdown(part) for part in paragraphs(texts[choice])))
    if not predictor.has_trajectory:
        st.info("This model file has no step_probability output: export it with --trajectory to see the chart.")
        return
    try:
        # One call into core, as on the Classify page: each word's change from the probability before it.
        explanation = explain(predictor, texts[choice])
    except ValueError as error:
        st.warning(widgets.message(str(error)))
        return
    words, steps, changes = explanation.words, explanation.steps, explanation.changes
    st.markdown("**Sentiment over time**")
    st.plotly_chart(figures.trajectory_figure(words, steps, changes, threshold), key="evaluate_trajectory")
    st.markdown(widgets.coloured_words(words, changes, explanation.unknown))


# A fragment: moving the slider reruns this part alone, not the model picker or the scoring.
@st.fragment
def _evaluation(
    predictor, model_path: Path, writable: bool, scored: dict, curves: EvaluationCurves, source: str | None
) -> None:
    threshold = st.slider(
        "Threshold: a review is positive when its score is at least this",
        min_value=0.001,
        max_value=0.999,
        step=0.001,
        format="%.3f",
        key=THRESHOLD_KEY,
    )
    sweep, file_threshold = curves.sweep, predictor.metadata.threshold
    at, file_at = sweep.at(threshold), sweep.at(file_threshold)
    scores_row = widgets.metric_row()
    for name in ("Accuracy", "Precision", "Recall", "F1"):
        value = getattr(at, name.lower())
        change = value - getattr(file_at, name.lower())
        delta = f"{change:+.2%} vs the file's threshold" if abs(change) >= 5e-5 else None
        scores_row.metric(name, f"{value:.2%}", delta=delta, border=True)
    summary = widgets.metric_row()
    auc, ap = curves.roc_auc, curves.average_precision
    summary.metric("ROC AUC", "undefined" if auc is None else f"{auc:.4f}", help="Needs both classes")
    summary.metric(
        "Average precision",
        "undefined" if ap is None else f"{ap:.4f}",
        help="scikit-learn's definition: precision at each threshold weighted by the recall it adds",
    )
    summary.metric("Test reviews", f"{sweep.positives + sweep.negatives:,}")
    summary.metric("Threshold in the file", f"{file_threshold:g}")

    left, middle, right = st.columns(3)
    with left:
        st.plotly_chart(figures.confusion_figure(at, predictor.metadata.labels), key="evaluate_confusion")
    with middle:
        st.plotly_chart(figures.roc_figure(curves, at), key="evaluate_roc")
    with right:
        st.plotly_chart(figures.precision_recall_figure(curves, at), key="evaluate_pr")

    _save_threshold_ui(model_path, writable, threshold)
    _mistakes_ui(predictor, scored, source, threshold)


st.title("Evaluate a model")
access.read_only_note_ui()

# Inputs: the model, chosen as on the Classify page.
model_path, predictor = widgets.predictor_choice_ui("evaluate_model")
source = resources.data_source()
st.caption("On the test split of " + widgets.escape_markdown(resources.describe_source(source)))

# One call into core: every test review scored once per model file and data source, then kept.
try:
    with st.spinner("Scoring the test reviews with onnxruntime (once per model and data)..."):
        scored = scored_test_split(model_path, source)
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
    st.session_state[THRESHOLD_KEY] = min(max(round(predictor.metadata.threshold, 3), 0.001), 0.999)

curves = evaluation_curves(scored["labels"], scored["scores"])
# Exported runs' files are the user's to change; the shipped model, uploads and read-only sessions get a downloadable
# copy instead.
writable = (
    access.can_write()
    and model_path in resources.classify_models().values()
    and Path(model_path).resolve() != paths.DEFAULT_MODEL.resolve()
)
_evaluation(predictor, model_path, writable, scored, curves, source)
