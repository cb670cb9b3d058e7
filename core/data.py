"""IMDB reviews from Stanford's layout (folder or .tar.gz), Keras's imdb.npz, or a CSV, as token ids; cached on disk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.text import Vocabulary, pad_sequences

LABELS = ("negative", "positive")


class DataError(ValueError):
    """The data a user pointed at cannot be read: the message says what, why, and what to do."""


@dataclass(frozen=True)
class Split:
    """One split's reviews as ragged token ids (each starting with the start id) and 0/1 labels."""

    values: np.ndarray  # int32: every review's ids, concatenated
    offsets: np.ndarray  # int64, len(labels) + 1: review i is values[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int8, 0 negative, 1 positive

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
        return Split(values.astype(np.int32), offsets, self.labels[indices])

    @classmethod
    def from_lists(cls, sequences: list, labels) -> "Split":
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences]) if sequences else np.zeros(0, np.int32)
        return cls(values.astype(np.int32), offsets, np.asarray(labels, dtype=np.int8))


@dataclass(frozen=True)
class Dataset:
    """Train and test splits encoded with one vocabulary built from the training split."""

    source: str  # what was read, for people: "Stanford archive /path/aclImdb_v1.tar.gz", "Keras imdb.npz", "CSV /path"
    kind: str  # "stanford", "keras" or "csv"
    vocabulary: Vocabulary
    train: Split
    test: Split
