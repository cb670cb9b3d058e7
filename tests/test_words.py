"""core.scoring.words and the Words page: each word scored alone as predict() scores it, the embedding read from the
file, nearest words by cosine, the 2-D map; on a hand-built file, the shipped model and an int8 copy."""

import numpy as np
import onnx
import pytest

from core import paths
from core.export.quantize import quantize_file
from core.scoring.predictor import Predictor
from core.scoring.words import file_embedding, nearest_words, word_map, word_scores
from tests.browser_support import open_page
from tests.float_checks import assert_close
from tests.hand_built_file import VOCABULARY, WORDS, build_model, tiny_weights


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory):
    path = tmp_path_factory.mktemp("words") / "model.onnx"
    onnx.save(build_model(), path)
    return path


def test_each_word_alone_scores_as_predict_scores_the_word(hand_built):
    predictor = Predictor.from_file(hand_built)
    scores = word_scores(predictor)
    assert scores.words == WORDS and list(scores.ids) == [VOCABULARY.id_of(word) for word in WORDS]
    assert_close(scores.scores, [prediction.score for prediction in predictor.predict(list(WORDS))])
    start = predictor.probabilities(predictor.pad([[VOCABULARY.start_id]]))[0]
    assert scores.baseline == pytest.approx(float(start))
    ranked = [word for word, _ in scores.most(len(WORDS))]
    assert ranked == [word for word, _ in sorted(zip(WORDS, scores.scores), key=lambda pair: -pair[1])]
    assert scores.most(3, positive=False)[0][1] == pytest.approx(float(scores.scores.min()))
    rank, score = scores.rank_of(ranked[4])
    assert rank == 5 and score == pytest.approx(float(np.sort(scores.scores)[::-1][4]))
    assert scores.rank_of("zzqx") is None


def test_the_embedding_is_the_files_own_table_and_its_nearest_words_are_by_cosine(hand_built):
    table = file_embedding(onnx.load(hand_built), VOCABULARY.num_words)
    np.testing.assert_array_equal(table, tiny_weights()["embedding"].astype(np.float32))
    ids = [VOCABULARY.id_of(word) for word in WORDS]
    vectors = table[ids]
    near = nearest_words(vectors, WORDS, "good", 3)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit[0]
    expected = [WORDS[index] for index in np.argsort(-cosine)[1:4]]
    assert [word for word, _ in near] == expected and "good" not in expected
    assert near[0][1] == pytest.approx(float(np.sort(cosine)[-2]), abs=1e-6)
    assert nearest_words(vectors, WORDS, "zzqx") == []


def test_the_map_places_the_known_words_on_their_two_main_directions(hand_built):
    vectors = file_embedding(onnx.load(hand_built), VOCABULARY.num_words)[[VOCABULARY.id_of(word) for word in WORDS]]
    kept, points = word_map(vectors, WORDS, ["good", "zzqx", "bad", "good", "movie", "great"])
    assert kept == ["good", "bad", "movie", "great"] and points.shape == (4, 2)
    # PCA: centred, and the first direction holds at least as much of the spread as the second.
    assert_close(points.mean(axis=0), [0.0, 0.0], atol=1e-5)
    assert points[:, 0].var() >= points[:, 1].var()
    assert word_map(vectors, WORDS, ["zzqx"])[0] == []


def test_the_shipped_model_learned_the_words_a_reader_expects():
    predictor = Predictor.from_file(paths.DEFAULT_MODEL)
    scores = word_scores(predictor)
    assert len(scores.words) == predictor.metadata.vocabulary.size
    top = {word for word, _ in scores.most(100)}
    bottom = {word for word, _ in scores.most(100, positive=False)}
    assert {"excellent", "perfect"} <= top and {"worst", "awful", "waste"} <= bottom
    table = file_embedding(onnx.load(paths.DEFAULT_MODEL), predictor.metadata.vocabulary.num_words)
    assert table is not None and table.shape == (predictor.metadata.vocabulary.num_words, 32)


def test_an_int8_copy_scores_its_words_but_has_no_float_embedding(tmp_path):
    int8 = quantize_file(paths.DEFAULT_MODEL, tmp_path / "model.int8.onnx").path
    assert file_embedding(onnx.load(int8), 10_000) is None
    assert len(word_scores(Predictor.from_file(int8)).words) == 9_996


def _open_words(monkeypatch, tmp_path, model):
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "DEFAULT_MODEL", model)
    return open_page("words")


def test_the_words_page_shows_both_ends_a_word_its_neighbours_and_the_map(hand_built, monkeypatch, tmp_path):
    app = _open_words(monkeypatch, tmp_path, hand_built)
    positive, negative = (frame.value for frame in app.dataframe[:2])
    scores = word_scores(Predictor.from_file(hand_built))
    assert list(positive["word"]) == [word for word, _ in scores.most(len(WORDS))]
    assert list(negative["word"]) == [word for word, _ in scores.most(len(WORDS), positive=False)]
    app.text_input(key="words_word").input("Good").run()
    rank, _ = scores.rank_of("good")
    assert next(metric.value for metric in app.metric if metric.label == "Rank") == f"{rank:,} of {len(WORDS):,}"
    assert any("Nearest in the learned embedding" in caption.value for caption in app.caption)
    assert app.get("plotly_chart"), "the map of the default words found in the vocabulary"
    app.text_input(key="words_word").input("zzqx").run()
    assert "not in the model" in app.info[0].value and not app.exception
