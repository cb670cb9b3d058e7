"""The text front (core.export.passes.text_front): raw reviews to the ids core.data.text makes, inside the graph."""

import unicodedata

import numpy as np
import onnx
import onnxruntime
import pytest

from core.data.load import read_reviews
from core.data.text import Vocabulary, pad_sequences
from core.export.model_file import INPUT_NAME, read_model_file, session_options
from core.export.passes.text_front import (
    LOCALE,
    TEXT_INPUT_NAME,
    TextFrontError,
    front_model,
    has_text_front,
    ids_part,
    vocabulary_keys,
    with_text_front,
)
from core.paths import DEFAULT_MODEL
from tests.float_checks import assert_close

WORDS = ("don't", "rock'n'roll", "café", "naïve", "straße", "the", "movie", "great", "i", "stanbul", "br")
WORDS += ("x'y'z'w'v",)
VOCABULARY = Vocabulary(words=("<unused>", *WORDS), num_words=3 + 1 + len(WORDS))

TRICKY = [
    "The movie was GREAT!<br /><br />I loved it.",
    "don\u2019t, DON\u2018T, don't; rock\u2019n\u2018roll and rock'n'roll",
    "x'y'z'w'v x\u2019y\u2019z\u2018w x\u2019y",  # four straight apostrophes, three curly
    "<BR/>the<br>movie<br\u00a0/>great<br\n/>i<br\t\t>",
    "<brx the <br / > movie <b>great</b>",
    "'quoted' ''twice'' it''s o'clock a'",
    "Café NAÏVE Straße 東京 ١٢٣ x²",
    "emoji 🙂 between🙂words under_score hy-phen",
    "cafe\u0301 (a combining accent ends a word in both)",
    "",
    "   ",
    "🙂🙂",
    " ".join(["the movie"] * 40),  # longer than the sequence length: truncated
]


def _session(model):
    return onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )


def _expected(texts, length, padding, truncating, skips):
    encoded = [VOCABULARY.encode(text) for text in texts]
    width = min(max(len(item.ids) for item in encoded), length) if skips else length
    return pad_sequences([item.ids for item in encoded], width, padding, truncating), encoded


@pytest.mark.parametrize("skips", [True, False])
@pytest.mark.parametrize("padding, truncating", [("pre", "pre"), ("pre", "post"), ("post", "pre"), ("post", "post")])
def test_the_front_gives_the_ids_and_counts_core_text_gives(padding, truncating, skips):
    session = _session(front_model(VOCABULARY, 24, padding, truncating, skips))
    for texts in (TRICKY, TRICKY[:2], ["🙂"], [TRICKY[-1]]):
        ids, tokens, unknown = session.run(None, {TEXT_INPUT_NAME: np.array(texts, dtype=object)})
        expected, encoded = _expected(texts, 24, padding, truncating, skips)
        assert ids.dtype == np.int32
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_array_equal(tokens, [item.tokens for item in encoded])
        np.testing.assert_array_equal(unknown, [item.unknown for item in encoded])


def test_curly_apostrophes_reach_the_straight_words_id_up_to_three_of_them():
    keys, values = vocabulary_keys(VOCABULARY)
    by_key = dict(zip(keys, values))
    assert by_key["don\u2019t"] == by_key["don\u2018t"] == by_key["don't"] == VOCABULARY.id_of("don't")
    assert sum(1 for key in keys if key.replace("\u2019", "'").replace("\u2018", "'") == "rock'n'roll") == 9
    assert [key for key in keys if key.startswith("x")] == ["x'y'z'w'v"]
    session = _session(front_model(VOCABULARY, 10, "pre", "pre", True))
    ids, _, unknown = session.run(None, {TEXT_INPUT_NAME: np.array(["x\u2019y'z'w'v"], dtype=object)})
    assert ids.tolist() == [[VOCABULARY.start_id, VOCABULARY.oov_id]] and unknown.tolist() == [1]
    # The named difference: core.data.text straightens them all first.
    assert VOCABULARY.encode("x\u2019y'z'w'v").unknown == 0


def test_every_code_point_but_the_named_ones_reads_as_core_text_reads_it():
    # Each printable code point of Unicode's planes 0-2, inside a word, alone, doubled, quoted, inside a line break and
    # in capitals: one batch a few thousand code points. The differences the module names are the only ones.
    code_points = [
        point
        for point in range(0x20, 0x30000)
        if unicodedata.category(chr(point)) not in ("Cs", "Cn", "Co") and point != 0x130
    ]
    session = _session(front_model(VOCABULARY, 40, "pre", "pre", False))
    differing = []
    for start in range(0, len(code_points), 8000):
        chunk = code_points[start : start + 8000]
        texts = [f"a{c}b {c} x{c}{c}y '{c}' <br{c}/> {c.upper()}{c} the{c}movie" for c in map(chr, chunk)]
        ids, tokens, _ = session.run(None, {TEXT_INPUT_NAME: np.array(texts, dtype=object)})
        expected, encoded = _expected(texts, 40, "pre", "pre", False)
        rows = (ids != expected).any(axis=1) | (tokens != [item.tokens for item in encoded])
        differing += [f"U+{chunk[row]:04X}" for row in np.flatnonzero(rows)]
    assert len(code_points) > 130_000
    assert differing == []


def test_the_named_differences_are_lower_case_rules_python_has_and_onnxruntime_does_not():
    words = ("i", "stanbul", "istanbul", "σοφος", "σοφοσ")
    vocabulary = Vocabulary(words=("<unused>", *words), num_words=3 + 1 + len(words))
    session = _session(front_model(vocabulary, 10, "pre", "pre", True))
    reviews = np.array(["\u0130stanbul", "\u03a3\u039f\u03a6\u039f\u03a3"], dtype=object)
    ids, tokens, _ = session.run(None, {TEXT_INPUT_NAME: reviews})
    # Python: 'i' + U+0307 (a mark, which ends the word) 'stanbul'; onnxruntime: 'istanbul'.
    assert [vocabulary.decode(ids[0][ids[0] > 0])[1:], tokens[0]] == [["istanbul"], 1]
    assert vocabulary.decode(vocabulary.encode("\u0130stanbul").ids)[1:] == ["i", "stanbul"]
    # Python lower-cases a final capital sigma to the final form; onnxruntime to the ordinary one.
    assert vocabulary.decode(ids[1][ids[1] > 0])[1:] == ["σοφοσ"]
    assert vocabulary.decode(vocabulary.encode("\u03a3\u039f\u03a6\u039f\u03a3").ids)[1:] == ["σοφος"]


@pytest.fixture(scope="module")
def shipped_text():
    _, proto, metadata = read_model_file(DEFAULT_MODEL)
    text = with_text_front(proto, metadata.vocabulary, metadata.sequence_length, metadata.padding, metadata.truncating)
    return proto, text, metadata


def test_the_text_file_passes_the_full_checker_names_its_locale_and_scores_as_the_ids_file(shipped_text):
    proto, text, metadata = shipped_text
    onnx.checker.check_model(text, full_check=True)
    assert has_text_front(text) and not has_text_front(proto)
    locales = {
        attribute.s.decode()
        for node in text.graph.node
        if node.op_type == "StringNormalizer"
        for attribute in node.attribute
        if attribute.name == "locale"
    }
    assert locales == {LOCALE}
    texts = [t for t in TRICKY if t.strip() and t != "🙂🙂"] * 5
    session, ids_session = _session(text), _session(proto)
    assert [value.name for value in session.get_inputs()] == [TEXT_INPUT_NAME]
    probability, steps, tokens, unknown = session.run(None, {TEXT_INPUT_NAME: np.array(texts, dtype=object)})
    assert steps.shape == (len(texts), 0)  # the steps switch passes through: off unless fed
    encoded = [metadata.vocabulary.encode(t) for t in texts]
    rows = pad_sequences([item.ids for item in encoded], metadata.sequence_length)
    (expected,) = ids_session.run(["probability"], {INPUT_NAME: rows})
    assert_close(probability, expected)  # two graphs: the text front's rows are only as wide as the longest review
    np.testing.assert_array_equal(tokens, [item.tokens for item in encoded])
    np.testing.assert_array_equal(unknown, [item.unknown for item in encoded])
    with_steps = session.run(None, {TEXT_INPUT_NAME: np.array(texts[:3], dtype=object), "with_steps": np.array(True)})
    assert with_steps[1].shape[0] == 3 and with_steps[1].shape[1] == max(len(item.ids) for item in encoded[:3])
    assert_close(with_steps[1][:, -1], with_steps[0][:, 0])


def test_the_ids_part_of_a_text_file_is_the_ids_graph_again(shipped_text):
    proto, text, _ = shipped_text
    part = ids_part(text)
    onnx.checker.check_model(part, full_check=True)
    assert [value.name for value in part.graph.input][0] == INPUT_NAME and not has_text_front(part)
    rows = np.random.default_rng(3).integers(0, 10_000, size=(20, 60)).astype(np.int32)
    rows[:, :10], rows[:, 10] = 0, 1
    (expected,) = _session(proto).run(["probability"], {INPUT_NAME: rows})
    (got,) = _session(part).run(["probability"], {INPUT_NAME: rows})
    assert_close(got, expected)  # the opset conversion rewrote some nodes


def test_a_file_that_has_a_front_gets_no_second_one(shipped_text):
    proto, text, metadata = shipped_text
    with pytest.raises(TextFrontError, match="already has a text front"):
        with_text_front(text, metadata.vocabulary, 500, "pre", "pre")


@pytest.mark.data
def test_every_archive_review_reaches_the_model_as_the_same_ids(imdb_archive, shipped_text):
    _, _, metadata = shipped_text
    vocabulary = metadata.vocabulary
    session = _session(front_model(vocabulary, metadata.sequence_length, "pre", "pre", False))
    reviews = 0
    for split in ("train", "test"):
        texts = [review.text for review in read_reviews(imdb_archive, split)]
        reviews += len(texts)
        for start in range(0, len(texts), 2500):
            chunk = texts[start : start + 2500]
            ids, tokens, unknown = session.run(None, {TEXT_INPUT_NAME: np.array(chunk, dtype=object)})
            encoded = [vocabulary.encode(text) for text in chunk]
            np.testing.assert_array_equal(ids, pad_sequences([item.ids for item in encoded], metadata.sequence_length))
            np.testing.assert_array_equal(tokens, [item.tokens for item in encoded])
            np.testing.assert_array_equal(unknown, [item.unknown for item in encoded])
    assert reviews == 49_992


def test_the_predictor_reads_a_text_file_as_its_ids_file(shipped_text, tmp_path):
    from core.scoring.explanation import trajectory
    from core.scoring.predictor import Predictor

    _, text, _ = shipped_text
    path = tmp_path / "model.text.onnx"
    path.write_bytes(text.SerializeToString())
    texts = [t for t in TRICKY if t.strip()]
    from_text, from_ids = Predictor.from_file(path).predict(texts), Predictor.from_file(DEFAULT_MODEL).predict(texts)
    assert [p.tokens for p in from_text] == [p.tokens for p in from_ids]
    assert_close([p.score for p in from_text], [p.score for p in from_ids])
    words, steps = trajectory(Predictor.from_file(path), TRICKY[0])
    assert len(words) == len(steps) > 5


@pytest.mark.data
def test_the_text_file_scores_the_test_split_as_the_predictor_does(imdb_archive, shipped_text):
    from core.scoring.predictor import Predictor

    _, text, _ = shipped_text
    texts = [review.text for review in read_reviews(imdb_archive, "test")]
    session = _session(text)  # plain onnxruntime: the file and the reviews, nothing of this project's code
    scores, tokens = [], []
    for start in range(0, len(texts), 1000):
        chunk = np.array(texts[start : start + 1000], dtype=object)
        probability, _, found, _ = session.run(None, {TEXT_INPUT_NAME: chunk})
        scores.append(probability[:, 0])
        tokens.append(found)
    predictions = Predictor.from_file(DEFAULT_MODEL).predict(texts)
    np.testing.assert_array_equal(np.concatenate(tokens), [p.tokens for p in predictions])
    assert_close(np.concatenate(scores), [p.score for p in predictions])
