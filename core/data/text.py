"""Text to token ids and back, following the Keras IMDB conventions; NumPy only, shared by training and prediction."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np

# The name of the text rule below, stored in every run and every exported file. Change the rule, change the name.
NORMALIZATION = "imdb-v1"
NORMALIZATION_DOC = (
    "imdb-v1: lower-case; turn '<br />' into a space and curly apostrophes into straight ones; a token is a run of "
    "Unicode letters and digits, possibly joined by apostrophes inside the word (don't, rock'n'roll); everything "
    "else (punctuation, symbols, emoji, spaces) separates tokens and is dropped."
)

PAD_ID = 0
START_ID = 1
OOV_ID = 2
INDEX_FROM = 3
# Keras's IMDB word index starts at rank 1, so id 3 (rank 0) is never a word; it keeps this place in the list.
RESERVED_WORD = "<unused>"
PAD_TOKEN, START_TOKEN, OOV_TOKEN = "<pad>", "<start>", "<unk>"

LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # HTML line breaks in reviews: a space under imdb-v1
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# The same rule for ASCII text, at C speed: every byte but a-z, 0-9 and the apostrophe becomes a space.
_KEPT = b"abcdefghijklmnopqrstuvwxyz0123456789'"
_ASCII_SEPARATORS = bytes(byte if byte in _KEPT else 32 for byte in range(256))
_APOSTROPHE_RUNS = re.compile("'{2,}")


def normalize(text: str) -> str:
    """The imdb-v1 text rule up to tokenization: lower-case, line breaks and curly apostrophes replaced."""
    return LINE_BREAK.sub(" ", text).replace("\u2019", "'").replace("\u2018", "'").lower()


def tokenize(text: str) -> list[str]:
    """The words of text under the imdb-v1 rule."""
    text = normalize(text)
    if not text.isascii():
        return _TOKEN.findall(text)
    # ASCII (most reviews): the regex's result by str and bytes methods, four times faster. An apostrophe belongs to
    # a word only between two letters or digits: runs of them, and any next to a separator, separate words.
    spaced = text.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii")
    if "'" in spaced:
        if "''" in spaced:
            spaced = _APOSTROPHE_RUNS.sub(" ", spaced)
        spaced = f" {spaced} ".replace("' ", " ").replace(" '", " ")
    return spaced.split()


@dataclass(frozen=True)
class Encoded:
    """One review as the model sees it, before padding."""

    ids: list[int]  # start id, then one id per token
    tokens: int  # words found in the text
    unknown: int  # words outside the vocabulary (encoded as the out-of-vocabulary id)


@dataclass(frozen=True)
class Vocabulary:
    """Words by training-split frequency: the word at position i has id i + index_from; ids >= num_words are OOV."""

    words: tuple[str, ...]  # words[0] is RESERVED_WORD; words[1] is the most frequent word (id 4)
    num_words: int  # Keras's num_words: only ids below it are kept
    index_from: int = INDEX_FROM
    pad_id: int = PAD_ID
    start_id: int = START_ID
    oov_id: int = OOV_ID
    normalization: str = NORMALIZATION

    def __post_init__(self) -> None:
        if self.normalization != NORMALIZATION:
            raise ValueError(f"unknown text normalization {self.normalization!r}; this version knows {NORMALIZATION!r}")
        if len(self.words) > max(self.num_words - self.index_from, 0):
            object.__setattr__(self, "words", tuple(self.words[: max(self.num_words - self.index_from, 0)]))
        object.__setattr__(self, "_index", {word: i + self.index_from for i, word in enumerate(self.words) if i})

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], num_words: int) -> "Vocabulary":
        """Rank words by frequency (ties broken by first appearance) and keep those with ids below num_words."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        keep = max(num_words - INDEX_FROM - 1, 0)
        ranked = [word for word, _ in counts.most_common(keep)]
        return cls(words=(RESERVED_WORD, *ranked), num_words=num_words)

    @classmethod
    def from_word_index(cls, word_index: dict[str, int], num_words: int) -> "Vocabulary":
        """From Keras's imdb_word_index.json (word -> rank from 1)."""
        words = [RESERVED_WORD] * min(len(word_index) + 1, max(num_words - INDEX_FROM, 0))
        for word, rank in word_index.items():
            if 0 < rank < len(words):
                words[rank] = word
        return cls(words=tuple(words), num_words=num_words)

    @property
    def size(self) -> int:
        """Number of real words with an id (the reserved slot not counted)."""
        return max(len(self.words) - 1, 0)

    def id_of(self, word: str) -> int:
        """The id of one normalized word, or the OOV id."""
        return self._index.get(word, self.oov_id)

    def encode_tokens(self, tokens: Sequence[str]) -> Encoded:
        oov = self.oov_id
        ids = [self.start_id]
        ids.extend(map(self._index.get, tokens, repeat(oov)))
        return Encoded(ids=ids, tokens=len(tokens), unknown=ids.count(oov))

    def encode(self, text: str) -> Encoded:
        """Text to ids: start id, then one id per token."""
        return self.encode_tokens(tokenize(text))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids back to words; pad, start and OOV ids become <pad>, <start> and <unk>."""
        special = {self.pad_id: PAD_TOKEN, self.start_id: START_TOKEN, self.oov_id: OOV_TOKEN}
        out = []
        for token_id in ids:
            token_id = int(token_id)
            position = token_id - self.index_from
            if token_id in special:
                out.append(special[token_id])
            elif 0 < position < len(self.words):
                out.append(self.words[position])
            else:
                out.append(OOV_TOKEN)
        return out

    def to_dict(self) -> dict:
        return {
            "words": list(self.words),
            "num_words": self.num_words,
            "index_from": self.index_from,
            "pad_id": self.pad_id,
            "start_id": self.start_id,
            "oov_id": self.oov_id,
            "normalization": self.normalization,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        try:
            return cls(
                words=tuple(data["words"]),
                num_words=int(data["num_words"]),
                index_from=int(data.get("index_from", INDEX_FROM)),
                pad_id=int(data.get("pad_id", PAD_ID)),
                start_id=int(data.get("start_id", START_ID)),
                oov_id=int(data.get("oov_id", OOV_ID)),
                normalization=str(data.get("normalization", NORMALIZATION)),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"vocabulary is missing or has a bad field: {error}") from None


def pad_sequences(
    sequences: Sequence[Sequence[int]], length: int, padding: str = "pre", truncating: str = "pre", value: int = PAD_ID
) -> np.ndarray:
    """keras.utils.pad_sequences for int ids, in NumPy: an int32 array of shape (len(sequences), length)."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r} and {truncating!r}")
    out = np.full((len(sequences), length), value, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        if not len(sequence):
            continue
        kept = sequence[-length:] if truncating == "pre" else sequence[:length]
        if padding == "pre":
            out[row, length - len(kept) :] = kept
        else:
            out[row, : len(kept)] = kept
    return out


def vocabulary_map(source: Vocabulary, target: Vocabulary) -> np.ndarray:
    """A table that turns ids of source into the ids target gives the same words (OOV where target lacks one)."""
    table = np.full(source.num_words, target.oov_id, dtype=np.int32)
    table[source.pad_id] = target.pad_id
    table[source.start_id] = target.start_id
    for position, word in enumerate(source.words):
        token_id = position + source.index_from
        if position and token_id < source.num_words:
            table[token_id] = target.id_of(word)
    return table
