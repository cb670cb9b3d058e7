"""What one request to the HTTP API may hold, and the checks that turn a wrong request into one line (a 4xx)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.data.reviews import MAX_REVIEW_BYTES

IDS_INPUT = "input_ids"
TEXT_INPUT = "review"


class RequestError(ValueError):
    """A request the server refuses: one line says what is wrong; status is the HTTP status it gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """The bounds of one request: what any client can make the server hold or compute."""

    body_bytes: int = 4 * 1024 * 1024  # the request's JSON, as sent (compressed bodies are refused)
    rows: int = 256  # reviews (or id rows) a request
    ids_per_row: int = 2_000  # columns of input_ids: the model reads a row's last sequence_length ids
    review_bytes: int = MAX_REVIEW_BYTES  # one review's UTF-8 text, as every other reader of reviews allows
    bytes_in_flight: int = 256 * 1024 * 1024  # bodies of the requests being read or answered at once (503 past it)
    body_seconds: float = 30.0  # a body must arrive within this long (408), so a slow client frees its place

    def to_dict(self) -> dict:
        return {
            "max_body_bytes": self.body_bytes,
            "max_rows": self.rows,
            "max_ids_per_row": self.ids_per_row,
            "max_review_bytes": self.review_bytes,
            "max_bytes_in_flight": self.bytes_in_flight,
            "body_seconds": self.body_seconds,
        }


def _shape(shape: Sequence[int], rank: int, name: str, example: str) -> tuple[int, ...]:
    if len(shape) != rank or any(size < 0 for size in shape):
        raise RequestError(f"{name} must have shape {example}, got {list(shape)}")
    return tuple(shape)


def _rows(rows: int, name: str, limits: Limits) -> None:
    if rows < 1:
        raise RequestError(f"{name} has no rows: send at least one")
    if rows > limits.rows:
        raise RequestError(f"{name} has {rows:,} rows; a request takes at most {limits.rows:,}", 413)


def _flat(data) -> list:
    """V2 tensor data, given flat (the protocol's form) or nested by row (which clients also send)."""
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [item for row in data for item in (row if isinstance(row, list) else [row])]
    return data


def ids_rows(datatype: str, shape: Sequence[int], data, num_words: int, limits: Limits) -> np.ndarray:
    """input_ids as the int32 [rows, width] array the file takes, or RequestError saying what is wrong."""
    if datatype not in ("INT32", "INT64"):
        raise RequestError(f"{IDS_INPUT} must be INT32 (token ids), got {datatype}")
    rows, width = _shape(shape, 2, IDS_INPUT, "[rows, ids]")
    _rows(rows, IDS_INPUT, limits)
    if width < 1 or width > limits.ids_per_row:
        raise RequestError(f"{IDS_INPUT} rows have {width:,} ids; a row takes 1 to {limits.ids_per_row:,}", 413)
    values = _flat(data)
    if len(values) != rows * width:
        raise RequestError(f"{IDS_INPUT} has {len(values):,} values, not the {rows:,} x {width:,} its shape says")
    if not all(type(value) is int for value in values):
        raise RequestError(f"{IDS_INPUT} must hold whole numbers (token ids)")
    ids = np.array(values, dtype=np.int64).reshape(rows, width)
    if ids.min() < 0 or ids.max() >= num_words:
        raise RequestError(f"{IDS_INPUT} must be ids from 0 to {num_words - 1} (the file's vocabulary)")
    return ids.astype(np.int32)


def review_texts(datatype: str, shape: Sequence[int], data, limits: Limits) -> list[str]:
    """The review input as a list of texts, or RequestError saying what is wrong."""
    from core.scoring.predictor import check_texts  # the Predictor's own rule for what a review may be

    if datatype != "BYTES":
        raise RequestError(f"{TEXT_INPUT} must be BYTES (one UTF-8 review a row), got {datatype}")
    if len(shape) == 2 and shape[1] == 1:
        shape = shape[:1]
    (rows,) = _shape(shape, 1, TEXT_INPUT, "[rows]")
    _rows(rows, TEXT_INPUT, limits)
    values = _flat(data)
    if len(values) != rows:
        raise RequestError(f"{TEXT_INPUT} has {len(values):,} values, not the {rows:,} its shape says")
    texts = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(f"review {index + 1} is not UTF-8 text") from None
        texts.append(value)
    try:
        check_texts(texts)  # text, and not blank
    except ValueError as error:
        raise RequestError(str(error)) from None
    for index, text in enumerate(texts):
        if len(text) > limits.review_bytes // 4 and len(text.encode("utf-8")) > limits.review_bytes:
            raise RequestError(f"review {index + 1} is longer than {limits.review_bytes:,} bytes", 413)
    return texts


def requested(names: Sequence[str] | None, offered: Sequence[str]) -> list[str]:
    """The outputs a request names (all of offered when it names none), or RequestError for a name not offered."""
    if not names:
        return list(offered)
    unknown = [name for name in names if name not in offered]
    if unknown:
        raise RequestError(f"no output {unknown[0]!r} for this input: the outputs are {', '.join(offered)}")
    return list(dict.fromkeys(names))
