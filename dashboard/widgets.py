"""Widget helpers: each *_ui() function draws widgets with explicit keys and returns plain values or config objects."""

from __future__ import annotations

import streamlit as st


def field_error(message: str | None) -> None:
    """Show a config error right under the field it names; nothing when message is None."""
    if message:
        st.error(message, icon=":material/error:")
