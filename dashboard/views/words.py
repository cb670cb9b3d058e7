"""Words page: what the words learned. Each vocabulary word scored alone by an exported file, where the learner's own
word falls, its nearest words in the learned embedding, and a 2-D map of chosen words (core.scoring.words)."""

import plotly.graph_objects as go
import streamlit as st

from core.scoring import nearest_words, word_map
from dashboard import access, resources, widgets

SHOWN = 15
MAP_WORDS = "good great excellent superb awful terrible boring waste funny scary film movie plot acting actor ending"

st.title("What the words learned")
access.read_only_note_ui()
st.caption(
    "Each word of the vocabulary read alone (the start marker, then the word) through the exported file, and the "
    "vectors the embedding layer learned for them."
)
model_path, predictor = widgets.predictor_choice_ui("words_model")
scores, vectors = resources.learned_words(model_path)
st.caption(
    f"{len(scores.words):,} words scored in one batch. With no word at all the model says {scores.baseline:.1%} "
    "positive: a word's score is how far it moves that."
)

for column, title, positive in zip(st.columns(2), ("Most positive", "Most negative"), (True, False)):
    ranked = scores.most(SHOWN, positive=positive)
    with column:
        st.subheader(title)
        st.dataframe(
            {"word": [word for word, _ in ranked], "positive": [score for _, score in ranked]},
            hide_index=True,
            key="words_positive" if positive else "words_negative",
            height=36 * (SHOWN + 1),
            column_config={"positive": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")},
        )

st.subheader("Your word")
word = st.text_input("A word", value="good", max_chars=40, key="words_word").strip().lower()
found = scores.rank_of(word) if word else None
if word and found is None:
    unknown = f"'{word}' is not in the model's {len(scores.words):,}-word vocabulary: it reads as <unk>."
    st.info(widgets.escape_markdown(unknown))
elif found is not None:
    rank, score = found
    facts = widgets.metric_row()
    facts.metric("Read alone", f"{score:.1%} positive")
    facts.metric("Rank", f"{rank:,} of {len(scores.words):,}", help="1 is the most positive word")
    if vectors is None:
        st.caption("This file keeps its embedding quantized (an int8 copy): its nearest words are in the float file.")
    else:
        near = nearest_words(vectors, scores.words, word, 10)
        st.caption(
            widgets.escape_markdown("Nearest in the learned embedding (cosine): " + ", ".join(
                f"{other} {similarity:.2f}" for other, similarity in near
            ))
        )

if vectors is not None:
    st.subheader("A map of words")
    chosen = st.text_input("Words to place (spaces between)", value=MAP_WORDS, max_chars=400, key="words_map").lower()
    kept, points = word_map(vectors, scores.words, chosen.split()[:60])
    if len(kept) < 3:
        st.info("Give at least three words of the vocabulary to draw the map.")
    else:
        by_word = dict(zip(scores.words, scores.scores.tolist()))
        figure = go.Figure(
            go.Scatter(
                x=points[:, 0],
                y=points[:, 1],
                mode="markers+text",
                text=kept,
                textposition="top center",
                marker={
                    "size": 10,
                    "color": [by_word[word] for word in kept],
                    "colorscale": "RdBu",
                    "cmin": 0,
                    "cmax": 1,
                    "colorbar": {"title": "alone"},
                },
                hovertemplate="%{text}<extra></extra>",
            )
        )
        figure.update_layout(
            height=460,
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
            xaxis_title="first main direction",
            yaxis_title="second main direction",
        )
        st.plotly_chart(figure, key="words_map_chart")
        st.caption(
            "The chosen words' learned vectors on their two main directions (PCA): words the model uses alike sit "
            "together; colour is each word's score alone, red negative, blue positive."
        )
