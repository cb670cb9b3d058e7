"""Shared fixtures: the real archive through IMDB_DATA, and isolated cache and runs folders."""

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
