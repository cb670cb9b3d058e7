"""One definition each: the best epoch (lowest val loss), the peak val accuracy, and where a run's reviews are read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.history import BEST_EPOCH_LABEL, PEAK_ACCURACY_LABEL, EpochScore, best_epoch, peak_val_accuracy
from core.runs.store import RunInfo

HISTORY = {
    "loss": [0.6, 0.4, 0.3, 0.2],
    "accuracy": [0.7, 0.8, 0.9, 0.95],
    "val_loss": [0.50, 0.35, 0.40, 0.45],
    "val_accuracy": [0.75, 0.84, 0.86, 0.85],
}


def test_the_best_epoch_is_the_lowest_val_loss_and_the_peak_is_the_highest_val_accuracy():
    assert best_epoch(HISTORY) == EpochScore(epoch=2, val_loss=0.35, val_accuracy=0.84)
    assert peak_val_accuracy(HISTORY) == EpochScore(epoch=3, val_loss=0.40, val_accuracy=0.86)
    # Two ideas, two words: the labels people read never share a name.
    assert BEST_EPOCH_LABEL == "best epoch (lowest val loss)" and PEAK_ACCURACY_LABEL == "peak val accuracy"


def test_ties_pick_the_first_epoch_as_early_stopping_does():
    tied = {"val_loss": [0.5, 0.3, 0.3, 0.4], "val_accuracy": [0.8, 0.9, 0.7, 0.9]}
    assert best_epoch(tied).epoch == 2
    assert peak_val_accuracy(tied).epoch == 2


@pytest.mark.parametrize("history", [{}, {"loss": [0.5]}, {"val_loss": [], "val_accuracy": []}])
def test_no_validation_means_no_best_epoch_and_no_peak(history):
    assert best_epoch(history) is None and peak_val_accuracy(history) is None


def test_a_missing_or_short_partner_metric_is_none_not_an_error():
    assert best_epoch({"val_loss": [0.4, 0.2]}) == EpochScore(2, 0.2, None)
    assert best_epoch({"val_loss": [0.4, 0.2], "val_accuracy": [0.9]}) == EpochScore(2, 0.2, None)
    assert peak_val_accuracy({"val_accuracy": [0.6, 0.9]}) == EpochScore(2, None, 0.9)


def _run(tmp_path: Path, data: dict) -> RunInfo:
    return RunInfo(
        run_id="20260101-000000-seed-abcdef",
        path=tmp_path,
        status="finished",
        config=None,
        history={},
        metrics=None,
        data=data,
        created=None,
        finished=None,
        error=None,
        broken=None,
    )


def test_a_run_reads_its_recorded_reviews_while_they_exist(tmp_path, monkeypatch):
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text,label\ngood,1\n")
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "elsewhere.tar.gz"))
    run = _run(tmp_path, {"path": str(reviews)})
    assert run.recorded_source == str(reviews)
    assert run.data_source() == str(reviews)
    # An explicit default never overrides a recorded path that still exists.
    assert run.data_source("session.csv") == str(reviews)


def test_a_gone_recorded_path_falls_back_to_the_default_then_imdb_data(tmp_path, monkeypatch):
    run = _run(tmp_path, {"path": str(tmp_path / "moved-away.csv")})
    monkeypatch.setenv("IMDB_DATA", "/data/aclImdb")
    assert run.recorded_source == str(tmp_path / "moved-away.csv")
    assert run.data_source() == "/data/aclImdb"
    assert run.data_source("session.csv") == "session.csv"
    monkeypatch.delenv("IMDB_DATA")
    assert run.data_source() is None  # Keras's download


@pytest.mark.parametrize("data", [{}, {"path": None}, {"path": ""}, {"path": 3}])
def test_a_run_without_a_recorded_path_uses_the_default(tmp_path, monkeypatch, data):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    run = _run(tmp_path, data)
    assert run.recorded_source is None
    assert run.data_source() is None
    assert run.data_source("chosen.csv") == "chosen.csv"
    assert dataclasses.replace(run, data={"path": str(tmp_path)}).data_source("chosen.csv") == str(tmp_path)
