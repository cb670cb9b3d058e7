"""The text rules: tokenizer conventions, vocabulary ranks and ids, encode/decode, pad_sequences against Keras."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.text import (
    NORMALIZATION,
    OOV_ID,
    OOV_TOKEN,
    PAD_TOKEN,
    RESERVED_WORD,
    START_ID,
    START_TOKEN,
    Vocabulary,
    normalize,
    pad_sequences,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Great film.<br /><br />Loved it", ["great", "film", "loved", "it"]),
        ("one<br/>two<BR>three<br  />four", ["one", "two", "three", "four"]),
        ("Hello, world!!! ...Really?! (yes) -- \"no\"", ["hello", "world", "really", "yes", "no"]),
        ("I don't think rock'n'roll is dead", ["i", "don't", "think", "rock'n'roll", "is", "dead"]),
        ("'quoted' words and the actors' work", ["quoted", "words", "and", "the", "actors", "work"]),
        ("It doesn\u2019t matter", ["it", "doesn't", "matter"]),
        ("LOUD Quiet MiXeD", ["loud", "quiet", "mixed"]),
        ("Am\u00e9lie na\u00efve \u6771\u4eac \u0417\u0432\u0435\u0437\u0434\u0430",
         ["am\u00e9lie", "na\u00efve", "\u6771\u4eac", "\u0437\u0432\u0435\u0437\u0434\u0430"]),
        ("great \U0001f600\U0001f44d fun\u2764\ufe0f", ["great", "fun"]),
        ("10/10, snake_case", ["10", "10", "snake", "case"]),
        ("", []),
        ("  \n\t ", []),
    ],
)
def test_tokenize_follows_the_imdb_v1_rule(text, tokens):
    assert tokenize(text) == tokens


def test_normalize_lowercases_and_replaces_breaks_and_curly_apostrophes():
    assert normalize("A<br />B\u2018c\u2019") == "a b'c'"
    assert NORMALIZATION == "imdb-v1"


def test_build_ranks_by_frequency_with_ties_by_first_appearance():
    corpus = [["b", "a", "c"], ["a", "c", "d"], ["a", "e"]]  # a: 3, c: 2, b/d/e: 1 (b appears first)
    vocabulary = Vocabulary.build(corpus, num_words=100)
    assert vocabulary.words == (RESERVED_WORD, "a", "c", "b", "d", "e")
    # The off-by-three check: the most frequent word has id 4 (0 pad, 1 start, 2 OOV, 3 never a word).
    assert vocabulary.id_of("a") == 4
    assert vocabulary.id_of("c") == 5
    assert vocabulary.decode([4, 5, 6]) == ["a", "c", "b"]
    assert vocabulary.size == 5


def test_num_words_cuts_the_vocabulary_so_every_id_is_below_it():
    corpus = [[f"w{i}"] * (100 - i) for i in range(50)]  # w0 most frequent, w49 least
    vocabulary = Vocabulary.build(corpus, num_words=10)
    assert vocabulary.words == (RESERVED_WORD, *(f"w{i}" for i in range(6)))
    assert max(vocabulary.id_of(f"w{i}") for i in range(6)) == 9
    assert vocabulary.id_of("w6") == OOV_ID
    ids = vocabulary.encode(" ".join(f"w{i}" for i in range(50))).ids
    assert max(ids) < 10
    assert ids.count(OOV_ID) == 44


def test_encode_and_decode_round_trip():
    vocabulary = Vocabulary.build([tokenize("the movie was good, the acting was bad")], num_words=1000)
    encoded = vocabulary.encode("The MOVIE was good!<br />Unseen words here")
    assert encoded.ids[0] == START_ID
    assert encoded.tokens == 7
    assert encoded.unknown == 3
    assert vocabulary.decode(encoded.ids) == [START_TOKEN, "the", "movie", "was", "good", *[OOV_TOKEN] * 3]
    in_vocabulary = "the acting was good"
    assert vocabulary.decode(vocabulary.encode(in_vocabulary).ids)[1:] == tokenize(in_vocabulary)
    assert vocabulary.decode([0, 1, 2, 3, 10_000]) == [PAD_TOKEN, START_TOKEN, OOV_TOKEN, OOV_TOKEN, OOV_TOKEN]


def test_from_word_index_matches_keras_ids():
    # Keras's imdb_word_index.json: word -> rank from 1; load_data gives that word the id rank + 3.
    word_index = {"the": 1, "and": 2, "a": 3, "of": 4, "rare": 50}
    vocabulary = Vocabulary.from_word_index(word_index, num_words=8)
    assert vocabulary.id_of("the") == 4
    assert vocabulary.id_of("of") == 7
    assert vocabulary.id_of("rare") == OOV_ID  # 53 >= num_words
    assert vocabulary.decode([4, 5, 6, 7]) == ["the", "and", "a", "of"]


def test_vocabulary_round_trips_through_a_dict_and_checks_the_rule():
    vocabulary = Vocabulary.build([["x", "y", "x"]], num_words=20)
    assert Vocabulary.from_dict(vocabulary.to_dict()) == vocabulary
    with pytest.raises(ValueError, match="normalization"):
        Vocabulary.from_dict({**vocabulary.to_dict(), "normalization": "other-v9"})
    with pytest.raises(ValueError, match="missing"):
        Vocabulary.from_dict({"num_words": 20})


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_sequences_equals_keras(padding, truncating):
    from keras.utils import pad_sequences as keras_pad_sequences

    random = np.random.RandomState(7)
    sequences = [list(random.randint(1, 1000, size=random.randint(0, 40))) for _ in range(200)]
    for length in (1, 5, 20, 60):
        ours = pad_sequences(sequences, length, padding=padding, truncating=truncating)
        theirs = keras_pad_sequences(sequences, maxlen=length, padding=padding, truncating=truncating, value=0)
        assert ours.dtype == np.int32
        np.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_rejects_an_unknown_side():
    with pytest.raises(ValueError, match="padding and truncating"):
        pad_sequences([[1, 2]], 4, padding="middle")


_VOCABULARY = Vocabulary.build(
    [tokenize("a small corpus, with words: the film, the plot, l'amour, na\u00efve caf\u00e9 \u6771\u4eac")],
    num_words=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_tokenize_never_raises_and_encoded_ids_stay_below_num_words(text):
    tokens = tokenize(text)
    assert all(token and token == token.lower() for token in tokens)
    encoded = _VOCABULARY.encode(text)
    assert all(0 <= token_id < _VOCABULARY.num_words for token_id in encoded.ids)
    assert len(encoded.ids) == len(tokens) + 1
    assert len(_VOCABULARY.decode(encoded.ids)) == len(encoded.ids)
