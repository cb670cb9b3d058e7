"""One review explained for people: the words the model read, its probability after each, what each word changed,
what truncation cut and how many steps ran (Predictor.explain builds it); and a review's text cut for a table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.data.text import LINE_BREAK

if TYPE_CHECKING:
    from core.scoring.predictor import Prediction

# The padding-skip method of a masked model (core.export.passes.padding_skip): its padded steps leave the state unchanged, where
# other models start from the state the padding would have left.
MASKED_SKIP = "sequence_lens"


@dataclass(frozen=True)
class Explanation:
    """What the pages show about one review, from one tokenization."""

    prediction: Prediction  # label, score and counts, exactly as predict() gives them
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


def paragraphs(text: str) -> list[str]:
    """A review's paragraphs: its <br /> tags are the breaks (core.data.text's rule), blank ones dropped."""
    return [part.strip() for part in LINE_BREAK.split(text) if part.strip()]


def first_words(text: str | None, count: int) -> str:
    """The first count words of a review as typed (line-break tags as spaces), " ..." when there are more."""
    if text is None:
        return ""
    words = LINE_BREAK.sub(" ", text).split()
    return " ".join(words[:count]) + (" ..." if len(words) > count else "")
