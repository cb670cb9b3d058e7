"""The padding-free fast path: exported graphs that start from the state after the padding they were not fed."""

import json
import random

import numpy as np
import onnx
import onnxruntime
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import cells
from core.export.passes import batched_rnn
from core.export import convert as export
from core.export.passes import padding_skip
from core.export import upgrade
from core.export.passes.clean_rows import MIN_BATCH, has_clean_rows_path
from core.config import ExperimentConfig, ModelConfig
from core.data.examples import EXAMPLE_REVIEWS
from core.scoring.predictor import Predictor
from core.scoring.explanation import trajectory
from core.model.build import build_model, model_layers, sequence_copy
from core.export.model_file import PADDING_SKIP_KEY, has_steps_switch
from core.data.text import _TOKEN, normalize, pad_sequences, tokenize
from tests.float_checks import assert_close
from tests.small_inputs import CASE_LENGTH, CELL_CASES, cell_config, example_vocabulary, randomized

TOLERANCE = 1e-5


def _reviews(config: ModelConfig, count: int, seed: int = 0) -> list[list[int]]:
    """Unpadded id lists of every length from 1 to past sequence_length, start id first, no pad id inside."""
    generator = np.random.default_rng(seed)
    sizes = generator.integers(1, config.sequence_length + 15, size=count)
    return [[1, *generator.integers(3, config.vocabulary_size, size=int(size) - 1)] for size in sizes]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("skip")
    results = {}
    for name, config in CELL_CASES.items():
        model = randomized(build_model(config))
        path = folder / f"{name}.onnx"
        export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, path, trajectory=True)
        results[name] = (config, model, path)
    return results


def _session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cut(full: np.ndarray, width: int, padding: str) -> np.ndarray:
    return full[:, -width:] if padding == "pre" else full[:, :width]


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", CELL_CASES)
def test_rows_cut_to_their_longest_review_score_as_keras_on_full_padding(exported, name):
    config, model, path = exported[name]
    session = _session(path)
    reviews = _reviews(config, 120)
    full = pad_sequences(reviews, config.sequence_length, config.padding, config.truncating)
    expected = model.predict(full, verbose=0)[:, 0]
    lengths = np.minimum([len(review) for review in reviews], config.sequence_length)
    order = np.argsort(lengths)
    # Batches of mixed lengths (the shorter rows keep some padding), then every review alone on its own tokens.
    for rows in [order[start : start + 24] for start in range(0, 120, 24)] + [[row] for row in range(0, 120, 7)]:
        width = int(lengths[rows].max())
        (got,) = session.run(["probability"], {"input_ids": _cut(full[rows], width, config.padding)})
        assert np.max(np.abs(got[:, 0] - expected[rows])) <= TOLERANCE, (name, width)
    # Full padding, and longer rows than sequence_length, give the model's own scores too.
    (got,) = session.run(["probability"], {"input_ids": full})
    assert np.max(np.abs(got[:, 0] - expected)) <= TOLERANCE
    longer = pad_sequences(reviews, config.sequence_length + 15, config.padding, config.truncating)
    (got,) = session.run(["probability"], {"input_ids": longer})
    assert np.max(np.abs(got[:, 0] - expected)) <= TOLERANCE


@pytest.mark.parametrize("name", ["simple_rnn", "stacked", "masked_stack"])
def test_trajectory_of_a_cut_row_is_the_tail_of_keras_steps(exported, name):
    config, model, path = exported[name]
    reviews = _reviews(config, 20, seed=4)
    full = pad_sequences(reviews, config.sequence_length, config.padding, config.truncating)
    embedding, recurrent, head = model_layers(model, config)
    values = embedding(full)
    for layer in recurrent[:-1]:
        values = layer(values)
    steps = sequence_copy(recurrent[-1])(values)
    for layer in head:
        steps = layer(steps)
    steps = np.asarray(steps)[..., 0]
    width = int(max(min(len(review), config.sequence_length) for review in reviews))
    cut = _cut(full, width, config.padding)
    # step_probability is computed when asked for with the steps switch (issue 12).
    (got,) = _session(path).run(["step_probability"], {"input_ids": cut, "with_steps": np.array(True)})
    tokens = cut != 0  # the review's own steps; masked padding steps are not compared (Keras repeats the state)
    assert got.shape == cut.shape
    assert np.max(np.abs(np.where(tokens, got - steps[:, -width:], 0))) <= TOLERANCE


def test_a_masked_model_on_a_pre_padded_review_equals_the_native_op_on_its_own_tokens(exported):
    """The issue's observation: masked padding leaves the state unchanged, so the review's tokens alone suffice."""
    config, model, path = exported["masked_simple_rnn"]
    review = _reviews(config, 1, seed=11)[0][:30]
    keras_score = model.predict(pad_sequences([review], config.sequence_length), verbose=0)[0, 0]
    (alone,) = _session(path).run(["probability"], {"input_ids": np.array([review], dtype=np.int32)})
    assert abs(alone[0, 0] - keras_score) <= TOLERANCE


def test_without_the_pad_states_a_cut_row_scores_differently(exported):
    """The check above is sensitive: the same graph with zero initial states is off by far more than 1e-5."""
    config, model, path = exported["simple_rnn"]
    proto = onnx.load(path)
    for tensor in proto.graph.initializer:
        if tensor.name.startswith("padding_skip/h_after_padding"):
            tensor.CopyFrom(onnx.numpy_helper.from_array(np.zeros_like(onnx.numpy_helper.to_array(tensor)), tensor.name))
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    reviews = [review[:10] for review in _reviews(config, 16, seed=2) if len(review) >= 10]
    expected = model.predict(pad_sequences(reviews, CASE_LENGTH), verbose=0)[:, 0]
    (got,) = session.run(["probability"], {"input_ids": np.array(reviews, dtype=np.int32)})
    assert np.max(np.abs(got[:, 0] - expected)) > 1e-3


@pytest.mark.parametrize("name", ["simple_rnn", "stacked"])
def test_the_scan_and_native_branches_agree(exported, name):
    config, _, path = exported[name]
    session = _session(path)
    reviews = pad_sequences(_reviews(config, 40, seed=8), config.sequence_length)
    (together,) = session.run(["probability"], {"input_ids": reviews})  # 40 rows: the Scan branch
    alone = [session.run(["probability"], {"input_ids": reviews[row : row + 1]})[0][0, 0] for row in range(40)]
    assert len(reviews) >= batched_rnn.SCAN_MIN_BATCH
    assert np.max(np.abs(together[:, 0] - np.array(alone))) <= 1e-6


def test_the_file_says_how_it_skips_padding(exported):
    for name, (config, _, path) in exported.items():
        props = {prop.key: prop.value for prop in onnx.load(path).metadata_props}
        description = json.loads(props[PADDING_SKIP_KEY])
        assert description["method"] == ("sequence_lens" if config.mask_padding else "pad_states")
        assert description["sequence_length"] == config.sequence_length and description["padding"] == config.padding
        assert Predictor.from_file(path).metadata.padding_skip == description


def test_unmasked_post_padding_cannot_skip_and_keeps_full_rows(tmp_path):
    config = cell_config("simple_rnn", padding="post")
    assert not export.skips_padding(config)
    path = tmp_path / "post.onnx"
    export.export_model(randomized(build_model(config)), ExperimentConfig(config), example_vocabulary(200), {}, path)
    predictor = Predictor.from_file(path)
    assert predictor.metadata.padding_skip is None and not predictor.skips_padding


@pytest.mark.parametrize("name", ["simple_rnn", "masked_stack", "masked_post"])
def test_predictor_scores_with_and_without_the_skip_agree(exported, name):
    config, model, path = exported[name]
    predictor = Predictor.from_file(path)
    assert predictor.skips_padding
    reviews = _reviews(config, 300, seed=5)
    skipped = predictor.sequence_probabilities(reviews)
    predictor.use_padding_skip = False
    full = predictor.sequence_probabilities(reviews)
    padded = pad_sequences(reviews, config.sequence_length, config.padding, config.truncating)
    keras_scores = model.predict(padded, verbose=0)[:, 0]
    assert np.max(np.abs(skipped - full)) <= TOLERANCE
    assert np.max(np.abs(skipped - keras_scores)) <= TOLERANCE
    predictor.use_padding_skip = True
    assert np.max(np.abs(predictor.probabilities(padded) - keras_scores)) <= TOLERANCE


def test_predict_and_trajectory_through_the_skip(exported):
    config, model, path = exported["simple_rnn"]
    predictor = Predictor.from_file(path)
    texts = [f"{title}. {text}" for title, text in EXAMPLE_REVIEWS]
    scores = [prediction.score for prediction in predictor.predict(texts)]
    ids = pad_sequences([predictor.metadata.vocabulary.encode(text).ids for text in texts], CASE_LENGTH)
    assert np.max(np.abs(np.array(scores) - model.predict(ids, verbose=0)[:, 0])) <= TOLERANCE
    words, steps = trajectory(predictor, texts[0])
    assert len(words) == len(steps) == min(len(tokenize(texts[0])), CASE_LENGTH - 1)
    assert abs(steps[-1] - scores[0]) <= TOLERANCE  # the last step's probability is the review's score


def test_upgrading_an_old_file_gives_the_same_scores_in_fewer_steps(tmp_path):
    config = cell_config("simple_rnn", "gru")
    model = randomized(build_model(config))
    old = tmp_path / "old.onnx"
    export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, old, trajectory=True, padding_skip=False)
    assert Predictor.from_file(old).metadata.padding_skip is None
    new = tmp_path / "new.onnx"
    description, difference = upgrade.upgrade_file(old, new)
    assert description["method"] == "pad_states" and difference <= TOLERANCE
    predictor = Predictor.from_file(new)
    reviews = _reviews(config, 100, seed=9)
    expected = model.predict(pad_sequences(reviews, CASE_LENGTH), verbose=0)[:, 0]
    assert np.max(np.abs(predictor.sequence_probabilities(reviews) - expected)) <= TOLERANCE
    with pytest.raises(padding_skip.PaddingSkipError, match="already skips padding"):
        upgrade.upgrade_file(new, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()
    assert has_steps_switch(onnx.load(str(new)))  # a trajectory file gains the steps switch as well


def test_upgrading_a_file_from_before_the_steps_switch_adds_it_with_the_same_weights_and_scores(tmp_path):
    config = cell_config("simple_rnn", mask_padding=True)
    model = randomized(build_model(config))
    old = tmp_path / "old.onnx"
    export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, old, trajectory=True,
                        steps_switch=False)
    before = onnx.load(str(old))
    assert not has_steps_switch(before) and Predictor.from_file(old).metadata.padding_skip is not None
    new = tmp_path / "new.onnx"
    description, difference = upgrade.upgrade_file(old, new)
    after = onnx.load(str(new))
    assert has_steps_switch(after) and difference <= TOLERANCE
    assert description == json.loads({p.key: p.value for p in before.metadata_props}[PADDING_SKIP_KEY])
    assert {p.key: p.value for p in after.metadata_props} == {p.key: p.value for p in before.metadata_props}
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in after.graph.initializer}
    for tensor in before.graph.initializer:
        np.testing.assert_array_equal(weights[tensor.name], onnx.numpy_helper.to_array(tensor))
    ids = pad_sequences(_reviews(config, 80, seed=4), CASE_LENGTH)
    old_session = onnxruntime.InferenceSession(str(old), providers=["CPUExecutionProvider"])
    new_session = onnxruntime.InferenceSession(str(new), providers=["CPUExecutionProvider"])
    for rows in (ids, ids[:3]):
        expected = old_session.run(None, {"input_ids": rows})
        got = new_session.run(None, {"input_ids": rows, "with_steps": np.array(True)})
        # The old graph and the upgraded file's branches are other graphs: equal within float32 rounding.
        for want, have in zip(expected, got, strict=True):
            assert_close(have, want)
        plain = new_session.run(["probability"], {"input_ids": rows})[0]
        if len(rows) >= MIN_BATCH:  # the upgrade adds the clean-rows path too: the same scores within float rounding
            np.testing.assert_allclose(plain, expected[0], rtol=0, atol=TOLERANCE)
        else:
            assert_close(plain, expected[0])
    assert has_clean_rows_path(after)
    with pytest.raises(padding_skip.PaddingSkipError, match="already skips padding and computes step_probability"):
        upgrade.upgrade_file(new, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


@pytest.mark.parametrize("op_type", cells.RECURRENT_OPS)
def test_the_numpy_cells_follow_onnxruntime(op_type):
    """run_onnx_cell, which makes the pad-state tables, against onnxruntime's own op on random weights."""
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(1)
    units, features, steps = 5, 3, 9
    entry = cells.by_onnx_op(op_type)
    gates = entry.gates
    weights = {
        "W": generator.normal(0, 0.8, (1, gates * units, features)).astype(np.float32),
        "R": generator.normal(0, 0.8, (1, gates * units, units)).astype(np.float32),
        "B": generator.normal(0, 0.8, (1, 2 * gates * units)).astype(np.float32),
    }
    extra = {entry.reset_after_attribute: 1} if entry.reset_after_attribute else {}
    node = helper.make_node(op_type, ["X", "W", "R", "B"], ["Y"], hidden_size=units, **extra)
    graph = helper.make_graph(
        [node], "cell", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, 1, features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inputs = generator.normal(0, 1, (steps, features)).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"X": inputs[:, np.newaxis]})
    states, carries = padding_skip.run_onnx_cell(node, weights, inputs)
    assert np.max(np.abs(states - expected[:, 0, 0])) <= 1e-5
    assert (carries is not None) == entry.has_carry


# The fast ASCII tokenizer must give exactly the regex's tokens.
_PIECES = ["a", "B", "'", "''", " ", "_", "-", "é", "9", "\u2019", "<br />", "<BR>", "x'y", "ß", "İ", "\u212a", "\n"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=16))
def test_the_ascii_tokenizer_equals_the_regex(pieces):
    text = "".join(pieces)
    assert tokenize(text) == _TOKEN.findall(normalize(text))


def test_the_ascii_tokenizer_equals_the_regex_on_random_ascii():
    generator = random.Random(0)
    alphabet = "ab Z9'_-.,!?\t\n<>/\"" + "'" * 4
    for _ in range(3000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 30)))
        assert tokenize(text) == _TOKEN.findall(normalize(text)), repr(text)


@pytest.mark.data
def test_the_ascii_tokenizer_equals_the_regex_on_real_reviews(imdb_archive):
    from core.data.load import _read_source, _resolve

    reviews = _read_source(_resolve(imdb_archive), ["test"], lambda *args: None, None)["test"]
    sample = reviews[::10]
    assert sum(review.text.isascii() for review in sample) > len(sample) // 2
    for review in sample:
        assert tokenize(review.text) == _TOKEN.findall(normalize(review.text)), review.name


def test_a_masked_model_skips_a_pad_id_inside_a_row_as_keras_does(exported):
    """Keras's mask skips every pad id, not only the leading ones: a caller's own ids may hold one inside."""
    for name in ("masked_stack", "masked_post"):
        config, model, path = exported[name]
        rows = [[1, 5, 6, 0, 7, 8, 9], [1, 0, 0, 4, 0, 12], [1, 30, 31, 32, 33, 0, 34]]
        full = pad_sequences(rows, config.sequence_length, config.padding, config.truncating)
        expected = model.predict(full, verbose=0)[:, 0]
        session = _session(path)
        for batch in (full, _cut(full, 7, config.padding), np.repeat(full, 6, axis=0)[::6]):
            (got,) = session.run(["probability"], {"input_ids": batch})
            assert np.max(np.abs(got[:, 0] - expected)) <= TOLERANCE, name


@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_masked_rows_wider_than_the_model_are_cut_as_pad_sequences_cuts_the_review(truncating, tmp_path):
    config = cell_config("simple_rnn", "lstm", mask_padding=True, padding="pre", truncating=truncating)
    model = randomized(build_model(config))
    path = tmp_path / "wide.onnx"
    export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, path, trajectory=True)
    reviews = _reviews(config, 40, seed=12)
    expected = model.predict(pad_sequences(reviews, CASE_LENGTH, "pre", truncating), verbose=0)[:, 0]
    wide = pad_sequences(reviews, CASE_LENGTH + 20, "pre", truncating)  # the padding side cut later, by the graph
    for batch in (wide[:20], wide[20:21]):  # the Scan branch and the RNN node
        rows = slice(0, 20) if len(batch) == 20 else slice(20, 21)
        (got,) = _session(path).run(["probability"], {"input_ids": batch})
        assert np.max(np.abs(got[:, 0] - expected[rows])) <= TOLERANCE
    predictor = Predictor.from_file(path)
    assert np.max(np.abs(predictor.probabilities(wide) - expected)) <= TOLERANCE


def test_unmasked_models_with_padding_and_truncating_apart_keep_full_rows():
    assert not export.skips_padding(cell_config("simple_rnn", truncating="post"))
    assert export.skips_padding(cell_config("simple_rnn", truncating="post", mask_padding=True))


def test_a_nan_anywhere_fails_the_parity_check(tmp_path):
    config = cell_config("simple_rnn")
    model = randomized(build_model(config))
    weights = model.get_weights()
    weights[-1] = np.full_like(weights[-1], np.nan)  # the output bias
    model.set_weights(weights)
    with pytest.raises(export.ExportError, match="differs from Keras by nan"):
        export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, tmp_path / "nan.onnx")
    assert not (tmp_path / "nan.onnx").exists()
