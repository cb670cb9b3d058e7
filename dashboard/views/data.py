"""Data page: which reviews are in use and how to change them, their counts and lengths, and one review as the model sees it."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core.data import (
    DataError,
    OOV_TOKEN,
    coverage,
    describe_source,
    label_counts,
    length_summary,
    review_as_read,
    splits_of,
)
from dashboard import access, resources, widgets

# The session key holding why the CSV in the uploader was not put in use.
UPLOAD_ERROR_KEY = "data_upload_error"


def _use_imdb_data() -> None:
    st.session_state.pop(resources.DATA_SOURCE_KEY, None)
    st.session_state.pop(resources.UPLOAD_NAME_KEY, None)


def _marked_words(words: list[str]) -> str:
    # Markers are coloured, words escaped: a review can never inject markdown or HTML.
    marked = []
    for word in words:
        if word == OOV_TOKEN:
            marked.append(":red[\\<unk\\>]")
        elif word.startswith("<") and word.endswith(">"):
            marked.append(f":blue[{widgets.escape_markdown(word)}]")
        else:
            marked.append(widgets.escape_markdown(word))
    return " ".join(marked)


st.title("Data")
access.read_only_note_ui()
experiment = resources.current_experiment()
model = experiment.model

# Where the reviews come from, and how to change that.
source = resources.data_source()
with st.expander("Where the reviews come from", expanded=True):
    try:
        st.text(describe_source(source))
    except DataError:
        # The guard below says what is wrong with it; here the path alone.
        st.text(resources.describe_source(source))
    st.markdown(
        "To change it, start the dashboard with `IMDB_DATA` pointing at Stanford's `aclImdb_v1.tar.gz` or an "
        "extracted `aclImdb` folder (`IMDB_DATA=/path/to/aclImdb_v1.tar.gz make run`), leave `IMDB_DATA` unset for "
        "Keras's `imdb.npz` download, or upload a CSV here for this session: a `text` (or `review`) column, a "
        "`label` (or `sentiment`) column of 0/1 or negative/positive, and optionally a `split` column of train/test "
        "(otherwise 20% of the rows are held out for testing)."
    )
    # An upload in use is stored on the server: read-only mode refuses it (the uploader is off, and checked again).
    upload = st.file_uploader(
        "Upload a CSV of reviews", type=["csv"], key="data_upload", disabled=not access.can_write()
    )
    if upload is None or not access.require_write("storing an uploaded CSV of reviews"):
        st.session_state.pop(UPLOAD_ERROR_KEY, None)
    else:
        data = upload.getvalue()
        saved = resources.save_upload(data, ".csv")
        if st.session_state.get(resources.UPLOAD_HASH_KEY) != saved.name:
            st.session_state[resources.UPLOAD_HASH_KEY] = saved.name
            st.session_state.pop(UPLOAD_ERROR_KEY, None)
            try:
                resources.dataset(str(saved), model.vocabulary_size)
            except DataError as error:
                # The stored copy has a hashed name; say the user's own file name.
                message = str(error).replace(str(saved), upload.name)
                st.session_state[UPLOAD_ERROR_KEY] = f"The upload was not put in use: {message}"
            else:
                st.session_state[resources.DATA_SOURCE_KEY] = str(saved)
                st.session_state[resources.UPLOAD_NAME_KEY] = upload.name
                st.rerun()
    if st.session_state.get(UPLOAD_ERROR_KEY):
        # Kept while the file stays in the uploader. It may quote the file's column names: shown literally.
        st.error(widgets.escape_markdown(st.session_state[UPLOAD_ERROR_KEY]), icon=":material/error:")
    if st.session_state.get(resources.DATA_SOURCE_KEY):
        st.button("Use IMDB_DATA again", key="data_use_environment", on_click=_use_imdb_data)

# Guard: the reviews must load, with a vocabulary this session may ask the server to encode.
vocabulary_size = access.vocabulary_size_for(model.vocabulary_size)
if vocabulary_size != model.vocabulary_size:
    st.info(access.vocabulary_note(model.vocabulary_size, vocabulary_size), icon=":material/lock:")
try:
    dataset = resources.dataset(source, vocabulary_size)
except DataError as error:
    st.error(widgets.message(str(error)), icon=":material/error:")
    st.stop()

st.caption(
    f"Encoded with a vocabulary of {vocabulary_size:,} words and read as the model would "
    f"with sequence length {model.sequence_length:,} (padding {model.padding}, truncating {model.truncating})."
)

# Counts per split and label.
splits = splits_of(dataset)
st.subheader("Reviews")
st.dataframe(pd.DataFrame(label_counts(dataset)), hide_index=True, key="data_counts")

# Lengths against the sequence length.
st.subheader("Lengths")
length_split = st.segmented_control("Split", list(splits), default="train", key="data_length_split") or "train"
lengths = length_summary(splits[length_split], model.sequence_length)
first, second, third = st.columns(3)
first.metric("Median length", f"{lengths.median:,} ids" if lengths.median is not None else "-")
second.metric("Longest", f"{lengths.longest:,} ids" if lengths.longest is not None else "-")
third.metric(
    "Reviews cut", f"{lengths.cut_share:.1%}", help=f"Longer than the sequence length of {model.sequence_length:,}"
)
histogram = px.histogram(x=lengths.lengths, nbins=80, labels={"x": "Length in ids (the start id and one id a word)"})
histogram.add_vline(
    x=model.sequence_length,
    line_dash="dash",
    line_color="firebrick",
    annotation_text=f"sequence length {model.sequence_length:,}: {lengths.cut_share:.1%} cut",
)
histogram.update_layout(yaxis_title="Reviews", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10})
st.plotly_chart(histogram, key="data_length_histogram")

# Vocabulary coverage: the share of words that get their own id rather than <unk>.
st.subheader("Vocabulary coverage")
vocabulary = dataset.vocabulary
coverage_columns = st.columns(len(splits) + 1)
coverage_columns[0].metric("Words with an id", f"{vocabulary.size:,}")
for column, (name, split) in zip(coverage_columns[1:], splits.items()):
    known = coverage(split, vocabulary)
    column.metric(f"Coverage, {name}", f"{known:.1%}", help="Share of the words in this split that are in the vocabulary")

# One review: the raw text beside what the model sees.
st.subheader("Review browser")
split_column, index_column = st.columns([1, 3])
with split_column:
    browse_split = st.selectbox("Split", list(splits), key="data_browse_split")
split = splits[browse_split]
if not len(split):
    st.info("This split has no reviews.")
    st.stop()
with index_column:
    index = st.number_input(
        f"Review (0 to {len(split) - 1:,})", min_value=0, max_value=len(split) - 1, step=1, key="data_review_index"
    )
index = int(index or 0)
read = review_as_read(split, index, model, vocabulary)
name = str(split.names[index]) if split.names is not None else None

raw_column, model_column = st.columns(2)
with raw_column:
    st.markdown(f"**Raw text** ({read.label})")
    if name is None:
        st.caption("This source has no review names, so its raw text cannot be looked up.")
    else:
        try:
            review = resources.raw_review(source, browse_split, name)
        except DataError as error:
            st.info(widgets.message(str(error)), icon=":material/info:")
        else:
            if review is None:
                st.warning(widgets.escape_markdown(f"Review {name} is not in the source any more."))
            else:
                st.caption(widgets.escape_markdown(name + (f", rated {review.rating}/10" if review.rating else "")))
                st.code(review.text, language=None, wrap_lines=True)
with model_column:
    st.markdown("**What the model sees**")
    st.caption(
        f"{read.words:,} words, {read.unknown:,} unknown (`<unk>`), {len(read.cut):,} ids cut, "
        f"{read.pad_added:,} pad ids added ({model.padding})"
    )
    decoded_cut = vocabulary.decode(read.cut)
    decoded_kept = vocabulary.decode(read.kept)
    if decoded_cut and model.truncating == "pre":
        st.caption("Cut off, never seen by the model:")
        st.markdown(f"~~{_marked_words(decoded_cut)}~~")
        st.markdown(":orange[**Truncation: the model starts reading here**]")
    st.markdown(_marked_words(decoded_kept))
    if decoded_cut and model.truncating == "post":
        st.markdown(":orange[**Truncation: the model stops reading here**]")
        st.caption("Cut off, never seen by the model:")
        st.markdown(f"~~{_marked_words(decoded_cut)}~~")
