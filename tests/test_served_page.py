"""The static web page served by the dashboard (dashboard/served_page.py): put there from the Export page, linked from
Classify, loaded from the dashboard's own server by Chromium, scoring as onnxruntime does on the same file."""

import http.client
import io
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from streamlit.testing.v1 import AppTest

from core import paths
from core.data.examples import EXAMPLE_REVIEWS
from core.export.model_file import STEPS_SWITCH_NAME, session_options
from core.export.passes.text_front import TEXT_INPUT_NAME
from core.export.web_page import BUNDLE_FILES, write_web_page
from dashboard import served_page
from tests.browser_support import (
    dashboard_environment,
    open_page,
    running_server,
    screenshot_on_failure,
    tiny_exported_run,
)

TOLERANCE = 1e-5  # |onnxruntime-web - onnxruntime|: two builds of the same kernels


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return tiny_exported_run(tmp_path_factory.getbasetemp() / "tiny-served-page-run")


@pytest.fixture()
def dashboard(tiny_run, tmp_path, monkeypatch) -> Path:
    """The tiny run in use and an empty served folder of this test's own; returns that folder."""
    monkeypatch.setenv("IMDB_RUNS", str(tiny_run.parent))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tiny_run / "model.onnx")
    folder = tmp_path / "static" / "page"
    monkeypatch.setattr(served_page, "FOLDER", folder)
    return folder


def _links(app: AppTest) -> dict[str, str]:
    return {element.proto.label: element.proto.url for element in app.get("link_button")}


@pytest.mark.slow
def test_export_serves_the_runs_page_and_classify_links_to_it(dashboard):
    app = open_page("classify")
    assert "Classify in your own browser" not in _links(app), "no page is served yet: no link"
    app = open_page("export")
    assert any("serves no page yet" in caption.value for caption in app.caption)
    app.button(key="export_web_page").click().run()
    assert not app.exception and not app.error, [error.value for error in app.error]
    assert "This run's page is served" in app.success[0].value
    assert sorted(path.name for path in dashboard.iterdir()) == sorted(BUNDLE_FILES)
    assert app.button(key="export_web_page").disabled, "the page served is this run's: nothing to serve again"
    assert _links(app)["Open the web page"] == served_page.URL == "app/static/page/index.html"
    downloads = [button.proto.label for button in app.get("download_button")]
    assert "Download the web page as a zip" in downloads
    with zipfile.ZipFile(io.BytesIO(served_page.page_zip())) as archive:
        assert sorted(archive.namelist()) == sorted(f"web-page/{name}" for name in BUNDLE_FILES)

    app = open_page("classify")
    assert _links(app)["Classify in your own browser"] == served_page.URL
    named = "The page's model: Embedding(200, 8) > SimpleRNN(8) > Dense(1)"
    assert any(named in caption.value.replace("\\", "") for caption in app.caption)  # markdown escaped


@pytest.mark.slow
def test_another_models_page_is_named_and_replaced_only_by_a_click(dashboard, tiny_run):
    write_web_page(paths.PROJECT_ROOT / "models" / "imdb_simplernn.onnx", dashboard)
    before = (dashboard / "model.text.onnx").read_bytes()
    app = open_page("export")
    named = "serves the page of another model (Embedding(10000, 32)"
    assert any(named in caption.value.replace("\\", "") for caption in app.caption)
    assert (dashboard / "model.text.onnx").read_bytes() == before
    assert not app.button(key="export_web_page").disabled
    app.button(key="export_web_page").click().run()
    assert (dashboard / "model.text.onnx").read_bytes() != before


@pytest.mark.slow
def test_a_read_only_visitor_cannot_replace_the_page(dashboard, monkeypatch):
    monkeypatch.setenv("IMDB_READ_ONLY", "1")
    app = open_page("export")
    assert app.button(key="export_web_page").disabled
    assert not dashboard.exists()


@pytest.mark.slow
def test_without_onnxruntime_web_the_page_says_in_one_line_what_to_run(dashboard, tmp_path, monkeypatch):
    from core.export import web_page

    empty = tmp_path / "web"
    empty.mkdir()
    (empty / "package.json").write_text('{"dependencies": {"onnxruntime-web": "1.30.0"}}')
    monkeypatch.setattr(web_page, "WEB_DIR", empty)
    app = open_page("export")
    app.button(key="export_web_page").click().run()
    (error,) = app.error
    assert "make web" in error.value and "\n" not in error.value.strip()
    assert not dashboard.exists() or not any(dashboard.iterdir())


# Paths that try to climb out of dashboard/static/, sent as they are (no client normalizes them).
ESCAPES = (
    "/app/static/../app.py",
    "/app/static/page/../../app.py",
    "/app/static/%2e%2e/app.py",
    "/app/static/page/%2e%2e%2f%2e%2e%2fapp.py",
    "/app/static/..%2f..%2f.streamlit%2fconfig.toml",
    "/app/static//etc/passwd",
)


def _status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _served_scores(model: Path, texts: list[str]) -> list[float]:
    """onnxruntime in Python on the very file the page fetched."""
    session = onnxruntime.InferenceSession(str(model), session_options(), providers=["CPUExecutionProvider"])
    (probability,) = session.run(
        ["probability"], {TEXT_INPUT_NAME: np.array(texts, dtype=object), STEPS_SWITCH_NAME: np.array(False)}
    )
    return probability[:, 0].tolist()


@pytest.mark.browser
def test_the_dashboard_serves_the_page_and_it_classifies_in_the_browser(page, tmp_path):
    # The repository's own served folder, as `make run` fills it: the shipped model's page when none is there yet.
    if not (served_page.FOLDER / "index.html").is_file():
        write_web_page(paths.DEFAULT_MODEL, served_page.FOLDER)
    reviews = [text for _, text in EXAMPLE_REVIEWS]
    types: dict[str, str] = {}  # file name: the content type it came with
    requests: list[str] = []
    errors: list[str] = []

    # On the context, so that the new tab's first requests are seen too (it loads before it can be handed over).
    context = page.context
    context.on("response", lambda answer: types.update({answer.url.rsplit("/", 1)[-1]: answer.headers["content-type"]}))
    context.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    with running_server(dashboard_environment(tmp_path), tmp_path / "server.log") as server, screenshot_on_failure(
        page, "served_page"
    ):
        page.goto(server.url)
        link = page.get_by_role("link", name="Classify in your own browser")
        link.wait_for()
        with context.expect_page() as opened:
            link.click()
        web = opened.value
        web.on("pageerror", lambda error: errors.append(str(error)))
        assert web.url == f"{server.url}/app/static/page/index.html"
        web.wait_for_selector("body[data-ready], body[data-error]")
        assert web.get_attribute("body", "data-error") is None, web.get_attribute("body", "data-error")
        web.fill("#many", "\n".join(" ".join(review.split()) for review in reviews))
        web.click("#classify-many")
        web.wait_for_function("document.querySelectorAll('#scores tbody tr').length === %d" % len(reviews))
        scores = [float(row.get_attribute("data-score")) for row in web.query_selector_all("#scores tbody tr")]
        # Reported, not asserted: the page's own load (model and runtime from the dashboard) and time a review.
        load_ms = float(web.get_attribute("#status", "data-load-ms"))
        review_ms = float(web.get_attribute("#many-status", "data-ms-per-review"))
        print(f"\nweb page from the dashboard: loaded in {load_ms:.0f} ms, {review_ms:.2f} ms a review")
        escapes = {path: _status(server.port, path) for path in ESCAPES}
    expected = _served_scores(served_page.FOLDER / "model.text.onnx", [" ".join(review.split()) for review in reviews])
    assert float(np.max(np.abs(np.array(scores) - expected))) <= TOLERANCE
    # Each file with the type a module script and WebAssembly need (the server says nosniff), none from elsewhere.
    assert types["page.mjs"].startswith(("text/javascript", "application/javascript")), types
    assert types["ort-wasm-simd-threaded.wasm"] == "application/wasm", types
    assert all(request.startswith(server.url) for request in requests), requests
    assert not errors, errors
    # Static serving opens no way out of dashboard/static/: the app's code and its secrets stay unserved.
    assert all(status in (400, 404) for status in escapes.values()), escapes
