"""Memory page: how far back a model remembers. A positive and a negative phrase placed d words before the end of
neutral filler, scored at every distance, one colour per model (core.scoring.memory), so the learner sees a SimpleRNN
forget where an LSTM or a GRU keeps the phrase."""

import streamlit as st

from core import cells, paths
from core.data import EXAMPLE_REVIEWS
from core.model import fall_to_half
from core.scoring import Probe, probe_review
from dashboard import access, figures, resources, widgets

DEFAULT_PROBE = Probe()
GRADIENT_OF = {"state": "the state after each word", "input": "each word's vector"}

st.title("How far back does it remember?")
access.read_only_note_ui()
st.caption(
    "The book ends section 6.2 on the SimpleRNN's weakness: what it read long ago fades from its state. Here a "
    "strongly positive phrase, and then a negative one, is placed d words before the end of neutral filler and the "
    "model scores each review, for every d its window holds."
)


def _words_back(count: int | None, never: str) -> str:
    return never if count is None else f"{count:,} word{'' if count == 1 else 's'}"


def _sources() -> tuple[dict[str, object], list[str]]:
    # Label -> what to probe: a run's exported file when it has one (the same scores as its weights, and faster), else
    # the run's model.keras through the NumPy loop; the shipped model's file last. And the labels chosen at first: the
    # newest run of each architecture's cells (the seed, book-lstm and book-gru side by side), else the shipped model.
    sources, default, cells_seen = {}, [], set()
    for run in resources.list_runs():
        if run.why_unusable("probe") is not None:
            continue
        model = run.config.model
        exported = run.path / "model.onnx"
        layers = " > ".join(f"{cells.cell(layer.cell).label}({layer.units})" for layer in model.recurrent_layers)
        label = f"{run.run_id} · {layers}"
        sources[label] = exported if exported.is_file() else run.path / "model.keras"
        kinds = tuple(layer.cell for layer in model.recurrent_layers)
        if kinds not in cells_seen and len(default) < 3:
            cells_seen.add(kinds)
            default.append(label)
    if paths.DEFAULT_MODEL.is_file():
        sources[resources.DEFAULT_MODEL_LABEL] = paths.DEFAULT_MODEL
    return sources, default or list(sources)[:1]


sources, default = _sources()
if not sources:
    st.info("No model yet: train a run on the Train page (the seed, then book-lstm and book-gru) and come back.")
    st.stop()
chosen = st.multiselect("Models", list(sources), default=default, key="memory_models")
with st.expander("The probe's texts (written for this project)"):
    probe = Probe(
        positive=st.text_input("Positive phrase", DEFAULT_PROBE.positive, max_chars=200, key="memory_positive"),
        negative=st.text_input("Negative phrase", DEFAULT_PROBE.negative, max_chars=200, key="memory_negative"),
        filler=st.text_area("Neutral filler (repeated to fill the window)", DEFAULT_PROBE.filler, max_chars=1_000,
                            key="memory_filler"),
    )
if not chosen:
    st.info("Pick at least one model to probe.")
    st.stop()

curves = {}
for label in chosen:
    try:
        curves[label] = resources.memory_curve(sources[label], probe)
    except ValueError as error:
        st.error(widgets.message(f"{label}: {error}"))
if not curves:
    st.stop()

probe_lines = {label: (curve.distances, curve.positive, curve.negative) for label, curve in curves.items()}
figure = figures.memory_figure(probe_lines)
st.plotly_chart(figure, key="memory_chart")

rows = []
for label, curve in curves.items():
    half = curve.half_distance()
    rows.append({
        "model": label,
        "gap at the end": curve.gap[0],
        "half gone after": _words_back(half, "not within the window"),
        "gap at the farthest": curve.gap[-1],
        "filler alone": widgets.as_percent(curve.filler_only),
    })
st.dataframe(
    rows,
    hide_index=True,
    key="memory_table",
    column_config={
        "gap at the end": st.column_config.NumberColumn(
            format="%.3f", help="positive minus negative probability with the phrases as the last words"
        ),
        "half gone after": st.column_config.TextColumn(
            help="the first distance at which the gap between the two phrases is half what it is at the end"
        ),
        "gap at the farthest": st.column_config.NumberColumn(format="%.3f"),
        "filler alone": widgets.percent_column("the filler with no phrase: where a forgotten phrase leaves the model"),
    },
)
unknown = max(curve.unknown_words for curve in curves.values())
if unknown:
    st.caption(f"{unknown} word{'s' if unknown > 1 else ''} of the texts are outside a vocabulary: read as <unk>.")
st.caption(
    "What to look for: with the phrase as the last words, the two lines stand far apart. Moving the phrase back, a "
    "SimpleRNN's lines close in on the filler alone within tens of words: each step multiplies what it kept by its "
    "recurrent weights and squashes it through tanh, so an early signal fades (the vanishing-gradient problem, seen "
    "from the front). An LSTM or GRU can keep the lines apart much farther: its gates let the state carry a phrase "
    "across steps nearly unchanged."
)

st.header("The loop run backwards")
st.caption(
    "The same question from the other side, for one review: how much the final probability depends on what the loop "
    "held after each word. Backpropagation through time, by hand in NumPy over the model's own weights (checked "
    "against TensorFlow's GradientTape): the size of the gradient on the first layer's state after each word, or on "
    "the word's vector, on a log scale. Training changes the weights along these gradients, so where they vanish the "
    "model cannot learn to use the word. An LSTM keeps its memory in its carry rather than its state: compare cells on "
    "the word vectors."
)
# First a long review (the short examples end before a SimpleRNN's gradient has had room to vanish): the phrase, then
# as much filler as the probe put after it at its farthest, so that no chosen model's window cuts the phrase off.
filler_words = min(int(curve.distances[-1]) for curve in curves.values())
long_review = (f"Long: the positive phrase, then {filler_words} words of filler", probe_review(probe, filler_words))
text = widgets.review_choice_ui([long_review, *EXAMPLE_REVIEWS], key="memory_review")
of = st.radio(
    "Gradient on",
    list(GRADIENT_OF),
    format_func=GRADIENT_OF.get,
    horizontal=True,
    key="memory_gradient_of",
)
if not text.strip():
    st.info("Type a review above to run the loop backwards over it.")
    st.stop()

lines, rows = {}, []
for label in curves:
    try:
        gradients = resources.review_gradients(sources[label], text)
    except ValueError as error:
        st.warning(widgets.message(f"{label}: {error}"))
        continue
    sizes = gradients[of][::-1]  # from the last word back
    lines[label] = (sizes, gradients["tokens"][::-1])
    rows.append({
        "model": label,
        "positive": widgets.as_percent(gradients["probability"]),
        "at the last word": float(sizes[0]),
        "at the first word": float(sizes[-1]),
        "half gone after": _words_back(fall_to_half(sizes), "not within the review"),
    })
if rows:
    st.plotly_chart(figures.gradient_figure(lines), key="memory_gradient_chart")
    st.dataframe(
        rows,
        hide_index=True,
        key="memory_gradient_table",
        column_config={
            "positive": widgets.percent_column("the model's probability for this review"),
            "at the last word": st.column_config.NumberColumn(format="%.2e"),
            "at the first word": st.column_config.NumberColumn(format="%.2e", help="the start marker"),
            "half gone after": st.column_config.TextColumn(
                help="how many words back the gradient is half its size at the last word"
            ),
        },
    )
