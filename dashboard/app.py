"""The dashboard's entry: page config, shared sidebar, and the router over the pages in views/."""

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on the path, not the project root that holds `core`.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

# An emoji favicon, drawn by the browser: without one the tab takes each page's material icon as its favicon, which
# Streamlit fetches from fonts.gstatic.com (nothing may leave for the internet: offline users, and privacy).
st.set_page_config(page_title="IMDB RNN lab", page_icon="🎬", layout="wide")

_VIEWS = Path(__file__).resolve().parent / "views"
pages = [
    # The default page lives at the root URL: Streamlit ignores a default page's url_path (/predict would not be found).
    st.Page(_VIEWS / "classify.py", title="Classify", icon=":material/rate_review:", default=True),
    st.Page(_VIEWS / "build.py", title="Build", icon=":material/construction:", url_path="build"),
    st.Page(_VIEWS / "data.py", title="Data", icon=":material/dataset:", url_path="data"),
    st.Page(_VIEWS / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(_VIEWS / "runs.py", title="Runs", icon=":material/history:", url_path="runs"),
    st.Page(_VIEWS / "evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
    st.Page(_VIEWS / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(_VIEWS / "export.py", title="Export", icon=":material/download:", url_path="export"),
    st.Page(_VIEWS / "inside.py", title="Inside the RNN", icon=":material/visibility:", url_path="inside"),
    st.Page(_VIEWS / "words.py", title="Words", icon=":material/abc:", url_path="words"),
    st.Page(_VIEWS / "memory.py", title="Memory", icon=":material/timeline:", url_path="memory"),
]

from core import paths  # noqa: E402
# served_page: imported for the file types it gives the static files (.mjs, .wasm) before anyone asks for them.
from dashboard import access, resources, served_page, widgets  # noqa: E402, F401

with st.sidebar:
    st.caption("Embedding -> SimpleRNN -> Dense(sigmoid) on IMDB reviews, from *Deep Learning with Python*, 6.2.")
    # Paths come from the environment or an upload, so they are escaped, never read as markdown.
    st.caption("Reviews: " + widgets.escape_markdown(resources.describe_source(resources.data_source())))
    st.caption("Runs folder: " + widgets.escape_markdown(str(paths.runs_dir())))
# Whether this session may change things, and the admin password that unlocks it (dashboard/access.py).
access.access_sidebar_ui()
access.guard_cache_clearing()
access.guard_uploads()

st.navigation(pages).run()
