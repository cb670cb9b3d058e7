"""IMDB reviews from Stanford's layout (folder or .tar.gz), Keras's imdb.npz, or a CSV, as token ids; cached on disk."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import paths
from core.data.cache import CACHE_FORMAT, cache_file, read_cache, write_cache
from core.data.review_csv import csv_reviews
from core.data.reviews import LABELS, SHUFFLE_SEED, SOURCE_HELP, SPLITS, DataError, Progress, Review
from core.data.splits import Dataset, Split
from core.data.stanford import folder_fingerprint, reviews_by_name, stanford_reviews, stanford_root
from core.data.text_batch import EncodedBatch, build_vocabulary, encode_batch, encode_tokens, tokenize_batch
from core.data.text import INDEX_FROM, NORMALIZATION, Vocabulary, vocabulary_map

__all__ = [
    "LABELS",
    "SPLITS",
    "DataError",
    "Dataset",
    "Review",
    "Split",
    "describe_source",
    "load_dataset",
    "read_reviews",
    "split_for_vocabulary",
]

KERAS_OFFLINE_MESSAGE = (
    "cannot download Keras's imdb.npz (no network?): point IMDB_DATA (or --data on the command line) at Stanford's "
    "aclImdb_v1.tar.gz, an extracted aclImdb folder or a CSV; or put imdb.npz and imdb_word_index.json in "
    "$KERAS_HOME/datasets (default ~/.keras/datasets)"
)


@dataclass(frozen=True)
class _Source:
    """Where reviews come from, resolved but not read."""

    kind: str  # "stanford", "keras" or "csv"
    layout: str  # "folder", "archive", "csv" or "keras"
    path: Path | None  # the aclImdb folder, the archive or the CSV; None for Keras

    @property
    def description(self) -> str:
        if self.layout == "folder":
            return f"Stanford folder {self.path}"
        if self.layout == "archive":
            return f"Stanford archive {self.path}"
        if self.layout == "csv":
            return f"CSV {self.path}"
        return "Keras imdb.npz"


class _Reporter:
    """Forwards progress to a caller's callable, at most about a hundred times per load."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.last = (-1.0, "")

    def __call__(self, fraction: float, message: str) -> None:
        if self.progress is None:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        if message != self.last[1] or fraction - self.last[0] >= 0.01 or fraction == 1.0:
            self.last = (fraction, message)
            self.progress(fraction, message)


def _resolve(source: str | Path | None) -> _Source:
    if source is None:
        source = paths.data_source()
    if source is None:
        return _Source("keras", "keras", None)
    text = str(source).strip()
    if not text:
        raise DataError(f"the data path is empty: {SOURCE_HELP}")
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist: {SOURCE_HELP}")
    path = path.resolve()
    if path.is_dir():
        return _Source("stanford", "folder", stanford_root(path))
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _Source("stanford", "archive", path)
    if name.endswith(".csv"):
        return _Source("csv", "csv", path)
    if name.endswith(".npz"):
        # Keras's imdb.npz holds pickled arrays; only Keras's own cached copy is read, never a path a user names.
        raise DataError(
            f"{path} is an .npz file: to use Keras's imdb.npz put it and imdb_word_index.json in ~/.keras/datasets/ "
            "and leave --data and IMDB_DATA unset"
        )
    if tarfile.is_tarfile(path):
        return _Source("stanford", "archive", path)
    raise DataError(f"{path} is not a known data layout: {SOURCE_HELP}")


def describe_source(source: str | Path | None = None) -> str:
    """One line for people saying what load_dataset(source) would read, without reading it."""
    resolved = _resolve(source)
    if resolved.layout == "keras":
        return "Keras imdb.npz from ~/.keras/datasets/ (downloaded when missing; IMDB_DATA is not set)"
    if resolved.layout == "folder":
        return f"{resolved.description} (aclImdb layout, train and test)"
    size = resolved.path.stat().st_size / 1e6
    if resolved.layout == "archive":
        return f"{resolved.description} ({size:,.1f} MB, read without extracting)"
    return f"{resolved.description} ({size:,.1f} MB)"


def _read_source(source: _Source, splits: Sequence[str], report: _Reporter, text_column: str | None) -> dict:
    """Every review of the splits, train in its fixed shuffle and test in canonical order."""
    if source.kind == "csv":
        report(0.0, f"reading {source.path.name}")
        by_split = csv_reviews(source.path, text_column)
    else:
        # Reading is the first 40% of a load; tokenizing and encoding the rest.
        by_split = stanford_reviews(
            source.layout, source.path, splits, lambda fraction, message: report(0.4 * fraction, message)
        )
    if "train" in by_split:
        # The fixed shuffle of the training split, so that validation_split's tail holds both labels.
        train = by_split["train"]
        by_split["train"] = [train[index] for index in np.random.RandomState(SHUFFLE_SEED).permutation(len(train))]
    return {split: by_split[split] for split in splits}


# ---- the cache key ---------------------------------------------------------------------------------------------------


def _keras_file() -> Path:
    home = os.environ.get("KERAS_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "imdb.npz"


def _fingerprint(source: _Source) -> dict:
    """What changes when the data changes, cheaply: size and mtime; for a folder, its files' count, sizes, times."""
    if source.layout == "keras":
        file = _keras_file()
        if not file.is_file():
            return {}
        stat = file.stat()
        return {"path": str(file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if source.layout == "folder":
        return folder_fingerprint(source.path)
    stat = source.path.stat()
    return {"path": str(source.path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cache_key(source: _Source, num_words: int, text_column: str | None) -> str:
    key = {
        "format": CACHE_FORMAT,
        "kind": source.kind,
        "layout": source.layout,
        "data": _fingerprint(source),
        "num_words": num_words,
        "normalization": NORMALIZATION,
        "text_column": text_column if source.kind == "csv" else None,
    }
    return json.dumps(key, sort_keys=True)


# ---- building --------------------------------------------------------------------------------------------------------


def _encode(reviews: dict[str, list[Review]], num_words: int, report: _Reporter) -> tuple[Vocabulary, dict]:
    """The vocabulary from the training split only; both splits encoded by it the way prediction encodes."""
    train, test = reviews["train"], reviews["test"]
    report(0.4, "tokenizing the training reviews")
    train_words = tokenize_batch([review.text for review in train])
    report(0.6, "building the vocabulary")
    vocabulary = build_vocabulary(train_words, num_words)
    # The training words are looked up, not tokenized again.
    train_ids = encode_tokens(train_words, vocabulary)
    del train_words
    report(0.7, "encoding the test reviews")
    test_ids = encode_batch([review.text for review in test], vocabulary)
    splits = {name: _split(ids, reviews[name]) for name, ids in (("train", train_ids), ("test", test_ids))}
    return vocabulary, splits


def _split(encoded: EncodedBatch, reviews: list[Review]) -> Split:
    """The Split that Split.from_lists makes of the same ids."""
    labels = np.asarray([review.label for review in reviews], dtype=np.int8)
    return Split(encoded.values, encoded.offsets, labels, np.array([review.name for review in reviews], dtype=str))


def _load_keras(num_words: int, report: _Reporter) -> Dataset:
    report(0.0, "loading Keras's imdb.npz")
    try:
        # Imported here: TensorFlow takes seconds to import and only this source needs it.
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=num_words)
        word_index = keras.datasets.imdb.get_word_index()
    except Exception as error:  # noqa: BLE001 - a failed download surfaces as many types; all mean the same to a user
        raise DataError(KERAS_OFFLINE_MESSAGE) from error
    report(0.8, "arranging Keras's arrays")
    return Dataset(
        source="Keras imdb.npz",
        kind="keras",
        vocabulary=Vocabulary.from_word_index(word_index, num_words),
        # Keras's load_data has already shuffled both splits with seed 113; names are positions in that order.
        train=Split.from_lists(list(x_train), y_train, [f"train/{i}" for i in range(len(y_train))]),
        test=Split.from_lists(list(x_test), y_test, [f"test/{i}" for i in range(len(y_test))]),
        location=None,
    )


def load_dataset(
    source: str | Path | None = None,
    num_words: int = 10_000,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    text_column: str | None = None,
) -> Dataset:
    """Train and test reviews as token ids: source is an aclImdb folder or archive, a CSV, or None (IMDB_DATA, else
    Keras's imdb.npz). The arrays are cached in cache_dir (default core.paths.cache_dir()) and reused while the data,
    num_words and the text rule stay the same; progress(fraction, message) hears how far loading has got."""
    if isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < INDEX_FROM + 2:
        raise ValueError(f"num_words must be a whole number of at least {INDEX_FROM + 2}, got {num_words!r}")
    report = _Reporter(progress)
    resolved = _resolve(source)
    directory = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    # Keras's own file missing means a download first; the key is only known once it is there.
    key = _cache_key(resolved, num_words, text_column) if resolved.layout != "keras" or _fingerprint(resolved) else None
    if key is not None:
        cached = read_cache(cache_file(directory, resolved.kind, key), key, num_words)
        if cached is not None:
            report(1.0, "loaded from the cache")
            return cached
    if resolved.layout == "keras":
        dataset = _load_keras(num_words, report)
    else:
        reviews = _read_source(resolved, SPLITS, report, text_column)
        vocabulary, splits = _encode(reviews, num_words, report)
        del reviews
        dataset = Dataset(
            source=resolved.description,
            kind=resolved.kind,
            vocabulary=vocabulary,
            train=splits["train"],
            test=splits["test"],
            location=str(resolved.path),
        )
    report(0.95, "writing the cache")
    key = key or _cache_key(resolved, num_words, text_column)
    write_cache(cache_file(directory, resolved.kind, key), key, dataset)
    report(1.0, "loaded")
    return dataset


def read_reviews(
    source: str | Path | None, split: str, names: Sequence[str] | None = None, *, text_column: str | None = None
) -> list[Review]:
    """The raw reviews of one split, in Dataset.<split>'s order, or those with the given names in the given order.
    Keras's imdb.npz holds ids only, so it has no raw text: DataError."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    resolved = _resolve(source)
    if resolved.kind == "keras":
        raise DataError(
            "Keras's imdb.npz holds token ids only, no raw review text: point IMDB_DATA or --data at an aclImdb "
            "folder or archive, or a CSV, to see the raw reviews"
        )
    if names is None:
        return _read_source(resolved, (split,), _Reporter(None), text_column)[split]
    names = [str(name) for name in names]
    if resolved.kind == "stanford":
        found = reviews_by_name(resolved.layout, resolved.path, split, names)
    else:
        found = {review.name: review for review in csv_reviews(resolved.path, text_column)[split]}
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(
            f"no review named {missing[0]!r} in the {split} split of {resolved.description}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + ": names come from Dataset.<split>.names"
        )
    return [found[name] for name in names]


def split_for_vocabulary(dataset: Dataset, vocabulary: Vocabulary, split: str = "test") -> tuple[Split, bool]:
    """dataset's split in the ids of another vocabulary (a model's), and whether that is exact.

    Equal vocabularies need nothing. Otherwise the raw text is encoded again with the model's words, which is exact;
    Keras's imdb.npz has no raw text, so its ids are mapped word by word, losing the words its own vocabulary lacks.
    """
    chosen = dataset.train if split == "train" else dataset.test
    if dataset.vocabulary == vocabulary:
        return chosen, True
    if dataset.location is None:
        return chosen.mapped(vocabulary_map(dataset.vocabulary, vocabulary)), False
    reviews = read_reviews(dataset.location, split)
    return _split(encode_batch([review.text for review in reviews], vocabulary), reviews), True
