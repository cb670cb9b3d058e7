"""The static web page served by the dashboard itself: visitors classify in their own browsers, not on this server.

Streamlit serves the files of dashboard/static/ at app/static/ (`server.enableStaticServing` in .streamlit/config.toml,
each file with its type by extension: .mjs as JavaScript, .wasm as WebAssembly). One page is served at a time, in
dashboard/static/page/: the shipped model's (`make run` writes it when Node.js and npm are there), or a run's, put there
from the Export page. One folder, 16 MiB, whatever visitors do: a shared server's disk stays bounded.

The page itself is core.export.write_web_page's (index.html, its scripts, the text file, onnxruntime-web's wasm build).
"""

from __future__ import annotations

import io
import mimetypes
import zipfile
from pathlib import Path

import streamlit as st

from core.export import read_model_file, write_web_page
from dashboard import access, widgets

FOLDER = Path(__file__).resolve().parent / "static" / "page"
MODEL_FILE = "model.text.onnx"
# Relative to the page the person is on: every page's path is one level below the server's root (or its baseUrlPath).
URL = "app/static/page/index.html"
LAST_PAGE_KEY = "export_web_page_last"

# A module script and WebAssembly load only with their own types (the server sends nosniff). Python's table has both,
# but it reads the machine's too, which can say otherwise (Windows' registry): the dashboard says them itself.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def enabled() -> bool:
    """Whether this server serves dashboard/static/ (not when run with --server.enableStaticServing false)."""
    return bool(st.get_option("server.enableStaticServing"))


def served_model() -> Path | None:
    """The text file the served page classifies with, or None when no page is there (or static serving is off)."""
    model = FOLDER / MODEL_FILE
    if not enabled() or not (FOLDER / "index.html").is_file() or not model.is_file():
        return None
    return model


@st.cache_resource(max_entries=2, show_spinner=False)
def _metadata(path: str, modified_ns: int):
    # Keyed on the file's modification time: a page served again is read again.
    return read_model_file(path)[2]


def served_metadata():
    """The served page's model metadata (config, metrics, created); None when no page is served or it is unreadable."""
    model = served_model()
    if model is None:
        return None
    try:
        return _metadata(str(model), model.stat().st_mtime_ns)
    except (OSError, ValueError):
        return None


def serves(model: Path) -> bool:
    """Whether the served page holds the export model: the same export, told by its creation time and config."""
    served = served_metadata()
    if served is None:
        return False
    try:
        metadata = _metadata(str(model), model.stat().st_mtime_ns)
    except (OSError, ValueError):
        return False
    return served.created == metadata.created and served.config == metadata.config


def serve(model: Path):
    """Put the page of the exported file model (ids or text file) in the served folder; WebPageError (a ValueError)
    with one line when it cannot be built (no onnxruntime-web: `make web`), the folder then as it was."""
    return write_web_page(model, FOLDER)


def page_zip() -> bytes:
    """The served page's folder as a zip, to host anywhere static (built when the person clicks, not on every run)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(FOLDER.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                archive.write(path, f"web-page/{path.name}")
    return buffer.getvalue()


def describe(metadata) -> str:
    """One line naming the served model: its layers, its test accuracy and when it was exported."""
    parts = [widgets.architecture_label(metadata.config.model)]
    accuracy = (metadata.metrics or {}).get("test_accuracy")
    if isinstance(accuracy, (int, float)):
        parts.append(f"test accuracy {accuracy:.1%}")
    if metadata.created:
        parts.append(f"exported {metadata.created[:10]}")
    return widgets.escape_markdown(", ".join(parts))


def link_ui(where: str) -> None:
    """Offer the served page, when there is one: a link that opens it in a new tab, and what it does."""
    metadata = served_metadata()
    if metadata is None:
        return
    row = st.container(horizontal=True, vertical_alignment="center")
    row.link_button(
        "Classify in your own browser",
        URL,
        icon=":material/open_in_new:",
        key=f"{where}_web_page",
        help="A static page: onnxruntime runs in your browser, no review is sent to this server, and once loaded it "
        "works offline.",
    )
    row.caption(f"The page's model: {describe(metadata)}.")


@st.cache_data(max_entries=1, show_spinner=False)
def _cached_zip(model_modified: int) -> bytes:
    # Keyed on the served text file's modification time: one zip kept, made again when another page is served.
    return page_zip()


def export_ui(run, onnx_path) -> None:
    """The static page: which model the dashboard serves, a button that serves this run's, its link and zip."""
    st.subheader("Web page")
    st.caption(
        "A static page that classifies with this model in each visitor's own browser (onnxruntime-web's WebAssembly "
        "build): a shared dashboard sends its visitors there and its own CPU stays free, and the folder works on any "
        "static host. `python -m core export RUN --web DIR` writes the same folder anywhere."
    )
    if not enabled():
        st.info("This server does not serve static files (server.enableStaticServing is off): no page to serve.")
        return
    serving = serves(onnx_path)
    served = served_metadata()
    last = st.session_state.get(LAST_PAGE_KEY)
    if serving and last and last["run"] == run.run_id:
        st.success(f"This run's page is served: {last['size_mib']:.1f} MiB written in {last['seconds']:.1f} s.")
    elif serving:
        st.caption("The dashboard serves this run's page.")
    elif served is not None:
        st.caption(
            f"The dashboard serves the page of another model ({describe(served)}): serving this run's "
            "replaces it, for every visitor."
        )
    else:
        st.caption("The dashboard serves no page yet.")
    row = st.container(horizontal=True, vertical_alignment="center")
    clicked = row.button(
        "Serve this run's web page",
        key="export_web_page",
        icon=":material/public:",
        disabled=serving or not access.can_write(),
        help="Writes the page, this run's text file and onnxruntime-web into dashboard/static/page, in place of the "
        "page served now.",
    )
    if serving:
        row.link_button("Open the web page", URL, icon=":material/open_in_new:", key="export_open_web_page")
        model_file = served_model()
        row.download_button(
            "Download the web page as a zip",
            data=lambda: _cached_zip(model_file.stat().st_mtime_ns),
            file_name=f"{run.run_id}-web-page.zip",
            mime="application/zip",
            key="export_download_web_page",
            on_click="ignore",
            icon=":material/folder_zip:",
            help="index.html, its scripts, model.text.onnx and onnxruntime-web's wasm build, for any static host.",
        )
    if clicked and access.require_write("serving a web page"):
        with st.spinner("Writing the page: the text file, checked, and onnxruntime-web's files..."):
            try:
                written = serve(onnx_path)
            except ValueError as error:
                st.error(widgets.message(str(error)))
                return
        st.session_state[LAST_PAGE_KEY] = {
            "run": run.run_id, "seconds": written.seconds, "size_mib": written.size_bytes / 2**20
        }
        st.rerun()
