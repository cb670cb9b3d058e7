"""Which reviews measure an int8 copy, what is said about it, and quantizing with a comparison (core.evaluation.int8_comparison)."""

from __future__ import annotations

import csv

import pytest

from core.data.load import DataError
from core.evaluation.evaluation import MAPPED_NOTE
from core.evaluation.int8_comparison import (
    NO_DATA_CLI,
    NO_DATA_PAGE,
    quantization_summary,
    quantize_and_compare,
    quantized_lines,
    reviews_to_score,
)
from core.paths import DEFAULT_MODEL
from core.export.quantize import float_metadata


@pytest.fixture(scope="module")
def vocabulary():
    return float_metadata(DEFAULT_MODEL).vocabulary


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label", "split"])
        for index in range(40):
            good = index % 2 == 0
            text = "a wonderful moving film, loved it" if good else "a dull awful waste of time"
            writer.writerow([text, int(good), "test" if index % 4 == 0 else "train"])
    return path


def test_no_source_means_no_accuracy_and_says_how_to_get_one(vocabulary):
    assert reviews_to_score(vocabulary, None).missing == NO_DATA_CLI
    assert reviews_to_score(vocabulary, None, no_data=NO_DATA_PAGE).split is None


def test_an_unreadable_source_raises_or_costs_only_the_accuracy(vocabulary, tmp_path):
    missing = str(tmp_path / "gone.csv")
    with pytest.raises(DataError):
        reviews_to_score(vocabulary, missing)
    kept = reviews_to_score(vocabulary, missing, keep_going=True)
    assert kept.split is None and kept.missing.startswith("the test reviews could not be read: ")
    assert "\n" not in kept.missing


def test_a_csv_is_encoded_with_the_models_words_without_a_note(vocabulary, reviews_csv):
    notes = []
    reviews = reviews_to_score(vocabulary, str(reviews_csv), on_note=notes.append)
    assert len(reviews.split) == 10 and reviews.missing is None and MAPPED_NOTE not in notes
    # A page hands its own cached loader.
    loaded = []
    reviews_to_score(vocabulary, str(reviews_csv), load=lambda source, words: loaded.append(words) or _load(source, words))
    assert loaded == [vocabulary.num_words]


def _load(source, words):
    from core.data.load import load_dataset

    return load_dataset(source, num_words=words)


def test_what_was_quantized_reads_as_lines_and_one_sentence():
    entry = {"op": "Gather", "initializer": "embedding", "shape": [10000, 32], "dtype": "uint8"}
    assert quantized_lines([entry], {"RNN": "kept"}) == [
        "quantized: Gather table embedding [10,000 x 32] to uint8",
        "float32: RNN: kept",
    ]
    summary = quantization_summary({"method": "dynamic", "quantized": [entry], "not_quantized": {"RNN": "kept"}})
    assert summary == "Quantized with dynamic: Gather table 10,000 x 32 to uint8. Kept in float32: RNN: kept."


def test_quantize_and_compare_writes_the_copy_and_measures_it(tmp_path, vocabulary, reviews_csv):
    lines, steps = [], []
    reviews = reviews_to_score(vocabulary, str(reviews_csv))
    measured = quantize_and_compare(
        DEFAULT_MODEL, tmp_path / "int8.onnx", reviews, on_line=lines.append, on_step=steps.append
    )
    assert measured.path == tmp_path / "int8.onnx" and measured.path.is_file() and measured.missing is None
    assert lines[0].startswith("quantized: Gather table") and any(line.startswith("float32: ") for line in lines)
    assert steps == ["measuring both files: latency, throughput, 10 test reviews..."]
    assert measured.comparison.test_n == 10 and measured.comparison.int8_bytes < measured.comparison.float_bytes
