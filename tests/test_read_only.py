"""Read-only mode through the pages (AppTest): a visitor classifies and looks, and every write is refused on the server,
even when a click reaches a button the page drew disabled; the admin password gives the writes back."""

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from streamlit.testing.v1 import AppTest

from tests.browser_support import open_page

from browser_support import tiny_exported_run
from dashboard import access
from dashboard.widgets import UPLOAD_MODEL_OPTION

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PASSWORD = "correct horse battery staple"  # nosec B105: a test's own password
CRAFTED_NAMES = ["../../etc/passwd.csv", "/etc/shadow.csv", "x" * 300 + ".csv", "..\\..\\boot.csv", "<b>.csv"]

UNEXPORTED = "20000101-000000-unexported-copy"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """A runs folder with one tiny trained and exported run, and a copy of it never exported."""
    run = tiny_exported_run(tmp_path_factory.getbasetemp() / "read-only-run")
    runs = tmp_path_factory.mktemp("read-only") / "runs"
    shutil.copy(run.parent.parent / "reviews.csv", runs.parent / "reviews.csv")
    shutil.copytree(run, runs / run.name)
    shutil.copytree(run, runs / UNEXPORTED, ignore=shutil.ignore_patterns("model.onnx", "*.int8.onnx"))
    return runs


@pytest.fixture
def read_only(tiny_runs, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IMDB_READ_ONLY", "1")
    monkeypatch.delenv("IMDB_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("IMDB_RUNS", str(tiny_runs))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMDB_DATA", str(tiny_runs.parent / "reviews.csv"))
    return tiny_runs


def _files(folder: Path) -> dict[str, str]:
    """Every file under folder with its SHA-256: what a refused write must leave as it was."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _refusing_handlers(monkeypatch) -> list[str]:
    """Writes allowed for drawing, but every handler's require_write says no and records the action it guards.

    AppTest cannot click a disabled button (and Streamlit drops a click on one), so this is how a test reaches each
    handler's own server-side check: the actions recorded prove the check runs before the write, and the unchanged
    folders prove nothing is written when it refuses."""
    monkeypatch.setenv("IMDB_READ_ONLY", "0")
    asked: list[str] = []

    def refuse(action: str) -> bool:
        asked.append(action)
        return False

    monkeypatch.setattr(access, "require_write", refuse)
    return asked


def _warnings(app: AppTest) -> str:
    return " ".join(warning.value for warning in app.warning)


def _infos(app: AppTest) -> str:
    return " ".join(info.value for info in app.info)


@pytest.mark.parametrize(
    "page", ["classify", "build", "data", "evaluate", "compare", "export", "inside", "words", "memory"]
)
def test_each_page_says_what_read_only_mode_allows(read_only, page):
    app = open_page(page)
    assert "Read-only mode: you can classify reviews" in _infos(app)
    assert any("Read-only" in str(markdown.value) for markdown in app.sidebar.markdown) or any(
        "Read-only" in element.value for element in [*app.sidebar.info, *app.sidebar.warning, *app.sidebar.caption]
    )


def test_a_visitor_classifies_one_review_and_cannot_upload_a_model(read_only):
    app = open_page("classify")
    assert UPLOAD_MODEL_OPTION not in app.selectbox(key="classify_model").options
    app.text_area(key="classify_review").set_value("A wonderful, moving film. Loved it.")  # a form: sent with the click
    app.button(key="classify_run").click().run()
    assert not app.exception
    labels = [metric.value for metric in app.metric if metric.label == "Label"]
    assert labels and labels[0] in ("positive", "negative")


@pytest.mark.parametrize("name", CRAFTED_NAMES)
def test_a_csv_batch_is_capped_and_stored_nowhere_whatever_its_name(read_only, tmp_path, monkeypatch, name):
    monkeypatch.setattr(access, "BATCH_ROW_CAP_READ_ONLY", 5)
    before = _files(read_only)
    app = open_page("classify")
    rows = "".join(f"review {index}: a great film\n" for index in range(12))
    app.file_uploader(key="classify_csv").set_value((name, f"text\n{rows}".encode(), "text/csv")).run()
    app.button(key="classify_csv_run").click().run()
    assert not app.exception and not app.error
    assert len(app.dataframe[0].value) == 5
    assert "Read-only mode classifies the first 5 rows" in _warnings(app)
    cache = tmp_path / "cache"
    assert not (cache / "uploads").exists() or not any((cache / "uploads").iterdir()), "nothing kept on the server"
    assert _files(read_only) == before


def test_a_file_name_with_a_nul_byte_is_refused_before_the_page_sees_it(read_only, tmp_path):
    from starlette.exceptions import HTTPException

    app = open_page("classify")
    # The upload endpoint refuses the name (dashboard/access.py guard_uploads), so the file never reaches the widget,
    # where Streamlit's uploader would raise on every rerun; nothing is stored. (AppTest sends a widget's file again
    # at every run; a browser sends it once: test_hostile_visitors.py checks the session goes on, on a real server.)
    with pytest.raises(HTTPException) as refused:
        app.file_uploader(key="classify_csv").set_value(("a\x00b.csv", b"text\ngreat film\n", "text/csv")).run()
    assert refused.value.status_code == 413 and "control character" in refused.value.detail
    assert not (tmp_path / "cache" / "uploads").exists()


def test_data_refuses_to_store_an_upload(read_only, tmp_path, monkeypatch):
    assert open_page("data").file_uploader(key="data_upload").disabled
    asked = _refusing_handlers(monkeypatch)
    app = open_page("data")
    upload = ("../../reviews.csv", b"text,label\ngreat film,1\nawful film,0\n", "text/csv")
    app.file_uploader(key="data_upload").set_value(upload).run()
    assert not app.exception
    assert asked == ["storing an uploaded CSV of reviews"]
    assert "data_source" not in app.session_state
    assert not (tmp_path / "cache" / "uploads").exists()


def _choose_run(app: AppTest, key: str, run_id: str) -> None:
    picker = app.selectbox(key=key)
    picker.set_value(next(option for option in picker.options if run_id in option)).run()


def test_export_and_quantize_are_refused_on_the_server(read_only, monkeypatch):
    before = _files(read_only)
    run_id = next(path.name for path in read_only.iterdir() if path.name != UNEXPORTED)
    shown = open_page("export")
    _choose_run(shown, "export_run", run_id)
    assert shown.button(key="export_start").disabled and shown.button(key="export_quantize").disabled
    asked = _refusing_handlers(monkeypatch)
    app = open_page("export")
    _choose_run(app, "export_run", run_id)
    app.button(key="export_start").click().run()
    app.button(key="export_quantize").click().run()
    assert not app.exception
    assert asked == ["exporting a run to ONNX", "quantizing a model to int8"]
    assert _files(read_only) == before


def test_compare_refuses_to_export_the_runs_it_lacks(read_only, monkeypatch):
    before = _files(read_only)
    every_run = sorted(path.name for path in read_only.iterdir())
    shown = open_page("compare")
    shown.multiselect(key="compare_runs").set_value(every_run).run()
    assert shown.button(key="compare_export").disabled
    asked = _refusing_handlers(monkeypatch)
    app = open_page("compare")
    app.multiselect(key="compare_runs").set_value(every_run).run()
    app.button(key="compare_export").click().run()
    assert asked == ["exporting runs to ONNX"]
    assert _files(read_only) == before


def _choose_exported_model(app: AppTest) -> None:
    picker = app.selectbox(key="evaluate_model")
    picker.set_value(next(option for option in picker.options if option != "Shipped default model")).run()
    assert not app.exception


def test_evaluate_offers_a_copy_never_a_save(read_only, monkeypatch):
    before = _files(read_only)
    app = open_page("evaluate")
    _choose_exported_model(app)
    assert not [button for button in app.button if button.key == "evaluate_save"]
    assert [button for button in app.get("download_button") if button.proto.id.endswith("evaluate_download")]
    asked = _refusing_handlers(monkeypatch)
    app = open_page("evaluate")
    _choose_exported_model(app)
    app.button(key="evaluate_save").click().run()
    assert asked == ["saving a threshold into the model file"]
    assert _files(read_only) == before


def test_the_password_gives_this_session_the_writes_back(read_only, monkeypatch):
    monkeypatch.setenv("IMDB_ADMIN_PASSWORD", PASSWORD)
    app = open_page("export")
    assert app.button(key="export_start").disabled
    app.sidebar.text_input(key="admin_password").set_value("wrong guess").run()
    assert [error.value for error in app.sidebar.error] == ["Wrong password."]
    assert app.button(key="export_start").disabled
    app.sidebar.text_input(key="admin_password").set_value(PASSWORD).run()
    assert not app.button(key="export_start").disabled
    assert not _infos(app).count("Read-only mode: you can classify reviews")
    assert all(PASSWORD not in str(app.session_state[key]) for key in app.session_state)


@pytest.mark.parametrize("name", CRAFTED_NAMES)
def test_an_upload_name_never_becomes_a_path_on_any_page(tiny_runs, tmp_path, monkeypatch, name):
    # Writes allowed (one user on their machine): uploads are stored, under their content hash only.
    monkeypatch.setenv("IMDB_READ_ONLY", "0")
    monkeypatch.setenv("IMDB_RUNS", str(tiny_runs))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMDB_DATA", str(tiny_runs.parent / "reviews.csv"))
    before = _files(tiny_runs.parent)
    reviews = (tiny_runs.parent / "reviews.csv").read_bytes()
    model = next(tiny_runs.glob("*/model.onnx")).read_bytes()

    data = open_page("data")
    data.file_uploader(key="data_upload").set_value((name, reviews, "text/csv")).run()
    assert not data.exception and data.session_state["data_source_name"] == name
    classify = open_page("classify")
    classify.selectbox(key="classify_model").set_value(UPLOAD_MODEL_OPTION).run()
    onnx_name = name.removesuffix(".csv") + ".onnx"  # Streamlit's uploader checks the extension itself
    classify.file_uploader(key="classify_model_upload").set_value((onnx_name, model, "application/octet-stream")).run()
    assert not classify.exception and not classify.error
    build = open_page("build")
    json_name = name.removesuffix(".csv") + ".json"
    build.file_uploader(key="build_config_file").set_value((json_name, b'{"model": {}}', "application/json")).run()
    assert not build.exception

    stored = sorted(path.name for path in (tmp_path / "cache" / "uploads").iterdir())
    assert len(stored) == 2 and all(path.split(".")[0].isalnum() for path in stored), stored
    # Besides the uploads, only the tokenized-data cache (named by its own hash) was written, inside the cache folder.
    others = [path for path in tmp_path.rglob("*") if path.is_file() and "uploads" not in path.parts]
    assert all(path.parent == tmp_path / "cache" and re.fullmatch(r"[a-z]+-[0-9a-f]+\.npz", path.name) for path in others)
    assert _files(tiny_runs.parent) == before


def _run_action(action: str, run_id: str) -> None:
    # An AppTest script: one run action called with an id as if it came from the browser, then its message.
    from dashboard import run_actions

    getattr(run_actions, action)(run_id)
    run_actions.message_ui()


@pytest.mark.parametrize("action", ["delete", "resume"])
@pytest.mark.parametrize("crafted", ["../runs", "/etc", "a\x00b", "x" * 10_000, "..", ".", ""])
def test_a_crafted_run_id_is_never_deleted_or_resumed(tiny_runs, monkeypatch, action, crafted):
    monkeypatch.setenv("IMDB_READ_ONLY", "0")
    monkeypatch.setenv("IMDB_RUNS", str(tiny_runs))
    before = _files(tiny_runs.parent)
    app = AppTest.from_function(_run_action, args=(action, crafted), default_timeout=60).run()
    assert not app.exception
    assert [error.value for error in app.error] == ["That run is no longer in the runs folder: pick another."]
    assert _files(tiny_runs.parent) == before


def test_start_and_stop_are_refused_on_the_server(read_only, monkeypatch):
    from dashboard import run_actions

    before = _files(read_only)
    assert open_page("train").button(key="train_start").disabled
    asked = _refusing_handlers(monkeypatch)
    app = open_page("train")
    app.button(key="train_start").click().run()
    assert not app.exception and asked == ["starting a training"]
    # Stop is a callback: it checks can_write itself, and a read-only session's click sends no signal.
    monkeypatch.setenv("IMDB_READ_ONLY", "1")
    signals = []
    monkeypatch.setattr(run_actions, "stop_training", lambda *args: signals.append(args))
    stopped = AppTest.from_function(_run_action, args=("stop", None), default_timeout=60).run()
    assert [error.value for error in stopped.error] == [access.refusal("stopping a training")]
    assert signals == [] and _files(read_only) == before
