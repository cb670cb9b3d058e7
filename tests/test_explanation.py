"""Predictor.explain against predict(), the step outputs and a NumPy forward pass, on hand-built and shipped files."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from core import paths
from core.scoring import explanation as explaining
from core.data import text
from core.data.examples import EXAMPLE_REVIEWS
from core.scoring.explanation import baseline, explain, first_words, paragraphs, read_words, steps_run, trajectory
from core.scoring.predictor import Predictor
from tests.hand_built_file import SEQUENCE_LENGTH, VOCABULARY, WORDS, tiny_metadata, build_model, numpy_steps


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    path = tmp_path_factory.mktemp("explain") / "tiny.onnx"
    onnx.save(build_model(), path)
    return Predictor.from_file(path)


def _predictor(tmp_path: Path, name: str, **changes) -> Predictor:
    path = tmp_path / f"{name}.onnx"
    trajectory = changes.pop("trajectory", True)
    onnx.save(build_model(trajectory=trajectory, metadata=tiny_metadata(**changes)), path)
    return Predictor.from_file(path)


def test_explain_agrees_with_predict_the_step_output_and_numpy(predictor):
    review = "Good movie, zorblax! The plot was boring"
    explanation = explain(predictor, review)
    assert explanation.prediction == predictor.predict(review)[0]
    words, steps = trajectory(predictor, review)
    assert explanation.words == tuple(words) == ("good", "movie", "zorblax", "the", "plot", "was", "boring")
    np.testing.assert_allclose(explanation.steps, steps, atol=1e-7)
    ids = np.array([[0] * (SEQUENCE_LENGTH - 8) + VOCABULARY.encode(review).ids], dtype=np.int32)
    np.testing.assert_allclose(explanation.steps, numpy_steps(ids)[0, -7:], atol=1e-5)
    assert explanation.steps[-1] == pytest.approx(explanation.prediction.score, abs=1e-6)
    # The baseline is the start id alone, padded as the model pads it.
    start_only = np.array([[0] * (SEQUENCE_LENGTH - 1) + [VOCABULARY.start_id]], dtype=np.int32)
    assert explanation.baseline == pytest.approx(float(numpy_steps(start_only)[0, -1]), abs=1e-5)
    changes = explanation.changes
    assert len(changes) == 7 and changes[0] == pytest.approx(explanation.steps[0] - explanation.baseline)
    assert sum(changes) == pytest.approx(explanation.steps[-1] - explanation.baseline, abs=1e-9)
    # "the" and "was" are not among the tiny vocabulary's words either.
    assert explanation.unknown == (False, False, True, True, False, True, False)
    assert explanation.prediction.unknown_tokens == 3
    assert (explanation.words_read, explanation.words_cut, explanation.cut_side) == (7, 0, "first")
    # This file takes every row at full length: the recurrence ran all its steps.
    assert explanation.padding_skip is None and explanation.steps_run == SEQUENCE_LENGTH
    assert explanation.latency_ms > 0


def test_explain_tokenizes_the_review_once(predictor, monkeypatch):
    calls = []
    original = text.tokenize

    def counting(review):
        calls.append(review)
        return original(review)

    monkeypatch.setattr(text, "tokenize", counting)
    monkeypatch.setattr(explaining, "tokenize", counting)
    explain(predictor, "good movie but a boring plot")
    assert calls == ["good movie but a boring plot"]


def test_a_long_review_says_what_was_read_and_what_was_cut(tmp_path, predictor):
    words = [WORDS[index % len(WORDS)] for index in range(20)]
    pre = explain(predictor, " ".join(words))
    # "pre" truncation cuts the first words and the start id with them: all sequence_length places hold words.
    assert pre.words == tuple(words[-SEQUENCE_LENGTH:]) and pre.prediction.truncated
    assert (pre.words_read, pre.words_cut, pre.cut_side) == (SEQUENCE_LENGTH, 20 - SEQUENCE_LENGTH, "first")
    assert len(pre.steps) == SEQUENCE_LENGTH and pre.steps[-1] == pytest.approx(pre.prediction.score, abs=1e-6)
    post = explain(_predictor(tmp_path, "post", padding="post", truncating="post"), " ".join(words))
    # "post" truncation keeps the start id and cuts the last words.
    assert post.words == tuple(words[: SEQUENCE_LENGTH - 1]) and post.cut_side == "last"
    assert (post.words_read, post.words_cut) == (SEQUENCE_LENGTH - 1, 20 - SEQUENCE_LENGTH + 1)
    assert len(post.steps) == SEQUENCE_LENGTH - 1


def test_without_step_output_or_words_there_is_no_chart_but_the_rest_is_there(tmp_path, predictor):
    plain = explain(_predictor(tmp_path, "plain", trajectory=False), "good zorblax")
    assert plain.steps is None and plain.baseline is None and plain.changes is None
    assert plain.words == ("good", "zorblax") and plain.unknown == (False, True)
    assert plain.prediction == predictor.predict("good zorblax")[0]
    no_words = explain(predictor, "!!! \U0001f600 ...")
    assert no_words.steps == () and no_words.words == () and no_words.changes == ()
    assert no_words.prediction.tokens == 0 and no_words.words_cut == 0


@pytest.mark.parametrize("review", ["", "   \n\t"])
def test_an_empty_review_is_refused(predictor, review):
    with pytest.raises(ValueError, match="review is empty"):
        explain(predictor, review)


def test_the_shipped_model_explains_reviews_as_it_scores_them():
    if not paths.DEFAULT_MODEL.is_file():
        pytest.fail(f"{paths.DEFAULT_MODEL} is missing: the default model is shipped with the project")
    shipped = Predictor.from_file(paths.DEFAULT_MODEL)
    for _, review in EXAMPLE_REVIEWS[:3]:
        (prediction,) = shipped.predict(review)
        explanation = explain(shipped, review)
        assert explanation.prediction == prediction
        words, steps = trajectory(shipped, review)
        assert list(explanation.words) == words and explanation.words_read == prediction.tokens
        np.testing.assert_allclose(explanation.steps, steps, atol=1e-6)
        assert explanation.steps[-1] == pytest.approx(prediction.score, abs=1e-5)
        # The shipped file skips the padding: the start id and the words are the only steps run.
        assert explanation.padding_skip is not None and explanation.steps_run == prediction.tokens + 1
        vocabulary = shipped.metadata.vocabulary
        assert explanation.unknown == tuple(vocabulary.id_of(word) == vocabulary.oov_id for word in words)
    long = explain(shipped, "great movie " * 400)
    assert (long.words_read, long.words_cut, long.steps_run) == (500, 300, 500) and len(long.steps) == 500


def test_read_words_and_steps_run_follow_the_truncation_rules():
    words = [f"w{index}" for index in range(10)]
    assert read_words(words, 11, "pre") == words  # ten words and the start id fit exactly
    assert read_words(words, 5, "pre") == words[-5:]
    assert read_words(words, 5, "post") == words[:4]
    assert read_words([], 5, "pre") == []
    assert steps_run(4, 5, skips_padding=False) == 5 and steps_run(2, 5, skips_padding=True) == 3
    assert steps_run(5, 5, skips_padding=True) == 5


def test_first_words_and_paragraphs_split_at_line_break_tags():
    review = "One two<br />three <BR/>four five six<br><br />"
    assert paragraphs(review) == ["One two", "three", "four five six"]
    assert first_words(review, 4) == "One two three four ..."
    assert first_words(review, 6) == "One two three four five six"
    assert first_words(None, 3) == ""
