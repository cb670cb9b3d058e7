"""What every review source yields: the Review record, the DataError a user can cause, and the limits they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LABELS = ("negative", "positive")
SPLITS = ("train", "test")
# Keras's load_data shuffles with this seed; every source's training split gets the same fixed shuffle.
SHUFFLE_SEED = 113
# A review is a few kilobytes; a bigger file is not a review, and reading it whole could exhaust memory.
MAX_REVIEW_BYTES = 1_000_000
SOURCE_HELP = "pass an aclImdb folder, a .tar.gz/.tgz/.tar archive of it, or a CSV (--data or IMDB_DATA)"

# progress(fraction done, what is happening)
Progress = Callable[[float, str], None]


class DataError(ValueError):
    """The data a user pointed at cannot be read: the message says what, why, and what to do."""


@dataclass(frozen=True)
class Review:
    """One raw review, as read_reviews returns it."""

    name: str  # the same name as in Split.names: "train/pos/12_8.txt" (Stanford) or "row 7" (CSV, from 1)
    text: str  # the raw text, HTML line breaks and all
    label: int  # 0 negative, 1 positive
    rating: int | None  # Stanford's stars (1-10) from the file name; None for a CSV


def decode_text(data: bytes) -> str:
    """A review file's bytes as text; the odd byte that is not UTF-8 becomes U+FFFD rather than an error."""
    return data.decode("utf-8", errors="replace")


def check_review_size(size: int, name: str, where: Path) -> None:
    if size > MAX_REVIEW_BYTES:
        raise DataError(
            f"{name} in {where} is {size:,} bytes, too big to be a review (limit {MAX_REVIEW_BYTES:,}): "
            "is this Stanford's aclImdb data?"
        )
