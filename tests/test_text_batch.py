"""The vectorized tokenizer against core.data.text, its reference: every code point, hypothesis strings, named traps, and
every review of both splits of the real archive."""

import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import text_batch as fast_text
from core.data.load import read_reviews
from core.data.text_batch import (
    MIN_BATCH,
    PYTHON_SPACES,
    EncodedBatch,
    build_vocabulary,
    encode_batch,
    encode_tokens,
    tokenize_batch,
    word_characters,
)
from core.data.text import LINE_BREAK, Encoded, Vocabulary, pad_sequences, tokenize
from core.export.model_file import label_names

ALL_CHARACTERS = "".join(map(chr, range(sys.maxunicode + 1)))


# Long words and their prefixes, in the vocabulary and out of it.
LONG_WORDS = ["abcdefgh", "abcdefghi", "abcdefghijklmnop", "abcdefghijklmnopq", "abcdefghijklmnopqrstuvwxyz", "ééééé"]


def _assert_exact(texts, vocabulary=None):
    """The vectorized path (never the per-review shortcut) gives core.data.text's tokens, ids and counts."""
    texts = list(texts)
    expected_tokens = [tokenize(text) for text in texts]
    batch = tokenize_batch(texts)
    assert batch.token_lists() == expected_tokens
    if vocabulary is None:
        # Small, so that there are known and unknown words, with long ones among them.
        vocabulary = Vocabulary.build([*expected_tokens, *[LONG_WORDS] * 3], num_words=60)
    expected = [vocabulary.encode(text) for text in texts]
    assert encode_tokens(batch, vocabulary).encoded() == expected
    if len(texts) >= MIN_BATCH:  # the Predictor's path: text to ids chunk by chunk
        assert encode_batch(texts, vocabulary).encoded() == expected


# ---- the claims in core/data/text_batch.py, over every code point --------------------------------------------------------


def test_word_characters_are_python_regex_word_class():
    marked = re.sub(r"[^\W_]", "\x01", ALL_CHARACTERS.replace("\x01", "\x02"))
    python = np.frombuffer(marked.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) == 1
    assert np.array_equal(word_characters(), python)


def test_python_spaces_are_the_regex_whitespace_class():
    assert set(PYTHON_SPACES) == set(re.findall(r"\s", ALL_CHARACTERS))


def test_line_break_pattern_survives_lower_casing():
    """Matching '<br\\s*/?>' after str.lower is the same as before: only B/b match b (R/r match r) under IGNORECASE,
    and no other character lower-cases to one of the pattern's characters or to a space."""
    for letter in "br":
        assert set(re.findall(f"(?i){letter}", ALL_CHARACTERS)) == {letter, letter.upper()}
    pattern_characters = set("<br/>") | set(PYTHON_SPACES)
    for character in ALL_CHARACTERS:
        lowered = character.lower()
        if lowered != character and pattern_characters & set(lowered):
            assert character in "BR", f"U+{ord(character):04X} lower-cases to {lowered!r}"


@pytest.mark.slow  # 5 to 20 s: 35 million characters through both tokenizers
def test_every_code_point_alone_and_between_words():
    """Each code point in the contexts the rule cares about: alone, inside a word, by an apostrophe, in a break."""
    contexts = [f"a{c}b {c}'{c} <br{c}/>x{c}\u03a3{c}" for c in ALL_CHARACTERS]
    texts = [" ".join(contexts[start : start + 64]) for start in range(0, len(contexts), 64)]
    _assert_exact(texts)


# ---- named traps -----------------------------------------------------------------------------------------------------

NAMED = {
    "vulgar fraction": "a ½ b 3½",
    "combining accent": "cafe\u0301 café",
    "dotted capital I": "İstanbul İİ xİ",
    "final sigma": "ΟΔΟΣ ΟΔΟΣ. Σ ΑΣ'Σ ΑΣ\u0301 ΣΑ",
    "file separator": "one\x1ctwo\x1dthree <br\x1c/>four",
    "NUL": "a\x00b \x00 <br\x00/>",
    "rock'n'roll": "rock'n'roll rock''n''roll",
    "''quoted''": "''quoted'' 'single' a'' ''b",
    "don't": "don't DON\u2019T don\u2018t",
    "'tis": "'tis 'Tis ''tis",
    "emoji": "great \U0001f600\U0001f44d fun\u2764\ufe0f \U0001f468\u200d\U0001f469",
    "full-width digits": "\uff11\uff10/\uff11\uff10 \uff21\uff22",
    "Chinese": "\u8fd9\u90e8\u7535\u5f71\u5f88\u597d\u770b\u3002\u6211\u559c\u6b22",
    "<BR/>": "one<BR/>two<Br>three<bR />four",
    "<br >": "one<br >two<br\t\n>three<br\u3000/>four<br\xa0\x85/>five",
    "not a break": "<b>bold</b> <brr> <br/ > <br// > <br<br>> <bra> < br>",
    "lone surrogate": "a\ud800b \udfff",
    "Kelvin and long s": "\u212a\u017fk <\u212ar> <b\u017f>",
    "empty": "",
    "spaces only": "  \n\t ",
    "apostrophe only": "'",
    "break only": "<br />",
    "long words": " ".join(LONG_WORDS + [w[:-1] for w in LONG_WORDS] + [w + "x" for w in LONG_WORDS]),
}


@pytest.mark.parametrize("name", list(NAMED))
def test_named_case(name):
    text = NAMED[name]
    # In a batch of other texts on both sides, so that a word crossing the joins would show.
    _assert_exact(["x'", text, "'y", text, *NAMED.values()])


def test_very_long_texts_and_empty_ones():
    long_ascii = "Great film, don't miss it!<br /><br />" * 50_000
    long_unicode = "Ça va ΟΔΟΣ İ ½ \U0001f600 rock'n'roll " * 30_000
    _assert_exact(["", long_ascii, "", long_unicode, ""])


def test_a_vocabulary_word_no_text_can_hold_is_left_out():
    vocabulary = Vocabulary(words=("<unused>", "good", "bad\ud800", "a\x00b", "film"), num_words=20)
    texts = ["good film", "bad\ud800 a\x00b film"] * MIN_BATCH
    assert encode_batch(texts, vocabulary).encoded() == [vocabulary.encode(text) for text in texts]


def test_empty_batch():
    vocabulary = Vocabulary.build([["a"]], num_words=10)
    batch = encode_tokens(tokenize_batch([]), vocabulary)
    assert len(batch) == 0 and batch.encoded() == [] and batch.sequences() == []
    assert encode_batch([], vocabulary).encoded() == []


def test_several_chunks(monkeypatch):
    monkeypatch.setattr(fast_text, "CHUNK_TEXTS", 3)
    _assert_exact([f"text {i} with Word{i % 4} <br/>and İ{i}" for i in range(11)])


def test_encode_batch_small_and_large_agree():
    texts = [NAMED["final sigma"], "don't", "", "Great!"] * 5
    vocabulary = Vocabulary.build([tokenize(text) for text in texts], num_words=12)
    for size in (1, MIN_BATCH - 1, MIN_BATCH, len(texts)):
        got = encode_batch(texts[:size], vocabulary)
        assert got.encoded() == [vocabulary.encode(text) for text in texts[:size]]
        assert got.values.dtype == np.int32 and got.offsets.dtype == np.int64
        assert [ids.tolist() for ids in got.sequences()] == [got.ids(i).tolist() for i in range(size)]
    assert EncodedBatch.from_encoded(got.encoded()).encoded() == got.encoded()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=30), max_size=20),
    st.integers(1, 25),
    st.sampled_from(["pre", "post"]),
    st.sampled_from(["pre", "post"]),
    st.data(),
)
def test_padded_equals_pad_sequences(sequences, width, padding, truncating, data):
    batch = EncodedBatch.from_encoded([Encoded(ids=ids, tokens=len(ids) - 1, unknown=0) for ids in sequences])
    rows = data.draw(st.lists(st.integers(0, max(len(sequences) - 1, 0)), max_size=len(sequences) and 25))
    expected = pad_sequences([sequences[row] for row in rows], width, padding, truncating, value=7)
    got = batch.padded(rows, width, padding, truncating, pad_id=7)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


# ---- hypothesis ------------------------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    ["<br />", "<BR>", "<br\u3000/>", "'", "''", "\u2019", "\u2018", "\u03a3", "\u0130", "\u00bd", "\u0301", "\x1c",
     "\x00", " ", "_", "\U0001f600", "\uff11", "\u8fd9", "a", "Z", "9"]
)
WIDE_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
MIXED_TEXT = st.lists(st.one_of(FRAGMENTS, WIDE_TEXT, st.text(max_size=8)), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(WIDE_TEXT, MIXED_TEXT, st.text()), min_size=1, max_size=12))
def test_hypothesis_texts_match_the_reference(texts):
    _assert_exact(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(MIXED_TEXT, min_size=1, max_size=6), st.integers(min_value=4, max_value=30))
def test_hypothesis_vocabulary_matches_build(texts, num_words):
    tokens = [tokenize(text) for text in texts]
    assert build_vocabulary(tokenize_batch(texts), num_words) == Vocabulary.build(tokens, num_words)


# ---- the real archive ------------------------------------------------------------------------------------------------


@pytest.mark.data
def test_every_review_of_both_splits_matches_the_reference(imdb_archive):
    train = [review.text for review in read_reviews(imdb_archive, "train")]
    test = [review.text for review in read_reviews(imdb_archive, "test")]
    assert (len(train), len(test)) == (24_996, 24_996)
    train_tokens = [tokenize(text) for text in train]
    batch = tokenize_batch(train)
    assert batch.token_lists() == train_tokens
    vocabulary = Vocabulary.build(train_tokens, 10_000)
    assert build_vocabulary(batch, 10_000) == vocabulary
    assert encode_tokens(batch, vocabulary).encoded() == [vocabulary.encode_tokens(tokens) for tokens in train_tokens]
    assert encode_batch(test, vocabulary).encoded() == [vocabulary.encode(text) for text in test]
    # The archive exercises the rule's special cases: breaks, apostrophes, non-ASCII reviews.
    assert sum(LINE_BREAK.search(text) is not None for text in test) > 10_000
    assert sum(not text.isascii() for text in train + test) > 4_000


# ---- the Predictor's pipeline ----------------------------------------------------------------------------------------


def test_predict_over_several_pipeline_chunks_matches_the_per_review_path():
    """predict through core.data.text_batch and its pipeline (reviews taken in order of length, chunk by chunk) gives the
    counts of core.data.text and the scores of one sequence_probabilities call, in the order of the reviews."""
    from core.scoring.predictor import PIPELINE_CHUNK, Predictor
    from core.paths import DEFAULT_MODEL

    predictor = Predictor.from_file(DEFAULT_MODEL)
    vocabulary = predictor.metadata.vocabulary
    generator = np.random.default_rng(12)
    words = [*vocabulary.words[1:400], "zorblax", "İstanbul", "ΟΔΟΣ", "don\u2019t", "<br />", "½", "!!", "'"]
    sizes = generator.integers(1, 700, size=3 * PIPELINE_CHUNK + 7)
    texts = [" ".join(generator.choice(words, size=int(size))) for size in sizes]
    texts[5] = "\U0001f600 only"
    encoded = [vocabulary.encode(text) for text in texts]
    scores = predictor.sequence_probabilities([item.ids for item in encoded])
    got = predictor.predict(texts)
    # Counts exactly; scores as onnxruntime gives them for other batches of the same rows (float32 rounding).
    assert [(p.tokens, p.unknown_tokens, p.truncated) for p in got] == [
        (item.tokens, item.unknown, len(item.ids) > predictor.metadata.sequence_length) for item in encoded
    ]
    np.testing.assert_allclose([p.score for p in got], scores, rtol=0, atol=1e-6)
    metadata = predictor.metadata
    assert [p.label for p in got] == label_names([p.score for p in got], metadata.threshold, metadata.labels)
    assert any(prediction.truncated for prediction in got) and got[5].tokens == 1
