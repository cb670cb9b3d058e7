"""Reviews as the model sees them: one split's ragged token ids and labels, and the Dataset of both splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.data.text import Vocabulary, pad_sequences


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

    def mapped(self, table: np.ndarray) -> "Split":
        """The same reviews with every id replaced by table[id] (see core.data.text.vocabulary_map)."""
        return Split(table[self.values].astype(np.int32), self.offsets, self.labels, self.names)

    @classmethod
    def from_lists(cls, sequences: Sequence, labels, names: Sequence[str] | None = None) -> "Split":
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        arrays = [np.asarray(s, dtype=np.int32) for s in sequences]
        values = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
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
