"""Shared fixtures: the real archive through IMDB_DATA, isolated runs folders, Chromium and a page in it."""

import os
from pathlib import Path

import pytest

# TensorFlow's start-up chatter hides test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def imdb_archive() -> Path:
    """The real IMDB archive or folder named by IMDB_DATA; CI sets it, so a missing one is a failure, not a skip."""
    value = os.environ.get("IMDB_DATA", "").strip()
    if not value:
        pytest.fail("IMDB_DATA is not set: point it at aclImdb_v1_labeled.tar.gz (.ci/run does)")
    path = Path(value)
    if not path.exists():
        pytest.fail(f"IMDB_DATA={value} does not exist")
    return path


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path_factory, monkeypatch):
    """Each test writes runs into its own folder unless it sets IMDB_RUNS itself."""
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by playwright, one a test module."""
    from playwright.sync_api import sync_playwright

    from bench.streamlit_session import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    """A fresh browser session (1,400 x 1,000 px); wrap steps in browser_support.screenshot_on_failure."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    context.close()


# The longest test files (servers, browsers, training processes), measured with --durations: make test runs the suite
# in two processes a file at a time, in collection order (--no-loadscope-reorder), and a long file left for the end
# would run alone while the other process has nothing to do.
LONGEST_FIRST = (
    "test_browser.py",
    "test_dashboard_pages.py",
    "test_training_process.py",
    "test_distribute.py",
    "test_ray_scoring.py",
    "test_browser_read_only.py",
    "test_trainer.py",
    "test_resuming.py",
    "test_odd_inputs_and_failures.py",
    "test_compare.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order
