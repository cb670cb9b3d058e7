"""Cached loaders shared by the pages: datasets (st.cache_data), run stores, loaded runs and the training slot (st.cache_resource)."""

from __future__ import annotations

import streamlit as st

from core import paths

# The session key holding a data source the user chose on the Data page (an uploaded CSV); absent means IMDB_DATA.
DATA_SOURCE_KEY = "data_source"


def data_source() -> str | None:
    """The review source this session uses: an uploaded CSV if one was chosen, else IMDB_DATA, else None (Keras)."""
    return st.session_state.get(DATA_SOURCE_KEY) or paths.data_source()


def describe_source(source: str | None) -> str:
    """One line for people saying where reviews come from."""
    if source is None:
        return "Keras imdb.npz download (IMDB_DATA is not set)"
    return source
