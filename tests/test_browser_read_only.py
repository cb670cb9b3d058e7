"""A real browser against a server started read-only with an admin password: a stranger classifies and looks, every
write is off; a wrong password gets one generic line and leaves no trace in the page; the right one gives the writes
back to that session only."""

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_support import dashboard_environment, running_server, tiny_exported_run
# browser and page are test_browser's fixtures: one Chromium a module, one fresh context a test.
from tests.browser_support import choose, screenshot_on_failure, wait_idle

pytestmark = pytest.mark.browser

PASSWORD = "a long passphrase for the tests"  # nosec B105: the test server's own password
WRONG = "guessed-passphrase-1234"  # nosec B105
SPARE_RUN = "20000101-000003-simplernn-spare"
READ_ONLY_NOTE = "Read-only mode: you can classify reviews"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard in read-only mode with a password, over one tiny exported run and a spare copy to delete."""
    tiny = tiny_exported_run(tmp_path_factory.getbasetemp() / "tiny-dashboard-run")
    root = tmp_path_factory.mktemp("browser-read-only")
    shutil.copytree(tiny, root / "runs" / tiny.name)
    shutil.copytree(tiny, root / "runs" / SPARE_RUN)
    environment = dashboard_environment(root, IMDB_READ_ONLY="1", IMDB_ADMIN_PASSWORD=PASSWORD)
    with running_server(environment, root / "streamlit.log") as server:
        yield server


def _visit(page, server, view: str) -> None:
    page.goto(f"{server.url}/{view}")
    page.get_by_text(READ_ONLY_NOTE).first.wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stException").count() == 0


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def test_a_stranger_classifies_and_looks_but_every_write_is_off(server, page):
    with screenshot_on_failure(page, "read-only-stranger"):
        _visit(page, server, "")
        page.get_by_role("textbox", name="Review", exact=True).fill("A wonderful, moving film: I loved every minute.")
        _button(page, "Classify").click()
        page.get_by_test_id("stMetric").filter(has_text="Positive probability").wait_for()
        page.get_by_role("combobox", name="Model", exact=True).click()
        options = page.get_by_role("option").all_inner_texts()
        page.keyboard.press("Escape")
        assert options and not any("Upload" in option for option in options)

        _visit(page, server, "export")
        assert _button(page, "Export to ONNX").is_disabled()
        assert _button(page, "Quantize to int8").is_disabled()
        page.get_by_role("button", name="Download the run as a zip").wait_for()

        _visit(page, server, "data")
        assert page.get_by_test_id("stFileUploaderDropzoneInput").is_disabled()

        _visit(page, server, "evaluate")
        page.get_by_text("Download a copy with threshold").first.wait_for(timeout=120_000)
        assert page.get_by_role("button", name="Save threshold").count() == 0

        for view in ("train", "runs"):
            _visit(page, server, view)
        assert _button(page, "Delete").first.is_disabled()
    assert (Path(server.environment["IMDB_RUNS"]) / SPARE_RUN).is_dir()


def test_a_wrong_password_leaves_no_trace_and_the_right_one_unlocks_this_session_only(server, page, browser):
    with screenshot_on_failure(page, "read-only-password"):
        _visit(page, server, "export")
        box = page.get_by_label("Admin password")
        box.fill(WRONG)
        box.press("Enter")
        page.get_by_text("Wrong password.").wait_for()
        wait_idle(page)
        source = page.content()
        assert WRONG not in source and PASSWORD not in source
        assert box.input_value() == ""
        assert _button(page, "Export to ONNX").is_disabled()

        box.fill(PASSWORD)
        box.press("Enter")
        page.get_by_text("This session can change things.").wait_for()
        wait_idle(page)
        assert PASSWORD not in page.content()
        expect(_button(page, "Export to ONNX")).to_be_enabled(timeout=30_000)

        # Another browser session is still read-only.
        other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        try:
            _visit(other, server, "export")
            assert _button(other, "Export to ONNX").is_disabled()
        finally:
            other.context.close()

        page.get_by_role("link", name="Train").click()
        _button(page, "Start training").wait_for()
        wait_idle(page)
        expect(_button(page, "Start training")).to_be_enabled(timeout=30_000)

        # The unlocked session (the same one: a click in the app, not a reload, which starts a new session) deletes
        # the spare run. An unlock ends with its connection: if the browser had to reconnect (a loaded machine can
        # miss a heartbeat), the session is a new, locked one, and the password is asked again.
        page.get_by_role("link", name="Runs").click()
        page.get_by_role("heading", name="Delete a run").wait_for()
        wait_idle(page)
        if page.get_by_label("Admin password").is_visible():
            page.get_by_label("Admin password").fill(PASSWORD)
            page.get_by_label("Admin password").press("Enter")
            page.get_by_text("This session can change things.").wait_for()
            wait_idle(page)
        choose(page, "Run to delete", SPARE_RUN)
        page.get_by_text("Yes, delete it for good").click()
        # The tick reruns the page, which may not have begun when the click returns: wait for the button it enables.
        delete = _button(page, "Delete").first
        expect(delete).to_be_enabled(timeout=30_000)
        delete.click()
        page.get_by_text(f"Deleted run {SPARE_RUN}.").wait_for()
    runs = Path(server.environment["IMDB_RUNS"])
    assert not (runs / SPARE_RUN).exists()
    assert [path.name for path in runs.iterdir() if (path / "run.json").is_file()] != []
    assert json.loads(next(runs.glob("*/run.json")).read_text())["status"] == "finished"
