"""What the Data page shows of a dataset: reviews by split and label, lengths against the sequence length, vocabulary
coverage, and one review cut and padded as the model reads it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import ModelConfig
from core.data.reviews import LABELS
from core.data.splits import Dataset, Split
from core.data.text import PAD_ID, START_ID, Vocabulary


def splits_of(dataset: Dataset) -> dict[str, Split]:
    """The dataset's splits by name, training first."""
    return {"train": dataset.train, "test": dataset.test}


def label_counts(dataset: Dataset) -> list[dict[str, object]]:
    """One row a split: its reviews of each label and its total."""
    return [
        {
            "Split": name,
            LABELS[0]: int(np.sum(split.labels == 0)),
            LABELS[1]: int(np.sum(split.labels == 1)),
            "Total": len(split),
        }
        for name, split in splits_of(dataset).items()
    ]


@dataclass(frozen=True)
class LengthSummary:
    """How long a split's reviews are (in ids: the start id and one id a word) against the model's sequence length."""

    lengths: np.ndarray  # one length a review
    median: int | None  # None for an empty split
    longest: int | None
    cut_share: float  # share of the reviews longer than the sequence length, which lose ids


def length_summary(split: Split, sequence_length: int) -> LengthSummary:
    lengths = split.lengths()
    if not len(lengths):
        return LengthSummary(lengths, None, None, 0.0)
    return LengthSummary(
        lengths, int(np.median(lengths)), int(lengths.max()), float(np.mean(lengths > sequence_length))
    )


def coverage(split: Split, vocabulary: Vocabulary) -> float:
    """The share of a split's words that have their own id rather than <unk> (start and pad ids left out)."""
    words = split.values[(split.values != START_ID) & (split.values != PAD_ID)]
    return float(np.mean(words != vocabulary.oov_id)) if len(words) else 0.0


@dataclass(frozen=True)
class ReviewAsRead:
    """One review's ids split into what the model reads and what truncation cuts off."""

    ids: np.ndarray  # the whole review: the start id, then one id a word
    kept: np.ndarray  # what the model reads, before padding
    cut: np.ndarray  # what truncation drops (before kept with truncating "pre", after it with "post")
    label: str
    unknown: int  # ids that are <unk>
    pad_added: int  # pad ids added to reach the sequence length

    @property
    def words(self) -> int:
        return len(self.ids) - 1  # the start id is not a word


def review_as_read(split: Split, index: int, model: ModelConfig, vocabulary: Vocabulary) -> ReviewAsRead:
    """Review index of split as a model with this config reads it."""
    ids = split.ids(index)
    length = model.sequence_length
    if len(ids) > length:
        cut, kept = (ids[:-length], ids[-length:]) if model.truncating == "pre" else (ids[length:], ids[:length])
    else:
        cut, kept = ids[:0], ids
    return ReviewAsRead(
        ids=ids,
        kept=kept,
        cut=cut,
        label=LABELS[int(split.labels[index])],
        unknown=int(np.sum(ids == vocabulary.oov_id)),
        pad_added=max(length - len(ids), 0),
    )
