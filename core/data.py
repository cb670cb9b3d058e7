"""IMDB reviews from Stanford's layout (folder or .tar.gz), Keras's imdb.npz, or a CSV, as token ids; cached on disk."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import paths
from core.text import INDEX_FROM, NORMALIZATION, Vocabulary, pad_sequences, tokenize

LABELS = ("negative", "positive")
SPLITS = ("train", "test")
# Keras's load_data shuffles with this seed; every source's training split gets the same fixed shuffle.
SHUFFLE_SEED = 113
CSV_TEST_FRACTION = 0.2
# Bump when the cached arrays or their meaning change: older cache files are then simply not found.
CACHE_FORMAT = "imdb-cache-1"
# A review is a few kilobytes; a bigger member is not a review, and reading it whole could exhaust memory.
MAX_REVIEW_BYTES = 1_000_000

KERAS_OFFLINE_MESSAGE = (
    "cannot download Keras's imdb.npz (no network?): set IMDB_DATA or pass --data with Stanford's aclImdb_v1.tar.gz, "
    "an extracted aclImdb folder, or a CSV; or put imdb.npz and imdb_word_index.json in ~/.keras/datasets/"
)
_SOURCE_HELP = "pass an aclImdb folder, a .tar.gz/.tgz/.tar archive of it, or a CSV (--data or IMDB_DATA)"

Progress = Callable[[float, str], None]

# Stanford's review files: {train,test}/{pos,neg}/<id>_<rating>.txt, under any prefix (aclImdb/, ./aclImdb/, none).
_REVIEW_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+\.txt)$")
# A review's name as Split.names and read_reviews use it: relative, so it can never point outside the data.
_REVIEW_NAME = re.compile(r"(train|test)/(pos|neg)/([^/]+\.txt)")
_RATING = re.compile(r"^(\d+)_(\d+)\.txt$")
_LABEL_FOLDERS = (("neg", 0), ("pos", 1))
_CSV_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1}
_CSV_TEXT_COLUMNS = ("text", "review")
_CSV_LABEL_COLUMNS = ("label", "sentiment")
# Reviews can be long; the csv module's default 128 KiB field limit would reject them.
_CSV_FIELD_LIMIT = 2**31 - 1


class DataError(ValueError):
    """The data a user pointed at cannot be read: the message says what, why, and what to do."""


@dataclass(frozen=True)
class Split:
    """One split's reviews as ragged token ids (each starting with the start id) and 0/1 labels."""

    values: np.ndarray  # int32: every review's ids, concatenated
    offsets: np.ndarray  # int64, len(labels) + 1: review i is values[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int8, 0 negative, 1 positive
    names: np.ndarray | None = None  # str: each review's name for read_reviews ("train/pos/12_8.txt", "row 7")

    def __len__(self) -> int:
        return len(self.labels)

    def ids(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def lengths(self) -> np.ndarray:
        """Ids per review, the start id included."""
        return np.diff(self.offsets)

    def padded(self, length: int, padding: str = "pre", truncating: str = "pre") -> np.ndarray:
        """All reviews as one int32 array (len, length), as keras.utils.pad_sequences would make it."""
        return pad_sequences([self.ids(i) for i in range(len(self))], length, padding, truncating)

    def subset(self, indices: np.ndarray) -> "Split":
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths()[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate([self.ids(i) for i in indices]) if len(indices) else np.zeros(0, np.int32)
        names = self.names[indices] if self.names is not None else None
        return Split(values.astype(np.int32), offsets, self.labels[indices], names)

    @classmethod
    def from_lists(cls, sequences: list, labels, names: Sequence[str] | None = None) -> "Split":
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences]) if sequences else np.zeros(0, np.int32)
        name_array = np.array(list(names), dtype=str) if names is not None else None
        return cls(values.astype(np.int32), offsets, np.asarray(labels, dtype=np.int8), name_array)


@dataclass(frozen=True)
class Dataset:
    """Train and test splits encoded with one vocabulary built from the training split."""

    source: str  # what was read, for people: "Stanford archive /path/aclImdb_v1.tar.gz", "Keras imdb.npz", "CSV /path"
    kind: str  # "stanford", "keras" or "csv"
    vocabulary: Vocabulary
    train: Split
    test: Split
    location: str | None = None  # the resolved path that was read (give it to read_reviews); None for Keras


@dataclass(frozen=True)
class Review:
    """One raw review, as read_reviews returns it."""

    name: str  # the same name as in Split.names: "train/pos/12_8.txt" (Stanford) or "row 7" (CSV, from 1)
    text: str  # the raw text, HTML line breaks and all
    label: int  # 0 negative, 1 positive
    rating: int | None  # Stanford's stars (1-10) from the file name; None for a CSV


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


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


# ---- resolving a source --------------------------------------------------------------------------------------------


def _stanford_root(folder: Path) -> Path:
    """The aclImdb folder itself, given it or its parent; every split and label folder must be there."""
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        root = folder
    elif (folder / "aclImdb").is_dir():
        root = folder / "aclImdb"
    else:
        raise DataError(
            f"{folder} is not a known data layout: it holds no aclImdb, train or test folder; {_SOURCE_HELP}"
        )
    for split in SPLITS:
        for label_folder, _ in _LABEL_FOLDERS:
            if not (root / split / label_folder).is_dir():
                raise DataError(
                    f"aclImdb folder {root} has no {split}/{label_folder} folder: both splits need pos and neg "
                    "folders; extract the whole aclImdb_v1.tar.gz again or pass the archive itself"
                )
    return root


def _resolve(source: str | Path | None) -> _Source:
    if source is None:
        source = paths.data_source()
    if source is None:
        return _Source("keras", "keras", None)
    text = str(source).strip()
    if not text:
        raise DataError(f"the data path is empty: {_SOURCE_HELP}")
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist: {_SOURCE_HELP}")
    path = path.resolve()
    if path.is_dir():
        return _Source("stanford", "folder", _stanford_root(path))
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
    raise DataError(f"{path} is not a known data layout: {_SOURCE_HELP}")


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


# ---- Stanford's layout ----------------------------------------------------------------------------------------------


def _rating(file_name: str) -> int | None:
    match = _RATING.match(file_name)
    return int(match.group(2)) if match else None


def _stanford_order(review: Review) -> tuple:
    # Numeric ids first, so the canonical order reads neg/0_3, neg/1_1, ..., neg/10_2 like the files' own numbering.
    file_name = review.name.rsplit("/", 1)[-1]
    match = _RATING.match(file_name)
    return (review.label, int(match.group(1)) if match else -1, file_name)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _check_review_size(size: int, name: str, where: Path) -> None:
    if size > MAX_REVIEW_BYTES:
        raise DataError(
            f"{name} in {where} is {size:,} bytes, too big to be a review (limit {MAX_REVIEW_BYTES:,}): "
            "is this Stanford's aclImdb data?"
        )


def _folder_reviews(root: Path, splits: Sequence[str], report: Progress) -> Iterator[Review]:
    folders = [(split, folder, label) for split in splits for folder, label in _LABEL_FOLDERS]
    for step, (split, label_folder, label) in enumerate(folders):
        report(step / len(folders), f"reading {root / split / label_folder}")
        with os.scandir(root / split / label_folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".txt") or not entry.is_file():
                    continue
                name = f"{split}/{label_folder}/{entry.name}"
                _check_review_size(entry.stat().st_size, name, root)
                with open(entry.path, "rb") as file:
                    text = _decode(file.read())
                yield Review(name, text, label, _rating(entry.name))


def _archive_reviews(
    path: Path, splits: Sequence[str], report: Progress, wanted: set[str] | None = None
) -> Iterator[Review]:
    """Stream the review members of a tar archive without extracting; stops early once every wanted name is found."""
    size = max(path.stat().st_size, 1)
    found = 0
    with open(path, "rb") as raw:
        try:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            # Our own GzipFile, read to its end below, checks the CRC and length trailer: tarfile's stream mode
            # would take a truncated .tar.gz that ends between members for a complete one.
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*") as archive:
                for member in archive:
                    match = _REVIEW_MEMBER.search(member.name)
                    if match is None or not member.isfile() or match.group(1) not in splits:
                        continue
                    split, label_folder, file_name = match.groups()
                    name = f"{split}/{label_folder}/{file_name}"
                    if wanted is not None and name not in wanted:
                        continue
                    _check_review_size(member.size, name, path)
                    text = _decode(archive.extractfile(member).read())
                    report(raw.tell() / size, f"reading {path.name}")
                    yield Review(name, text, 1 if label_folder == "pos" else 0, _rating(file_name))
                    found += 1
                    if wanted is not None and found == len(wanted):
                        return
            if gzipped:
                while stream.read(1 << 20):
                    pass
        except DataError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            # zlib.error is not an OSError; it surfaces here as tarfile.ReadError or gzip's BadGzipFile.
            raise DataError(
                f"archive {path} is truncated or corrupt ({_one_line(error)}): download aclImdb_v1.tar.gz again"
            ) from None


def _stanford_reviews(source: _Source, splits: Sequence[str], report: Progress) -> dict[str, list[Review]]:
    if source.layout == "folder":
        reviews = _folder_reviews(source.path, splits, report)
    else:
        reviews = _archive_reviews(source.path, splits, report)
    by_split: dict[str, list[Review]] = {split: [] for split in splits}
    for review in reviews:
        by_split[review.name.split("/", 1)[0]].append(review)
    if not any(by_split.values()):
        raise DataError(
            f"no reviews found in {source.path}: expected aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt "
            "files; is this Stanford's aclImdb_v1.tar.gz?"
        )
    for split in splits:
        for label_folder, label in _LABEL_FOLDERS:
            if not any(review.label == label for review in by_split[split]):
                raise DataError(
                    f"no reviews in {split}/{label_folder} of {source.path}: both splits need positive and "
                    "negative reviews; use a complete copy of aclImdb_v1.tar.gz"
                )
    for split in splits:
        by_split[split].sort(key=_stanford_order)
    return by_split


# ---- CSV ------------------------------------------------------------------------------------------------------------


def _csv_column(header: list[str], wanted: Sequence[str], path: Path, what: str) -> int:
    lowered = [name.strip().lower() for name in header]
    for name in wanted:
        if name in header:
            return header.index(name)
        if name.strip().lower() in lowered:
            return lowered.index(name.strip().lower())
    found = ", ".join(repr(name[:40]) for name in header[:10]) + (", ..." if len(header) > 10 else "")
    expected = " or ".join(repr(name) for name in wanted)
    raise DataError(f"CSV {path} has no {what} column: expected {expected}, found {found or 'no columns'}")


def _utf8_lines(file, path: Path) -> Iterator[str]:
    """The file's lines as text, so that a byte that is not UTF-8 can be reported with its line number."""
    for number, raw in enumerate(file, start=1):
        # Text never holds NUL bytes; Python's csv module would take them, so a binary file is caught here.
        if b"\x00" in raw:
            raise DataError(f"CSV {path} has a NUL byte on line {number}: it is a binary file, not a CSV text file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"CSV {path} is not UTF-8 text: line {number} has the byte {raw[error.start]:#04x}; save it as UTF-8"
            ) from None
        # Spreadsheet programs often start a UTF-8 CSV with a byte-order mark.
        yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_reviews(path: Path, text_column: str | None) -> dict[str, list[Review]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    rows: list[tuple[Review, str | None]] = []
    line = 0
    try:
        with open(path, "rb") as file:
            # strict: an unclosed quote would otherwise swallow the rest of the file into one field, silently.
            reader = csv.reader(_utf8_lines(file, path), strict=True)
            header = next(reader, None)
            line = reader.line_num
            if header is None or not any(cell.strip() for cell in header):
                raise DataError(f"CSV {path} is empty: it needs a header row with text and label columns, then reviews")
            text_index = _csv_column(header, [text_column] if text_column else _CSV_TEXT_COLUMNS, path, "text")
            label_index = _csv_column(header, _CSV_LABEL_COLUMNS, path, "label")
            lowered = [name.strip().lower() for name in header]
            split_index = lowered.index("split") if "split" in lowered else None
            needed = max(text_index, label_index, split_index or 0)
            for row in reader:
                line = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                row_number = len(rows) + 1
                where = f"CSV {path}, row {row_number} (line {line})"
                if len(row) <= needed:
                    raise DataError(f"{where} has {len(row)} fields, the header has {len(header)}: fix that row")
                value = row[label_index].strip().lower()
                if value not in _CSV_LABELS:
                    raise DataError(
                        f"{where}, column {header[label_index]!r}: {row[label_index][:40]!r} is not a label; "
                        "use 0/1, negative/positive or neg/pos"
                    )
                split = None
                if split_index is not None:
                    split = row[split_index].strip().lower()
                    if split not in SPLITS:
                        raise DataError(
                            f"{where}, column {header[split_index]!r}: {row[split_index][:40]!r} is not a split; "
                            "use train or test"
                        )
                rows.append((Review(f"row {row_number}", row[text_index], _CSV_LABELS[value], None), split))
    except csv.Error as error:
        raise DataError(
            f"CSV {path} cannot be parsed at line {line + 1} ({_one_line(error)}): is it a CSV file?"
        ) from None
    if not rows:
        raise DataError(f"no reviews found in CSV {path}: it has a header but no rows")
    if rows[0][1] is None:
        if len(rows) < 2:
            raise DataError(f"CSV {path} has one review: it needs at least two to hold out a test split")
        # A fixed 80/20 split, so that the same file always gives the same test reviews.
        order = np.random.RandomState(SHUFFLE_SEED).permutation(len(rows))
        test_rows = set(order[: max(1, round(len(rows) * CSV_TEST_FRACTION))].tolist())
        splits = ["test" if index in test_rows else "train" for index in range(len(rows))]
    else:
        splits = [split for _, split in rows]
    by_split = {split: [review for (review, _), assigned in zip(rows, splits) if assigned == split] for split in SPLITS}
    for split in SPLITS:
        if not by_split[split]:
            raise DataError(f"CSV {path} has no {split} reviews: its split column needs both train and test rows")
    return by_split


# ---- ordering, shared by load_dataset and read_reviews -------------------------------------------------------------


def _training_order(count: int) -> np.ndarray:
    """The fixed shuffle of the training split, so that validation_split's tail holds both labels."""
    return np.random.RandomState(SHUFFLE_SEED).permutation(count)


def _read_source(source: _Source, splits: Sequence[str], report: _Reporter, text_column: str | None) -> dict:
    """Every review of the splits, train in its fixed shuffle and test in canonical order."""
    if source.kind == "csv":
        report(0.0, f"reading {source.path.name}")
        by_split = _csv_reviews(source.path, text_column)
    else:
        # Reading is the first 40% of a load; tokenizing and encoding the rest.
        by_split = _stanford_reviews(source, splits, lambda fraction, message: report(0.4 * fraction, message))
    if "train" in by_split:
        train = by_split["train"]
        by_split["train"] = [train[index] for index in _training_order(len(train))]
    return {split: by_split[split] for split in splits}


# ---- the cache ------------------------------------------------------------------------------------------------------


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
        files = size = newest = 0
        for split in SPLITS:
            for label_folder, _ in _LABEL_FOLDERS:
                with os.scandir(source.path / split / label_folder) as entries:
                    for entry in entries:
                        stat = entry.stat()
                        files += 1
                        size += stat.st_size
                        newest = max(newest, stat.st_mtime_ns)
        return {"path": str(source.path), "files": files, "size": size, "mtime_ns": newest}
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


def _cache_file(directory: Path, source: _Source, key: str) -> Path:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return directory / f"{source.kind}-{digest}.npz"


def _split_arrays(split_name: str, split: Split) -> dict[str, np.ndarray]:
    names = split.names if split.names is not None else np.zeros(0, dtype=str)
    return {
        f"{split_name}_values": split.values,
        f"{split_name}_offsets": split.offsets,
        f"{split_name}_labels": split.labels,
        f"{split_name}_names": names,
    }


def _write_cache(file: Path, key: str, dataset: Dataset) -> None:
    arrays = {
        "key": np.array(key),
        "source": np.array(dataset.source),
        "kind": np.array(dataset.kind),
        "location": np.array(dataset.location or ""),
        "vocabulary": np.array(json.dumps(dataset.vocabulary.to_dict())),
        **_split_arrays("train", dataset.train),
        **_split_arrays("test", dataset.test),
    }
    temporary = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=file.stem, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.replace(temporary, file)
    except OSError:
        # The cache only saves time: a read-only or full disk must not stop the data from loading.
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _cached_split(archive, split_name: str, num_words: int) -> Split:
    values = archive[f"{split_name}_values"]
    offsets = archive[f"{split_name}_offsets"]
    labels = archive[f"{split_name}_labels"]
    names = archive[f"{split_name}_names"]
    consistent = (
        values.dtype == np.int32
        and offsets.dtype == np.int64
        and labels.dtype == np.int8
        and len(offsets) == len(labels) + 1
        and offsets[0] == 0
        and offsets[-1] == len(values)
        and bool(np.all(np.diff(offsets) >= 1))
        and (len(values) == 0 or (int(values.min()) >= 0 and int(values.max()) < num_words))
        and bool(np.all((labels == 0) | (labels == 1)))
        and len(names) in (0, len(labels))
    )
    if not consistent:
        raise ValueError(f"cached {split_name} arrays are inconsistent")
    return Split(values, offsets, labels, names if len(names) else None)


def _read_cache(file: Path, key: str, num_words: int) -> Dataset | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as archive:
            if str(archive["key"][()]) != key:
                return None
            location = str(archive["location"][()])
            return Dataset(
                source=str(archive["source"][()]),
                kind=str(archive["kind"][()]),
                vocabulary=Vocabulary.from_dict(json.loads(str(archive["vocabulary"][()]))),
                train=_cached_split(archive, "train", num_words),
                test=_cached_split(archive, "test", num_words),
                location=location or None,
            )
    # Any unreadable cache file is a miss: the data is read again and the file rewritten.
    except Exception:  # noqa: BLE001
        return None


# ---- building -------------------------------------------------------------------------------------------------------


def _encode(reviews: dict[str, list[Review]], num_words: int, report: _Reporter) -> tuple[Vocabulary, dict]:
    """The vocabulary from the training split only; both splits encoded by it the way prediction encodes."""
    train, test = reviews["train"], reviews["test"]
    total = max(len(train) + len(test), 1)
    train_tokens = []
    for index, review in enumerate(train):
        if index % 500 == 0:
            report(0.4 + 0.5 * index / total, "tokenizing the training reviews")
        train_tokens.append(tokenize(review.text))
    report(0.4 + 0.5 * len(train) / total, "building the vocabulary")
    vocabulary = Vocabulary.build(train_tokens, num_words)
    # vocabulary.encode(text) is encode_tokens(tokenize(text)): the tokens are reused, not recomputed.
    train_ids = [vocabulary.encode_tokens(tokens).ids for tokens in train_tokens]
    del train_tokens
    test_ids = []
    for index, review in enumerate(test):
        if index % 500 == 0:
            report(0.4 + 0.5 * (len(train) + index) / total, "encoding the test reviews")
        test_ids.append(vocabulary.encode(review.text).ids)
    splits = {
        "train": Split.from_lists(train_ids, [r.label for r in train], [r.name for r in train]),
        "test": Split.from_lists(test_ids, [r.label for r in test], [r.name for r in test]),
    }
    return vocabulary, splits


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
    key = _cache_key(resolved, num_words, text_column)
    file = _cache_file(directory, resolved, key)
    # Keras's own file missing means a download first; the key is only known once it is there.
    if resolved.layout != "keras" or _fingerprint(resolved):
        cached = _read_cache(file, key, num_words)
        if cached is not None:
            report(1.0, "loaded from the cache")
            return cached
    if resolved.layout == "keras":
        dataset = _load_keras(num_words, report)
        key = _cache_key(resolved, num_words, text_column)
        file = _cache_file(directory, resolved, key)
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
    _write_cache(file, key, dataset)
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
    report = _Reporter(None)
    if names is None:
        return _read_source(resolved, (split,), report, text_column)[split]
    names = [str(name) for name in names]
    if resolved.layout == "folder":
        found = {}
        for name in names:
            match = _REVIEW_NAME.fullmatch(name)
            if match is None or match.group(1) != split:
                continue
            file = resolved.path / name
            if file.is_file():
                _check_review_size(file.stat().st_size, name, resolved.path)
                label = 1 if match.group(2) == "pos" else 0
                found[name] = Review(name, _decode(file.read_bytes()), label, _rating(match.group(3)))
    elif resolved.layout == "archive":
        wanted = {name for name in names if (match := _REVIEW_NAME.fullmatch(name)) and match.group(1) == split}
        reviews = _archive_reviews(resolved.path, (split,), report, wanted) if wanted else []
        found = {review.name: review for review in reviews}
    else:
        found = {review.name: review for review in _csv_reviews(resolved.path, text_column)[split]}
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(
            f"no review named {missing[0]!r} in the {split} split of {resolved.description}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + ": names come from Dataset.<split>.names"
        )
    return [found[name] for name in names]
