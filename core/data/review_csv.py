"""A user's own reviews in a CSV: a text column, a label column (0/1, negative/positive), an optional split column."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.errors import one_line
from core.data.reviews import SHUFFLE_SEED, SPLITS, DataError, Review

# The columns a review's text is looked for in, in this order, by training (csv_reviews) and scoring (core.scoring.files).
TEXT_COLUMNS = ("text", "review")
LABEL_COLUMNS = ("label", "sentiment")
LABEL_VALUES = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1}
TEST_FRACTION = 0.2  # share of the rows held out for testing when the CSV has no split column
# Reviews can be long; the csv module's default 128 KiB field limit would reject them.
FIELD_LIMIT = 2**31 - 1


def find_column(header: Sequence[str], wanted: Sequence[str]) -> int | None:
    """The index of the first of wanted that header holds (the exact name, else the same name ignoring case and
    surrounding spaces), or None: the one rule for naming a CSV column, a text column above all."""
    lowered = [name.strip().lower() for name in header]
    for name in wanted:
        if name in header:
            return list(header).index(name)
        if name.strip().lower() in lowered:
            return lowered.index(name.strip().lower())
    return None


def text_column_index(header: Sequence[str], text_column: str | None = None) -> int | None:
    """Where a CSV's review text is: the column named text_column, else the first of TEXT_COLUMNS; None if absent."""
    return find_column(header, [text_column] if text_column else TEXT_COLUMNS)


def _no_column(header: list[str], wanted: Sequence[str], path: Path, what: str) -> DataError:
    found = ", ".join(repr(name[:40]) for name in header[:10]) + (", ..." if len(header) > 10 else "")
    expected = " or ".join(repr(name) for name in wanted)
    return DataError(f"CSV {path} has no {what} column: expected {expected}, found {found or 'no columns'}")


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


def csv_reviews(path: Path, text_column: str | None = None) -> dict[str, list[Review]]:
    """Both splits of a CSV: its split column's, else a fixed 80/20 split of the rows."""
    csv.field_size_limit(FIELD_LIMIT)
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
            text_index = text_column_index(header, text_column)
            if text_index is None:
                raise _no_column(header, [text_column] if text_column else TEXT_COLUMNS, path, "text")
            label_index = find_column(header, LABEL_COLUMNS)
            if label_index is None:
                raise _no_column(header, LABEL_COLUMNS, path, "label")
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
                if value not in LABEL_VALUES:
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
                rows.append((Review(f"row {row_number}", row[text_index], LABEL_VALUES[value], None), split))
    except csv.Error as error:
        raise DataError(
            f"CSV {path} cannot be parsed at line {line + 1} ({one_line(error)}): is it a CSV file?"
        ) from None
    if not rows:
        raise DataError(f"no reviews found in CSV {path}: it has a header but no rows")
    if rows[0][1] is None:
        if len(rows) < 2:
            raise DataError(f"CSV {path} has one review: it needs at least two to hold out a test split")
        # A fixed 80/20 split, so that the same file always gives the same test reviews.
        order = np.random.RandomState(SHUFFLE_SEED).permutation(len(rows))
        test_rows = set(order[: max(1, round(len(rows) * TEST_FRACTION))].tolist())
        splits = ["test" if index in test_rows else "train" for index in range(len(rows))]
    else:
        splits = [split for _, split in rows]
    by_split = {split: [review for (review, _), assigned in zip(rows, splits) if assigned == split] for split in SPLITS}
    for split in SPLITS:
        if not by_split[split]:
            raise DataError(f"CSV {path} has no {split} reviews: its split column needs both train and test rows")
    return by_split
