"""The Evaluate page's cached scores: every test review scored once per model file (its threshold aside) and data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from core.evaluation import score_split
from core.data import DataError, split_for_vocabulary
from dashboard import resources


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
    predictor = resources.predictor(model)
    dataset = resources.dataset(source, predictor.metadata.vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, predictor.metadata.vocabulary)
    # Called through the module, so that a test can count the scorings.
    scores = score_split(predictor, split)
    return {"scores": scores, "labels": split.labels, "names": split.names, "exact": exact}


def scored_test_split(model_path: Path, source: str | None) -> dict:
    """Every test review's positive probability ("scores"), "labels" and "names", and whether the review ids are
    "exact" or mapped from Keras's; kept until the model file (its threshold aside) or the data file changes."""
    model = str(Path(model_path).resolve())
    return _scored(model, _scoring_key(model, _stamp(model)), source, _stamp(source))


def review_text(source: str | None, name: str) -> str | None:
    """The raw text of a test review, or None when the source keeps ids only (Keras's imdb.npz)."""
    try:
        review = resources.raw_review(source, "test", name)
    except DataError:
        return None
    return review.text if review is not None else None
