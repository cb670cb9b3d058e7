"""A CSV file's reviews scored: rows read and classified chunk by chunk, one output record a row, the whole table."""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import reason
from core.data.review_csv import text_column_index

if TYPE_CHECKING:
    from core.scoring.predictor import Prediction, Predictor

# Python's csv module refuses fields over 128 KiB by default; a pasted review can be longer than that.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
# The columns of a scored row, in order: the CLI's JSON lines and the Classify page's table and download.
OUTPUT_COLUMNS = ("row", "label", "score", "tokens", "unknown_tokens", "truncated", "error")
# What a row without review text reports besides its error: no label, no score, nothing read.
NO_PREDICTION = {"label": None, "score": None, "tokens": 0, "unknown_tokens": 0, "truncated": False}
# Characters of each row's text a table keeps to show beside the scores.
PREVIEW_CHARACTERS = 120


@dataclass(frozen=True)
class CsvPrediction:
    """One CSV row's result: a prediction, or the reason there is none (an empty review)."""

    row: int  # 1-based data row, the header not counted
    text: str
    prediction: Prediction | None
    error: str | None

    def to_dict(self) -> dict:
        """The row's output record: row, then the prediction's fields, or NO_PREDICTION and the error."""
        if self.prediction is None:
            return {"row": self.row, **NO_PREDICTION, "error": self.error}
        return {"row": self.row, **self.prediction.to_dict()}


def _text_lines(stream, path: Path) -> Iterator[str]:
    """The stream's lines; a NUL byte, which text never holds and the csv module would accept, means a binary file."""
    for number, line in enumerate(stream, start=1):
        if "\x00" in line:
            raise ValueError(f"{path} has a NUL byte on line {number}: it is a binary file, not a CSV text file")
        yield line


def find_text_column(header: list[str], text_column: str | None, path: Path) -> int:
    """The index of the review column among a file's column names (CSV or Parquet), or ValueError naming them."""
    names = [name.strip() for name in header]
    index = text_column_index(names, text_column)
    if index is not None:
        return index
    if text_column is not None:
        raise ValueError(f"{path} has no column {text_column!r}; its columns: {', '.join(names)}")
    raise ValueError(f"{path} has no text or review column (columns: {', '.join(names)}); name one with --text-column")


def predict_rows(predictor: Predictor, chunk: list[tuple[int, str]]) -> Iterator[CsvPrediction]:
    """One chunk of (row, text) scored in one predict call, in order; an empty text is an error row, not a failure."""
    present = [(row, text) for row, text in chunk if text.strip()]
    predictions = iter(predictor.predict([text for _, text in present])) if present else iter(())
    for row, text in chunk:
        if text.strip():
            yield CsvPrediction(row, text, next(predictions), None)
        else:
            yield CsvPrediction(row, text, None, "review is empty")


def predict_csv(
    predictor: Predictor,
    path: str | Path,
    *,
    text_column: str | None = None,
    chunk_size: int = 1024,
    progress: Callable[[float, int], None] | None = None,
) -> Iterator[CsvPrediction]:
    """Classify a CSV's reviews chunk by chunk, yielding rows in order; progress(fraction_of_bytes, rows_done)."""
    path = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    try:
        total = max(path.stat().st_size, 1)
        raw = path.open("rb")
    except FileNotFoundError:
        raise ValueError(f"no CSV file at {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {reason(error)}") from None
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(_text_lines(stream, path))
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header row with a text or review column")
            column = find_text_column(header, text_column, path)
            done = 0
            chunk: list[tuple[int, str]] = []
            for row_number, row in enumerate(reader, start=1):
                if not row:
                    continue
                chunk.append((row_number, row[column] if column < len(row) else ""))
                if len(chunk) >= chunk_size:
                    yield from predict_rows(predictor, chunk)
                    done += len(chunk)
                    chunk = []
                    if progress:
                        progress(min(raw.tell() / total, 1.0), done)
            if chunk:
                yield from predict_rows(predictor, chunk)
                done += len(chunk)
            if progress:
                progress(1.0, done)
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from None
        except csv.Error as error:
            raise ValueError(f"{path} is not a readable CSV: {' '.join(str(error).split())}") from None


@dataclass(frozen=True, eq=False)
class ScoredCsv:
    """Every row of a scored CSV as typed columns, not a dict a row, so that a million rows stay far below a
    gigabyte; labels and errors are codes into short lists (-1 for none)."""

    labels: tuple[str, ...]  # the model's labels: label_codes index them
    rows: np.ndarray  # int64: 1-based data row
    label_codes: np.ndarray  # int64: index into labels, -1 for a row without review text
    scores: np.ndarray  # float64: the positive probability, NaN for a row without review text
    tokens: np.ndarray  # int64
    unknown_tokens: np.ndarray  # int64
    truncated: np.ndarray  # bool
    error_codes: np.ndarray  # int64: index into errors, -1 for a scored row
    errors: tuple[str, ...]  # each distinct error message once
    previews: tuple[str, ...]  # the text of the first rows, PREVIEW_CHARACTERS at most each
    capped: bool = False  # the CSV had more rows than score_csv's max_rows: only the first ones are here

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> str:
        """The rows by label, then the rows without review text if any: "3 negative, 5 positive, 1 empty"."""
        counts = np.bincount(self.label_codes[self.label_codes >= 0], minlength=len(self.labels))
        parts = [f"{count:,} {label}" for label, count in zip(self.labels, counts)]
        empty = int(np.sum(self.error_codes >= 0))
        return ", ".join(parts + ([f"{empty:,} empty"] if empty else []))

    def to_frame(self):
        """A pandas DataFrame with OUTPUT_COLUMNS; label and error are categories (missing where there is none)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "row": self.rows,
                "label": pd.Categorical.from_codes(self.label_codes, categories=list(self.labels)),
                "score": self.scores,
                "tokens": self.tokens,
                "unknown_tokens": self.unknown_tokens,
                "truncated": self.truncated,
                "error": pd.Categorical.from_codes(self.error_codes, categories=list(self.errors)),
            }
        )


def score_csv(
    predictor: Predictor,
    path: str | Path,
    text_column: str | None = None,
    progress: Callable[[float, int], None] | None = None,
    preview_rows: int = 5_000,
    max_rows: int | None = None,
) -> ScoredCsv:
    """Every row of the CSV at path scored (each row's record as CsvPrediction.to_dict gives it), and the text of the
    first preview_rows rows; with max_rows, only that many rows, and ScoredCsv.capped says whether more were left."""
    results = predict_csv(predictor, path, text_column=text_column, progress=progress)
    return scored_table(predictor, results, preview_rows, max_rows)


def scored_table(
    predictor: Predictor, results: Iterable[CsvPrediction], preview_rows: int = 5_000, max_rows: int | None = None
) -> ScoredCsv:
    """Scored rows (from a CSV or a Parquet file) gathered into a ScoredCsv, stopping after max_rows rows."""
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    label_index = {label: code for code, label in enumerate(predictor.metadata.labels)}
    rows, codes, scores = array("l"), array("l"), array("d")
    tokens, unknown, truncated, error_codes = array("l"), array("l"), array("b"), array("l")
    errors: dict[str, int] = {}
    previews: list[str] = []
    capped = False
    for item in results:
        if max_rows is not None and len(rows) >= max_rows:
            capped = True
            break
        record = item.to_dict()
        rows.append(record["row"])
        codes.append(-1 if record["label"] is None else label_index[record["label"]])
        scores.append(float("nan") if record["score"] is None else record["score"])
        tokens.append(record["tokens"])
        unknown.append(record["unknown_tokens"])
        truncated.append(record["truncated"])
        error = record.get("error")
        error_codes.append(-1 if error is None else errors.setdefault(error, len(errors)))
        if len(previews) < preview_rows:
            previews.append(item.text[:PREVIEW_CHARACTERS])
    return ScoredCsv(
        labels=tuple(predictor.metadata.labels),
        rows=np.asarray(rows, dtype=np.int64),
        label_codes=np.asarray(codes, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        tokens=np.asarray(tokens, dtype=np.int64),
        unknown_tokens=np.asarray(unknown, dtype=np.int64),
        truncated=np.asarray(truncated, dtype=bool),
        error_codes=np.asarray(error_codes, dtype=np.int64),
        errors=tuple(errors),
        previews=tuple(previews),
        capped=capped,
    )
