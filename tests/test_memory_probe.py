"""core.scoring.memory: the phrase-at-distance rows, the curve of a model whose weights make the answer known, the
same probe through an exported file and through the NumPy loop, and what bad texts get."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from core import paths
from core.data import EXAMPLE_REVIEWS
from core.data.text import RESERVED_WORD, Vocabulary
from core.export import numpy_weights, read_model_file
from core.export.quantize import quantize_file
from core.model.backward import fall_to_half, probability_gradients
from core.model.numpy_loop import (
    DenseWeights,
    ModelWeights,
    RecurrentWeights,
    reference_probabilities,
)
from core.scoring.memory import (
    MAX_DISTANCES,
    Probe,
    memory_curve,
    probe_distances,
    probe_review,
    probe_rows,
)
from core.scoring.predictor import Predictor
from dashboard.resources import DEFAULT_MODEL_LABEL
from tests.browser_support import open_page, plotly_values, tiny_exported_run
from tests.float_checks import assert_close
from tests.hand_built_file import SEQUENCE_LENGTH, VOCABULARY, build_model, numpy_steps

UNEXPORTED = "20000101-000000-unexported-copy"
KNOWN_VOCABULARY = Vocabulary(words=(RESERVED_WORD, "good", "bad", "the", "town"), num_words=10)
KNOWN_PROBE = Probe(positive="good", negative="bad", filler="the town")


def one_unit_model(signal: float, decay: float, output: float, sequence_ids=KNOWN_VOCABULARY) -> ModelWeights:
    """A one-unit SimpleRNN: "good" writes +signal into the state, "bad" -signal, every other id nothing; each step
    multiplies the state by decay inside tanh; the head reads output * state."""
    embedding = np.zeros((sequence_ids.num_words, 1))
    embedding[sequence_ids.id_of("good")] = signal
    embedding[sequence_ids.id_of("bad")] = -signal
    layer = RecurrentWeights("simple_rnn", np.ones((1, 1)), np.full((1, 1), decay), np.zeros(1), False)
    head = DenseWeights(np.full((1, 1), output), np.zeros(1), "sigmoid")
    return ModelWeights(embedding, (layer,), None, head, False)


def test_each_row_holds_the_same_filler_with_the_phrase_d_words_before_the_end():
    rows = probe_rows([7, 8, 9], [5, 6], start_id=1, sequence_length=10, distances=[0, 1, 7])
    assert rows.dtype == np.int32 and rows.shape == (3, 10)
    assert rows[0].tolist() == [1, 7, 8, 9, 7, 8, 9, 7, 5, 6]
    assert rows[1].tolist() == [1, 7, 8, 9, 7, 8, 9, 5, 6, 7]
    assert rows[2].tolist() == [1, 5, 6, 7, 8, 9, 7, 8, 9, 7]
    for row in rows:  # the filler words, in order, once the phrase is taken out
        assert [value for value in row[1:] if value not in (5, 6)] == [7, 8, 9, 7, 8, 9, 7]


def test_distances_are_all_that_fit_or_an_even_spread_with_both_ends():
    assert probe_distances(10, 2).tolist() == list(range(8))
    spread = probe_distances(5_000, 13)
    assert len(spread) <= MAX_DISTANCES and spread[0] == 0 and spread[-1] == 5_000 - 1 - 13
    assert np.all(np.diff(spread) > 0)
    with pytest.raises(ValueError, match="does not fit"):
        probe_distances(5, 5)


def test_a_model_with_known_weights_gives_the_expected_fading():
    signal, decay, output = 0.3, 0.4, 4.0
    weights = one_unit_model(signal, decay, output)
    curve = memory_curve(lambda rows: reference_probabilities(weights, rows), KNOWN_VOCABULARY, 9, KNOWN_PROBE)
    # The filler and the start id write nothing: the state is 0 until the phrase, tanh(+-signal) after it, and each
    # of the d filler words after it multiplies it by decay inside tanh.
    expected = []
    for distance in curve.distances:
        state = np.tanh(signal)
        for _ in range(distance):
            state = np.tanh(decay * state)
        expected.append(1 / (1 + np.exp(-output * state)))
    assert curve.distances.tolist() == list(range(8))
    assert_close(curve.positive, expected, rtol=1e-12, atol=1e-12)
    assert_close(curve.negative, 1 - np.asarray(expected), rtol=1e-12, atol=1e-12)
    assert curve.filler_only == pytest.approx(0.5)
    gap = 2 * np.asarray(expected) - 1
    assert gap[1] <= gap[0] / 2 < gap[0]  # the state fell to 0.4 of itself in one step, the gap to under half
    assert curve.half_distance() == 1 and curve.unknown_words == 0 and curve.phrase_words == (1, 1)
    # A state that keeps what it was given (decay 1, small enough for tanh to be nearly linear) barely fades.
    keeping = one_unit_model(0.05, 1.0, 4.0)
    kept = memory_curve(lambda rows: reference_probabilities(keeping, rows), KNOWN_VOCABULARY, 9, KNOWN_PROBE)
    assert kept.half_distance() is None and kept.gap[-1] > 0.9 * kept.gap[0]


def test_the_probe_through_an_exported_file_equals_the_numpy_steps_of_its_weights(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(build_model(), path)
    predictor = Predictor.from_file(path)
    probe = Probe(positive="great loved it", negative="awful boring", filler="movie plot actors")
    curve = memory_curve(predictor.probabilities, VOCABULARY, SEQUENCE_LENGTH, probe)
    words = [VOCABULARY.encode(text).ids[1:] for text in (probe.positive, probe.negative, probe.filler)]
    rows = probe_rows(words[2], words[0], VOCABULARY.start_id, SEQUENCE_LENGTH, curve.distances)
    assert_close(curve.positive, numpy_steps(rows)[:, -1])
    assert len(curve.distances) == SEQUENCE_LENGTH - 1 - 3 + 1  # the longer phrase sets the farthest distance


def test_unknown_words_are_counted_and_empty_texts_refused():
    weights = one_unit_model(0.3, 0.5, 4.0)

    def score(rows):
        return reference_probabilities(weights, rows)

    curve = memory_curve(score, KNOWN_VOCABULARY, 9, Probe(positive="good zzqx", negative="bad", filler="the yyq"))
    assert curve.unknown_words == 2 and curve.phrase_words == (2, 1)
    for probe, name in ((Probe(filler="..."), "filler"), (Probe(negative=""), "negative phrase")):
        with pytest.raises(ValueError, match=f"the {name} has no words"):
            memory_curve(score, KNOWN_VOCABULARY, 9, probe)
    with pytest.raises(ValueError, match="does not fit"):
        memory_curve(score, KNOWN_VOCABULARY, 3, Probe(positive="good good good", negative="bad", filler="the"))


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> Path:
    """A runs folder with a tiny trained run exported (probed through its file) and a copy never exported (probed
    through the NumPy loop on its model.keras)."""
    run = tiny_exported_run(tmp_path_factory.getbasetemp() / "tiny-dashboard-run")
    runs = tmp_path_factory.mktemp("memory") / "runs"
    shutil.copytree(run, runs / run.name)
    shutil.copytree(run, runs / UNEXPORTED, ignore=shutil.ignore_patterns("model.onnx", "*.int8.onnx"))
    return runs


@pytest.mark.slow
def test_the_memory_page_draws_a_file_and_a_runs_numpy_loop_alike(two_sources, monkeypatch, tmp_path):
    monkeypatch.setenv("IMDB_RUNS", str(two_sources))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    app = open_page("memory")
    models = app.multiselect(key="memory_models")
    exported, unexported = (label for label in models.options if "·" in label)
    assert UNEXPORTED in unexported and models.value == [exported], "one run of each kind of cells at first"
    models.set_value([exported, unexported]).run()
    assert not app.exception, app.exception
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(figure["data"]) == 4  # a positive and a negative line a model
    table = app.dataframe[0].value
    assert list(table["model"]) == [exported, unexported]
    # The exported file (onnxruntime, float32) and the NumPy loop on the same weights (float64) draw one curve.
    assert_close(plotly_values(figure["data"][0]["y"]), plotly_values(figure["data"][2]["y"]))
    assert_close(table["gap at the end"].iloc[0], table["gap at the end"].iloc[1])
    assert table["half gone after"].iloc[0] == table["half gone after"].iloc[1]
    # The loop run backwards: the file's weights (read from the .onnx) and model.keras's give the same gradients.
    backward = app.dataframe[1].value
    assert list(backward["model"]) == [exported, unexported]
    for column in ("positive", "at the last word", "at the first word"):
        assert_close(backward[column].iloc[0], backward[column].iloc[1], err_msg=column)
    assert len(app.get("plotly_chart")) == 2
    app.radio(key="memory_gradient_of").set_value("input").run()
    words = app.dataframe[1].value
    assert not app.exception and words["at the last word"].iloc[0] != backward["at the last word"].iloc[0]
    app.text_area(key="memory_filler").input("... !!!").run()
    assert "the filler has no words" in app.error[0].value and not app.exception
    app.text_area(key="memory_filler").input("the plot").run()
    app.text_input(key="memory_positive").input("qqzx great").run()
    assert not app.error and any("outside a vocabulary" in caption.value for caption in app.caption)


def test_the_memory_page_probes_the_shipped_model_when_there_is_no_run(monkeypatch, tmp_path):
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    app = open_page("memory")
    assert app.multiselect(key="memory_models").value == [DEFAULT_MODEL_LABEL]
    predictor = Predictor.from_file(paths.DEFAULT_MODEL)
    metadata = predictor.metadata
    curve = memory_curve(predictor.probabilities, metadata.vocabulary, metadata.sequence_length)
    table = app.dataframe[0].value
    assert table["half gone after"].iloc[0] == f"{curve.half_distance():,} words"
    assert_close(table["gap at the end"].iloc[0], curve.gap[0])
    # The loop run backwards starts on a long review: the positive phrase, then filler to the end of the window.
    long_review = probe_review(Probe(), int(curve.distances[-1]))
    assert app.selectbox(key="memory_review").value.startswith("Long: the positive phrase")
    assert not predictor.predict(long_review)[0].truncated and predictor.predict(long_review)[0].tokens > 400
    assert_close(app.dataframe[1].value["positive"].iloc[0], 100 * predictor.predict(long_review)[0].score)
    title, text = EXAMPLE_REVIEWS[0]
    app.selectbox(key="memory_review").set_value(title).run()
    assert_close(app.dataframe[1].value["positive"].iloc[0], 100 * predictor.predict(text)[0].score)
    app.selectbox(key="memory_review").set_value("My own review").run()
    assert "Type a review above" in app.info[-1].value
    app.multiselect(key="memory_models").set_value([]).run()
    assert "Pick at least one model" in app.info[-1].value


def test_the_shipped_files_weights_run_in_the_numpy_loop_and_an_int8_copy_is_refused(tmp_path):
    _, proto, metadata = read_model_file(paths.DEFAULT_MODEL)
    weights = numpy_weights(proto, metadata.config.model)
    predictor = Predictor.from_file(paths.DEFAULT_MODEL)
    texts = [text for _, text in EXAMPLE_REVIEWS]
    ids = predictor.pad([metadata.vocabulary.encode(text).ids for text in texts])
    assert_close(reference_probabilities(weights, ids), predictor.probabilities(ids))
    gradients = probability_gradients(weights, ids[0])
    assert gradients.probability == pytest.approx(float(predictor.probabilities(ids[:1])[0]), abs=1e-5)
    int8 = quantize_file(paths.DEFAULT_MODEL, tmp_path / "model.int8.onnx").path
    with pytest.raises(ValueError, match="quantized"):
        numpy_weights(onnx.load(int8), metadata.config.model)


def test_fall_to_half_reads_from_the_end():
    assert fall_to_half([4.0, 3.0, 2.0, 1.0]) == 2
    assert fall_to_half([4.0, 3.0, 2.5]) is None
    assert fall_to_half([0.0, 1.0]) is None and fall_to_half([]) is None
