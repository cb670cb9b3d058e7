"""One review explained for people: the words the model read, its probability after each, what each word changed,
what truncation cut and how many steps ran (explain builds it from a Predictor); and a review's text cut for a table."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.data.text import LINE_BREAK, tokenize
from core.export.model_file import label_names
from core.scoring.predictor import Prediction, Predictor, check_texts

# The padding-skip method of a masked model (core.export.passes.padding_skip): its padded steps leave the state unchanged, where
# other models start from the state the padding would have left.
MASKED_SKIP = "sequence_lens"


@dataclass(frozen=True)
class Explanation:
    """What the pages show about one review, from one tokenization."""

    prediction: Prediction  # label, score and counts, exactly as Predictor.predict gives them
    words: tuple[str, ...]  # the words the model read, in order: the review's words after truncation
    unknown: tuple[bool, ...]  # a flag a word read: outside the vocabulary, so read as <unk>
    steps: tuple[float, ...] | None  # the positive probability after each word read; None without step_probability
    baseline: float | None  # the probability of the start id alone, before any word; None when steps is None
    sequence_length: int  # ids the model reads, the start id included
    cut_side: str  # which end of a long review truncation drops: "first" ("pre") or "last" ("post") words
    steps_run: int  # recurrence steps the file ran: sequence_length, fewer when it skips the padding
    padding_skip: str | None  # the file's padding-skip method when it skipped the padding, else None
    latency_ms: float  # from text to score: tokenizing and the model run, not the chart's extra runs

    @property
    def masked_padding_skip(self) -> bool:
        """The file skipped the padding as a masked model does (its padded steps would leave the state unchanged)."""
        return self.padding_skip == MASKED_SKIP

    @property
    def words_read(self) -> int:
        return len(self.words)

    @property
    def words_cut(self) -> int:
        """Words beyond the sequence length, never read."""
        return self.prediction.tokens - len(self.words)

    @property
    def changes(self) -> tuple[float, ...] | None:
        """How much each word moved the probability from the one before it (the baseline before the first)."""
        if self.steps is None or self.baseline is None:
            return None
        return tuple(after - before for before, after in zip((self.baseline, *self.steps[:-1]), self.steps))


def read_words(words: Sequence[str], sequence_length: int, truncating: str) -> list[str]:
    """The words of a review that a model of sequence_length ids reads: the start id takes one of the places unless
    "pre" truncation cut it off with the first words; "post" truncation cuts the last words."""
    if len(words) + 1 <= sequence_length:
        return list(words)
    if truncating == "pre":
        return list(words[len(words) - sequence_length :])
    return list(words[: max(sequence_length - 1, 0)])


def steps_run(words_read: int, sequence_length: int, skips_padding: bool) -> int:
    """Recurrence steps a review takes: all sequence_length, or the start id and the words read when padding is
    skipped."""
    return min(words_read + 1, sequence_length) if skips_padding else sequence_length


# The baseline of each Predictor in use, computed once: it depends on the file alone.
_BASELINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BASELINES_LOCK = threading.Lock()


def baseline(predictor: Predictor) -> float:
    """The positive probability of the start id alone: the model's score before it reads any word."""
    with _BASELINES_LOCK:
        value = _BASELINES.get(predictor)
    if value is None:
        # Two threads may both compute it; they get the same value.
        start = predictor.pad([[predictor.metadata.vocabulary.start_id]])
        value = float(predictor.probabilities(start)[0])
        with _BASELINES_LOCK:
            _BASELINES[predictor] = value
    return value


def trajectory(predictor: Predictor, text: str) -> tuple[list[str], np.ndarray]:
    """The review's words as the model read them and the positive probability after each one; ValueError when the
    review is empty or the file has no step_probability output."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("review is empty")
    metadata = predictor.metadata
    words = tokenize(text)
    read = read_words(words, metadata.sequence_length, metadata.truncating)
    return read, predictor.step_probabilities(metadata.vocabulary.encode_tokens(words).ids, len(read))


def explain(predictor: Predictor, text: str) -> Explanation:
    """One review for people, tokenized once: its prediction (as Predictor.predict gives it), the words read, the
    probability after each (when the file has step_probability) and the baseline before them, what truncation cut,
    unknown words, and the recurrence steps run; ValueError when the review is empty."""
    check_texts([text])
    metadata = predictor.metadata
    vocabulary, length = metadata.vocabulary, metadata.sequence_length
    started = time.perf_counter()
    words = tokenize(text)
    encoded = vocabulary.encode_tokens(words)
    score = float(predictor.sequence_probabilities([encoded.ids])[0])
    (label,) = label_names([score], metadata.threshold, metadata.labels)
    prediction = Prediction(label, score, encoded.tokens, encoded.unknown, len(encoded.ids) > length)
    latency_ms = (time.perf_counter() - started) * 1000
    read = read_words(words, length, metadata.truncating)
    skip = metadata.padding_skip if predictor.skips_padding else None
    steps = start = None
    if predictor.has_trajectory:
        values = predictor.step_probabilities(encoded.ids, len(read)) if read else ()
        steps, start = tuple(float(value) for value in values), baseline(predictor)
    return Explanation(
        prediction=prediction,
        words=tuple(read),
        unknown=tuple(vocabulary.id_of(word) == vocabulary.oov_id for word in read),
        steps=steps,
        baseline=start,
        sequence_length=length,
        cut_side="first" if metadata.truncating == "pre" else "last",
        steps_run=steps_run(len(read), length, predictor.skips_padding),
        padding_skip=str(skip.get("method", "")) if skip else None,
        latency_ms=latency_ms,
    )


def paragraphs(text: str) -> list[str]:
    """A review's paragraphs: its <br /> tags are the breaks (core.data.text's rule), blank ones dropped."""
    return [part.strip() for part in LINE_BREAK.split(text) if part.strip()]


def first_words(text: str | None, count: int) -> str:
    """The first count words of a review as typed (line-break tags as spaces), " ..." when there are more."""
    if text is None:
        return ""
    words = LINE_BREAK.sub(" ", text).split()
    return " ".join(words[:count]) + (" ..." if len(words) > count else "")
