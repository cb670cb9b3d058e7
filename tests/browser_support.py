"""Helpers for the dashboard tests: made-up reviews, a tiny trained and exported run, a running Streamlit server."""

from __future__ import annotations

import base64
import csv
import random
from collections.abc import Iterator
import contextlib
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.streamlit_session import APP, CHROMIUM, CHROMIUM_ARGS, StreamlitServer, free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of failed browser tests (gitignored)

GOOD_WORDS = "great wonderful superb loved brilliant moving".split()
BAD_WORDS = "awful boring terrible waste dull wooden".split()
FILLER_WORDS = "the movie film was a and it this plot acting story of".split()

_TINY_RUNS: dict[str, Path] = {}


def plotly_values(value) -> list:
    """An array of a chart's JSON spec as a list: plotly writes NumPy arrays base64-encoded ({"dtype", "bdata"})."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def write_reviews_csv(path: Path, reviews: int = 240, seed: int = 7) -> Path:
    """Made-up reviews (never IMDB's) whose label shows in a few words, so a tiny model learns it in a few epochs."""
    generator = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for index in range(reviews):
            label = index % 2
            words = [generator.choice(FILLER_WORDS) for _ in range(generator.randint(5, 30))]
            words += [generator.choice(GOOD_WORDS if label else BAD_WORDS) for _ in range(3)]
            generator.shuffle(words)
            writer.writerow([" ".join(words), label])
    return path


def tiny_exported_run(root: Path) -> Path:
    """A tiny SimpleRNN run under root/runs, trained on made-up reviews and exported with --trajectory (once a process)."""
    key = str(root)
    if key in _TINY_RUNS:
        return _TINY_RUNS[key]
    from core.config import ModelConfig, RecurrentLayerConfig, TrainConfig
    from core.data.load import load_dataset
    from core.export.convert import export_run
    from core.runs.store import RunStore
    from core.training.trainer import train

    root.mkdir(parents=True, exist_ok=True)
    reviews = write_reviews_csv(root / "reviews.csv", reviews=300)
    dataset = load_dataset(reviews, num_words=200, cache_dir=root / "cache")
    model = ModelConfig(
        vocabulary_size=200, sequence_length=60, embedding_dim=8, recurrent_layers=(RecurrentLayerConfig(units=8),)
    )
    settings = TrainConfig(epochs=4, batch_size=32, learning_rate=0.01)
    run = train(model, settings, dataset, store=RunStore(root / "runs"))
    export_run(run.path, trajectory=True)
    _TINY_RUNS[key] = run.path
    return run.path


def dashboard_environment(root: Path, **settings: str) -> dict[str, str]:
    """A test server's environment: its own runs and cache folders under root, 400 made-up reviews, and settings."""
    return {
        "IMDB_RUNS": str(root / "runs"),
        "IMDB_CACHE": str(root / "cache"),
        "IMDB_DATA": str(write_reviews_csv(root / "reviews.csv", reviews=400)),
        **settings,
    }


@contextmanager
def running_server(environment: dict[str, str], log_path: Path) -> Iterator[StreamlitServer]:
    """A StreamlitServer, healthy, stopped on the way out."""
    server = StreamlitServer(environment, log_path)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def screenshot_on_failure(page, name: str):
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def wait_idle(page) -> None:
    """Until Streamlit has no script run in flight for this session."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').textContent.includes('Running')"
    )
    time.sleep(0.3)


def choose(page, label: str, text: str) -> None:
    """Pick the option holding text in the selectbox labelled label, once no script run can redraw it."""
    wait_idle(page)
    page.get_by_role("combobox", name=label, exact=True).click()
    # The option list is virtualized: with many runs the one wanted may not be drawn until the search narrows it.
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=text).first.click()
    wait_idle(page)


def open_page(page: str = "classify", timeout: float = 120):
    """The dashboard in Streamlit's AppTest (no server, no browser), switched to views/<page>.py, run without an
    exception: the pages' own tests start here."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=timeout).run()
    if page != "classify":
        app.switch_page(f"views/{page}.py").run()
    assert not app.exception, app.exception
    return app
