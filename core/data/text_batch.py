"""The imdb-v1 text rule for many reviews at once, in NumPy and pyarrow: the ids of core.data.text, several times faster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.data.text import INDEX_FROM, PAD_ID, RESERVED_WORD, Encoded, Vocabulary

# How it matches core.data.text, step by step (tests/test_text_batch.py checks each claim over every code point):
# - Reviews with a non-ASCII character are lower-cased by Python's own str.lower, one review at a time, after the
#   curly apostrophes are straightened, exactly as core.data.text.normalize does; ASCII reviews are lower-cased by a byte
#   table, which is the same thing for ASCII. So İ, final sigma and every Unicode-version question get Python's answer.
# - A character is part of a word when Python's str.isalnum says so: that is the regex class [^\W_] of core.data.text.
#   ASCII bytes are classified by a table, other characters by a table of str.isalnum over all code points, indexed by
#   the code point decoded from the UTF-8 bytes.
# - '<br\s*/?>' (any case) is found in the bytes; its 'b' and 'r' stop being word characters, which is all that
#   replacing it by a space changes. Matching after lower-casing is the same: only 'B' and 'b' match 'b' (and 'R', 'r'
#   'r') under Python's IGNORECASE, and no other character lower-cases to one of the pattern's characters.
# - An apostrophe belongs to a word only between two word characters; a word is then a run of word bytes.
# - Reviews are joined by NUL bytes, a separator, so no word spans two reviews and each is lower-cased on its own.

# Python's \s: the separators the line-break pattern allows between 'br' and '/>'.
PYTHON_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Texts in one pass of the vectorized steps: about 2.6 MB of reviews, small enough to stay in the CPU caches.
CHUNK_TEXTS = 2048
# Rows padded at a time by EncodedBatch.padded: its temporaries stay a few megabytes.
_PAD_BLOCK = 1024
# Below this many texts, core.data.text's per-review Python path is faster: measured here, one review takes 0.02 ms there
# and 0.6 ms here (fixed costs), 16 reviews 0.9 ms either way, 64 reviews 3.8 ms there and 1.5 ms here.
MIN_BATCH = 16

_APOSTROPHE, _LESS, _SLASH, _GREATER, _B, _R = (ord(c) for c in "'</>br")
# ASCII bytes lower-cased, every ASCII byte that is not a letter, a digit or an apostrophe turned into NUL (a
# separator); bytes of non-ASCII characters kept for the code-point step.
_LOWER_WORDS = bytes(
    (byte | 32) if 65 <= byte <= 90 else byte if byte >= 128 or byte == _APOSTROPHE or chr(byte).isalnum() else 0
    for byte in range(256)
)
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[ord(c) for c in PYTHON_SPACES if ord(c) < 128]] = True
# The non-ASCII spaces by their UTF-8 bytes, as integers: two-byte ones and three-byte ones.
_SPACES_2 = np.array([int.from_bytes(c.encode(), "big") for c in PYTHON_SPACES if len(c.encode()) == 2])
_SPACES_3 = np.array([int.from_bytes(c.encode(), "big") for c in PYTHON_SPACES if len(c.encode()) == 3])


@cache
def word_characters() -> np.ndarray:
    """bool [0x110000]: Python's str.isalnum of every code point, the word class of core.data.text (built once, 0.06 s)."""
    return np.fromiter((chr(point).isalnum() for point in range(0x110000)), dtype=bool, count=0x110000)


@dataclass(frozen=True)
class TokenBatch:
    """The words of a batch of texts: every text's words concatenated, and how many words each text has."""

    words: pa.ChunkedArray  # large_string: the words of text 0, then of text 1, ...
    counts: np.ndarray  # int64 [texts]
    chunk_texts: tuple[int, ...]  # texts in each chunk of words (the chunks are worked on one at a time)

    def __len__(self) -> int:
        return len(self.counts)

    def token_lists(self) -> list[list[str]]:
        """The words of each text, as core.data.text.tokenize gives them."""
        words = self.words.to_pylist()
        bounds = np.concatenate([[0], np.cumsum(self.counts)]).tolist()
        return [words[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of texts as ids, laid out like core.data.splits.Split: the start id then one id a word, text after text."""

    values: np.ndarray  # int32: every text's ids, concatenated
    offsets: np.ndarray  # int64 [texts + 1]: text i is values[offsets[i]:offsets[i + 1]]
    tokens: np.ndarray  # int64 [texts]: words found in each text
    unknown: np.ndarray  # int64 [texts]: words outside the vocabulary

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def sequences(self) -> list[np.ndarray]:
        """One id array a text (views of values)."""
        return np.split(self.values, self.offsets[1:-1]) if len(self) else []

    def padded(
        self, rows: np.ndarray, width: int, padding: str = "pre", truncating: str = "pre", pad_id: int = PAD_ID
    ) -> np.ndarray:
        """pad_sequences([self.ids(row) for row in rows], width, padding, truncating, pad_id), without a Python loop
        a row: an int32 array (len(rows), width)."""
        if padding not in ("pre", "post") or truncating not in ("pre", "post"):
            raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r} and {truncating!r}")
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full((len(rows), width), pad_id, dtype=np.int32)
        columns = np.arange(width)
        for block in range(0, len(rows), _PAD_BLOCK):  # bounded temporaries, however many rows
            picked = rows[block : block + _PAD_BLOCK]
            starts, stops = self.offsets[picked], self.offsets[picked + 1]
            kept = np.minimum(stops - starts, width)
            first = stops - kept if truncating == "pre" else starts
            # Where each column reads in the kept ids (0 to kept - 1), or outside that range for a padded column.
            position = columns - (width - kept)[:, None] if padding == "pre" else columns + 0 * kept[:, None]
            inside = (position >= 0) & (position < kept[:, None])
            out[block : block + len(picked)][inside] = self.values[(first[:, None] + position)[inside]]
        return out

    def encoded(self) -> list[Encoded]:
        """What core.data.text.Vocabulary.encode gives for each text."""
        return [
            Encoded(ids=ids.tolist(), tokens=int(tokens), unknown=int(unknown))
            for ids, tokens, unknown in zip(self.sequences(), self.tokens, self.unknown)
        ]

    @classmethod
    def concatenate(cls, parts: Sequence["EncodedBatch"]) -> "EncodedBatch":
        if len(parts) == 1:
            return parts[0]
        shifts = np.cumsum([0] + [len(part.values) for part in parts[:-1]])
        offsets = [np.zeros(1, dtype=np.int64)] + [part.offsets[1:] + shift for part, shift in zip(parts, shifts)]
        return cls(
            np.concatenate([part.values for part in parts]) if parts else np.zeros(0, dtype=np.int32),
            np.concatenate(offsets),
            np.concatenate([part.tokens for part in parts]) if parts else np.zeros(0, dtype=np.int64),
            np.concatenate([part.unknown for part in parts]) if parts else np.zeros(0, dtype=np.int64),
        )

    @classmethod
    def from_encoded(cls, items: Sequence[Encoded]) -> "EncodedBatch":
        lengths = np.array([len(item.ids) for item in items], dtype=np.int64)
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((i for item in items for i in item.ids), dtype=np.int32, count=int(offsets[-1]))
        return cls(
            values,
            offsets,
            np.array([item.tokens for item in items], dtype=np.int64),
            np.array([item.unknown for item in items], dtype=np.int64),
        )


def _joined_bytes(texts: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """The texts, normalized up to line breaks, as UTF-8 joined by NUL (one NUL before and a few after), and where
    each text ends in it."""
    parts = [
        text.encode() if text.isascii()
        else text.replace("\u2019", "'").replace("\u2018", "'").lower().encode("utf-8", "surrogatepass")
        for text in texts
    ]
    ends = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + 1)
    return b"\0" + b"\0".join(parts) + b"\0\0\0\0", ends


def _drop_non_word_characters(raw: np.ndarray, words: np.ndarray) -> None:
    """Zero, in words, the bytes of non-ASCII characters that are not letters or digits (the bytes are Python's own
    UTF-8, so every sequence is well formed)."""
    high = np.flatnonzero(raw >= 128)
    if not len(high):
        return
    leads = high[raw[high] >= 0xC0]
    lead = raw[leads].astype(np.uint32)
    size = 2 + (lead >= 0xE0) + (lead >= 0xF0)
    byte1, byte2, byte3 = (raw[leads + k].astype(np.uint32) & 0x3F for k in (1, 2, 3))
    point = np.where(
        size == 2,
        ((lead & 0x1F) << 6) | byte1,
        np.where(size == 3, ((lead & 0x0F) << 12) | (byte1 << 6) | byte2, ((lead & 0x07) << 18) | (byte1 << 12)
                 | (byte2 << 6) | byte3),
    )
    dropped = ~word_characters()[np.minimum(point, 0x10FFFF)]
    starts, sizes = leads[dropped], size[dropped]
    for k in range(4):
        words[starts[sizes > k] + k] = 0


def _space_length(raw: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Bytes of the Python \\s character at each position (0 when it is not one)."""
    length = _ASCII_SPACE[raw[at]].astype(np.int64)
    high = np.flatnonzero(raw[at] >= 0xC2)
    if len(high):
        where = at[high]
        two = (raw[where].astype(np.int64) << 8) | raw[where + 1]
        three = (two << 8) | raw[where + 2]
        length[high] = np.where(np.isin(two, _SPACES_2), 2, np.where(np.isin(three, _SPACES_3), 3, 0))
    return length


def _drop_line_breaks(raw: np.ndarray, words: np.ndarray) -> None:
    """Zero, in words, the 'b' and 'r' of every '<br\\s*/?>' (any case)."""
    less = np.flatnonzero(raw == _LESS)
    less = less[((raw[less + 1] | 32) == _B) & ((raw[less + 2] | 32) == _R)]
    if not len(less):
        return
    at = less + 3
    while len(step := _space_length(raw, at)) and step.any():
        at = at + step
    at = at + (raw[at] == _SLASH)
    found = less[raw[at] == _GREATER]
    words[found + 1] = 0
    words[found + 2] = 0


def _tokenize_chunk(texts: Sequence[str]) -> tuple[pa.LargeStringArray, np.ndarray]:
    joined, ends = _joined_bytes(texts)
    raw = np.frombuffer(joined, dtype=np.uint8)
    # The text as it will be cut into words: lower-case, and 0 for every byte that is not part of a word.
    words = np.frombuffer(bytearray(joined.translate(_LOWER_WORDS)), dtype=np.uint8)
    if not joined.isascii():
        _drop_non_word_characters(raw, words)
    _drop_line_breaks(raw, words)
    apostrophes = np.flatnonzero(raw == _APOSTROPHE)
    if len(apostrophes):
        before, after = words[apostrophes - 1], words[apostrophes + 1]
        kept = (before != 0) & (before != _APOSTROPHE) & (after != 0) & (after != _APOSTROPHE)
        words[apostrophes[~kept]] = 0
    in_word = words != 0
    # Runs of word bytes: the byte joined in front is a NUL, so edges alternate start, stop, start, stop...
    edges = np.flatnonzero(in_word[1:] != in_word[:-1]) + 1
    offsets = np.zeros(len(edges) // 2 + 1, dtype=np.int64)
    np.cumsum(edges[1::2] - edges[0::2], out=offsets[1:])
    characters = np.compress(in_word, words)
    tokens = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(characters))
    # A text's end (the NUL after it) may be where its last word stops, never where a word starts.
    counts = np.diff(np.searchsorted(edges, ends, side="right") // 2, prepend=0)
    return tokens, counts


def tokenize_batch(texts: Sequence[str]) -> TokenBatch:
    """The words of each text under the imdb-v1 rule: [core.data.text.tokenize(text) for text in texts], as arrays."""
    chunks, counts = [], []
    for start in range(0, len(texts), CHUNK_TEXTS):
        words, per_text = _tokenize_chunk(texts[start : start + CHUNK_TEXTS])
        chunks.append(words)
        counts.append(per_text)
    return TokenBatch(
        pa.chunked_array(chunks, type=pa.large_string()),
        np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64),
        tuple(len(per_text) for per_text in counts),
    )


_lookups: dict[int, tuple[Vocabulary, pa.Array, np.ndarray]] = {}


def _lookup(vocabulary: Vocabulary) -> tuple[pa.Array, np.ndarray]:
    """The vocabulary's words and, one longer, their ids followed by the OOV id (where a missing word lands); kept
    for the last few vocabularies (a Predictor asks for the same one every chunk)."""
    cached = _lookups.get(id(vocabulary))
    if cached is None or cached[0] is not vocabulary:
        # Vocabulary.id_of's dict (a word listed twice keeps its last id), less words no text can hold: a lone
        # surrogate is never part of a word, and pyarrow's strings cannot hold one.
        index = {word: position + vocabulary.index_from for position, word in enumerate(vocabulary.words) if position}
        index = {word: token_id for word, token_id in index.items() if _encodable(word)}
        ids = np.fromiter(index.values(), dtype=np.int32, count=len(index))
        words = pa.array(list(index), type=pa.large_string())
        cached = (vocabulary, words, np.append(ids, np.int32(vocabulary.oov_id)))
        if len(_lookups) >= 8:
            _lookups.clear()
        _lookups[id(vocabulary)] = cached
    return cached[1], cached[2]


def _encodable(word: str) -> bool:
    try:
        word.encode()
    except UnicodeEncodeError:
        return False
    return True


def _encode_chunk(words: pa.Array, counts: np.ndarray, vocabulary: Vocabulary) -> EncodedBatch:
    """The texts of one chunk as ids, from their words and words a text."""
    known, ids = _lookup(vocabulary)
    texts = len(counts)
    word_ids = ids[pc.fill_null(pc.index_in(words, value_set=known), len(ids) - 1).to_numpy()]
    offsets = np.zeros(texts + 1, dtype=np.int64)
    np.cumsum(counts + 1, out=offsets[1:])
    starts = offsets[:-1]
    values = np.empty(int(offsets[-1]), dtype=np.int32)
    is_word = np.ones(len(values), dtype=bool)
    is_word[starts] = False
    values[starts] = vocabulary.start_id
    values[is_word] = word_ids
    unknown_so_far = np.zeros(len(word_ids) + 1, dtype=np.int64)
    np.cumsum(word_ids == vocabulary.oov_id, out=unknown_so_far[1:])
    first_words = starts - np.arange(texts)
    unknown = unknown_so_far[first_words + counts] - unknown_so_far[first_words]
    return EncodedBatch(values, offsets, counts.astype(np.int64), unknown)


def encode_tokens(batch: TokenBatch, vocabulary: Vocabulary) -> EncodedBatch:
    """Each text's words as ids (start id first), and its word and unknown-word counts: Vocabulary.encode_tokens."""
    if not len(batch):
        return _encode_chunk(pa.array([], type=pa.large_string()), batch.counts, vocabulary)
    bounds = np.cumsum((0, *batch.chunk_texts))
    return EncodedBatch.concatenate([
        _encode_chunk(words, batch.counts[start:stop], vocabulary)
        for words, start, stop in zip(batch.words.chunks, bounds[:-1], bounds[1:])
    ])


def encode_batch(texts: Sequence[str], vocabulary: Vocabulary) -> EncodedBatch:
    """[vocabulary.encode(text) for text in texts] as one EncodedBatch; a few texts go through core.data.text directly."""
    if len(texts) < MIN_BATCH:
        return EncodedBatch.from_encoded([vocabulary.encode(text) for text in texts])
    # Chunk by chunk from text to ids, so that each chunk's arrays stay in the CPU caches.
    return EncodedBatch.concatenate([
        _encode_chunk(*_tokenize_chunk(texts[start : start + CHUNK_TEXTS]), vocabulary)
        for start in range(0, len(texts), CHUNK_TEXTS)
    ])


def build_vocabulary(batch: TokenBatch, num_words: int) -> Vocabulary:
    """Vocabulary.build over the batch's words: ranked by count, ties by first appearance (pyarrow's value_counts
    lists values in the order they first appear, and the sort is stable)."""
    counted = pc.value_counts(batch.words)
    words = counted.field("values").to_pylist()
    counts = counted.field("counts").to_numpy()
    keep = max(num_words - INDEX_FROM - 1, 0)
    ranked = np.argsort(-counts, kind="stable")[:keep]
    return Vocabulary(words=(RESERVED_WORD, *(words[i] for i in ranked)), num_words=num_words)
