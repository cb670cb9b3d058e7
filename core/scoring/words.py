"""What the words learned: every vocabulary word scored alone by an exported file (the start id, then the word), and
the learned embedding's geometry (the nearest words by cosine, a 2-D map by PCA). NumPy and onnxruntime only.

The embedding is read from the file itself: the float table its first Gather looks the ids up in. An int8 copy keeps
it quantized and has none to read (word_scores still works on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.scoring.predictor import Predictor

# The clean-rows path (core.export.passes.clean_rows) holds the embedding folded into the first layer's input weights:
# a [num_words, units] table too, but not the embedding.
_FOLDED_PREFIX = "clean_rows/"


@dataclass(frozen=True)
class WordScores:
    """Each word of the vocabulary scored alone: the probability the model gives the review made of that word only."""

    words: tuple[str, ...]  # in id order, the ids that are words (index_from + 1 up to num_words - 1)
    ids: np.ndarray  # int [words]
    scores: np.ndarray  # float32 [words]: positive probability of [start, word]
    baseline: float  # the start id alone: where a word moves the score from

    def most(self, count: int, positive: bool = True) -> list[tuple[str, float]]:
        """The count most positive (or most negative) words, most extreme first."""
        order = np.argsort(-self.scores if positive else self.scores, kind="stable")[:count]
        return [(self.words[index], float(self.scores[index])) for index in order]

    def rank_of(self, word: str) -> tuple[int, float] | None:
        """(rank from the most positive, 1-based; score) of one word, or None when it is not in the vocabulary."""
        try:
            index = self.words.index(word)
        except ValueError:
            return None
        rank = int(np.sum(self.scores > self.scores[index])) + 1
        return rank, float(self.scores[index])


def word_scores(predictor: Predictor) -> WordScores:
    """Every word of the file's vocabulary scored alone, in one call of Predictor.probabilities (batched inside)."""
    vocabulary = predictor.metadata.vocabulary
    first = vocabulary.index_from + 1  # words[0] is the reserved slot
    ids = np.arange(first, first + vocabulary.size, dtype=np.int64)
    rows = predictor.pad([[vocabulary.start_id, int(word_id)] for word_id in ids])
    scores = predictor.probabilities(rows)
    start = predictor.probabilities(predictor.pad([[vocabulary.start_id]]))
    return WordScores(
        words=tuple(vocabulary.words[1 : 1 + len(ids)]), ids=ids, scores=scores, baseline=float(start[0])
    )


def file_embedding(model_proto, num_words: int) -> np.ndarray | None:
    """The float [num_words, dim] table the graph's first Gather reads the ids from, or None (an int8 copy)."""
    from onnx import numpy_helper

    tables = {
        tensor.name: tensor
        for tensor in model_proto.graph.initializer
        if len(tensor.dims) == 2 and tensor.dims[0] == num_words and not tensor.name.startswith(_FOLDED_PREFIX)
    }
    for node in _nodes(model_proto.graph):
        if node.op_type == "Gather" and node.input and node.input[0] in tables:
            table = numpy_helper.to_array(tables[node.input[0]])
            return table.astype(np.float32) if table.dtype.kind == "f" else None
    return None


def _nodes(graph):
    """Every node of graph and of its subgraphs (an If's branches, a Scan's body), depth first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in (attribute.g, *attribute.graphs) if attribute.HasField("g") else attribute.graphs:
                yield from _nodes(subgraph)


def nearest_words(embedding: np.ndarray, words: Sequence[str], word: str, count: int = 10) -> list[tuple[str, float]]:
    """The count words whose learned vectors point most nearly the same way as word's (cosine similarity), nearest
    first; words[i] is the word of row i + first id (as WordScores.words); [] when word is not among them."""
    try:
        index = list(words).index(word)
    except ValueError:
        return []
    vectors = _unit_rows(embedding)
    similarity = vectors @ vectors[index]
    similarity[index] = -np.inf
    order = np.argsort(-similarity, kind="stable")[:count]
    return [(words[position], float(similarity[position])) for position in order]


def word_map(embedding: np.ndarray, words: Sequence[str], chosen: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The chosen words that are in the vocabulary and their learned vectors projected on the two main directions of
    those vectors (PCA by SVD): (words, [n, 2])."""
    index = {word: position for position, word in enumerate(words)}
    kept = [word for word in dict.fromkeys(chosen) if word in index]
    if not kept:
        return [], np.zeros((0, 2), dtype=np.float32)
    vectors = embedding[[index[word] for word in kept]].astype(np.float64)
    centred = vectors - vectors.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    points = centred @ directions[:2].T
    if points.shape[1] < 2:  # one word, or all on one line
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    return kept, points.astype(np.float32)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)
