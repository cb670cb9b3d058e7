"""How far back a model remembers: a strongly positive (and a negative) phrase placed d words before the end of neutral
filler, scored for every distance d, so the fading of an early signal (section 6.2's reason to leave SimpleRNN for LSTM
and GRU) shows as a curve. Plain NumPy around any scorer: an exported file's Predictor or a run's NumPy loop.

Every probe row fills the whole window (the start id, then sequence_length - 1 words), so padding and truncation play no
part: only where the phrase sits changes from row to row. The phrases and the filler are this project's own text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.data.text import Vocabulary
from core.model.backward import fall_to_half

# Written for this project (no review copied): plain, neutral sentences of common words, and two short verdicts.
FILLER = (
    "the story takes place in a small town where people go to work in the morning and come home in the evening . "
    "there is a man who lives with his family and a woman who works at the station . the film follows them over one "
    "year , from the first day of school to the last day of summer , and the camera stays with them most of the time ."
)
POSITIVE_PHRASE = "a wonderful film , brilliant and moving , one of the best i have seen"
NEGATIVE_PHRASE = "an awful film , boring and stupid , one of the worst i have seen"
# At most this many distances are scored (two rows each): the chart needs no more, and a long sequence_length
# (up to 5,000) stays a bounded amount of work on a shared server.
MAX_DISTANCES = 512

Score = Callable[[np.ndarray], np.ndarray]  # int32 [rows, sequence_length] ids -> positive probabilities [rows]


@dataclass(frozen=True)
class Probe:
    """The texts a memory probe reads: two phrases of opposite sentiment and the neutral filler around them."""

    positive: str = POSITIVE_PHRASE
    negative: str = NEGATIVE_PHRASE
    filler: str = FILLER


@dataclass(frozen=True, eq=False)
class MemoryCurve:
    """The positive probability with each phrase d words before the end, for the scored distances d."""

    distances: np.ndarray  # int [points]: words between the phrase's last word and the end, 0 = the phrase ends it
    positive: np.ndarray  # float [points]: probability with the positive phrase at that distance
    negative: np.ndarray  # float [points]: the same with the negative phrase
    filler_only: float  # the probability of the filler alone, with no phrase
    phrase_words: tuple[int, int]  # words in the positive and the negative phrase
    unknown_words: int  # words of the phrases and the filler outside the vocabulary (read as <unk>)

    @property
    def gap(self) -> np.ndarray:
        """How far apart the two phrases leave the model at each distance: what it still remembers of them."""
        return self.positive - self.negative

    def half_distance(self) -> int | None:
        """The first scored distance at which the gap has fallen to half its value with the phrases at the end, or None
        when it never does within the window (or the phrases make no difference to begin with)."""
        index = fall_to_half(self.gap)
        return None if index is None else int(self.distances[index])


def probe_review(probe: Probe, words: int) -> str:
    """A long review made of the probe's texts: the positive phrase, then the filler repeated to words words in all,
    so that what the model makes of its first words shows across the whole window."""
    filler = probe.filler.split()
    if not filler:
        return probe.positive
    return " ".join([probe.positive, *np.resize(np.asarray(filler, dtype=object), max(words, 0)).tolist()])


def _words(vocabulary: Vocabulary, text: str) -> list[int]:
    return vocabulary.encode(text).ids[1:]  # without the start id


def probe_distances(sequence_length: int, phrase_words: int, max_points: int = MAX_DISTANCES) -> np.ndarray:
    """The distances scored: every one from 0 to the farthest that fits in the window, or max_points spread evenly
    over them (0 and the farthest included)."""
    farthest = sequence_length - 1 - phrase_words
    if farthest < 0:
        raise ValueError(
            f"a phrase of {phrase_words} words does not fit in {sequence_length} steps (the start id takes one)"
        )
    if farthest + 1 <= max_points:
        return np.arange(farthest + 1)
    return np.unique(np.round(np.linspace(0, farthest, max_points)).astype(int))


def probe_rows(filler: list[int], phrase: list[int], start_id: int, sequence_length: int, distances) -> np.ndarray:
    """int32 [len(distances), sequence_length]: the start id, then the filler words with the phrase inserted so that d
    filler words follow it. Every row holds the same filler words in the same order; only the phrase moves."""
    around = sequence_length - 1 - len(phrase)
    stream = np.resize(np.asarray(filler, dtype=np.int32), around)  # the filler repeated to fill the window
    rows = np.empty((len(distances), sequence_length), dtype=np.int32)
    rows[:, 0] = start_id
    for row, distance in zip(rows, distances):
        cut = around - int(distance)
        row[1:] = np.concatenate([stream[:cut], phrase, stream[cut:]])
    return rows


def memory_curve(
    score: Score, vocabulary: Vocabulary, sequence_length: int, probe: Probe = Probe(), max_points: int = MAX_DISTANCES
) -> MemoryCurve:
    """Score the probe's rows with score (one call for both phrases and the filler alone); ValueError when a text
    holds no word or a phrase does not fit in the window."""
    filler, positive, negative = (_words(vocabulary, text) for text in (probe.filler, probe.positive, probe.negative))
    for name, words in (("filler", filler), ("positive phrase", positive), ("negative phrase", negative)):
        if not words:
            raise ValueError(f"the {name} has no words: give it some text")
    distances = probe_distances(sequence_length, max(len(positive), len(negative)), max_points)
    start = vocabulary.start_id
    filler_only = np.concatenate([[start], np.resize(np.asarray(filler, dtype=np.int32), sequence_length - 1)])
    rows = np.concatenate(
        [
            probe_rows(filler, positive, start, sequence_length, distances),
            probe_rows(filler, negative, start, sequence_length, distances),
            filler_only[np.newaxis].astype(np.int32),
        ]
    )
    scores = np.asarray(score(rows), dtype=np.float64).reshape(-1)
    if scores.shape != (len(rows),):
        raise ValueError(f"the scorer returned {scores.shape[0]} probabilities for {len(rows)} rows")
    count = len(distances)
    oov = vocabulary.oov_id
    return MemoryCurve(
        distances=distances,
        positive=scores[:count],
        negative=scores[count : 2 * count],
        filler_only=float(scores[-1]),
        phrase_words=(len(positive), len(negative)),
        unknown_words=sum(words.count(oov) for words in (filler, positive, negative)),
    )
