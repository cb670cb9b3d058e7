"""The clean-rows path (core.export.passes.clean_rows): cleanly pre-padded batches straight to one Scan over a folded table."""

import numpy as np
import onnx
import onnxruntime
import pytest

from core import paths
from core.export import convert as export
from core.export import quantize
from core.export import upgrade
from core.export.passes.clean_rows import MIN_BATCH, clean_rows_path, has_clean_rows_path
from core.export.passes.pass_list import BATCH_SCAN, CLEAN_ROWS, without
from core.config import ExperimentConfig
from core.scoring.predictor import Predictor
from core.model.build import build_model
from core.export.model_file import PARITY_TOLERANCE
from core.export.graph import op_counts, walk_nodes
from core.export.passes.padding_skip import PaddingSkipError
from core.data.text import pad_sequences
from tests.small_inputs import CELL_CASES, example_vocabulary, randomized

LENGTH = 500


def _reviews(count: int, seed: int = 0, longest: int = LENGTH) -> list[list[int]]:
    generator = np.random.default_rng(seed)
    return [
        [1, *generator.integers(3, 10_000, size=int(size) - 1)] for size in generator.integers(1, longest + 1, count)
    ]


def _session(model) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _general_only(model):
    """The same file as it was before the clean-rows path: every batch through the padding skip's general path."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    assert without(copy, CLEAN_ROWS.name) and not has_clean_rows_path(copy)
    return copy


@pytest.fixture(scope="module")
def shipped():
    return onnx.load(str(paths.DEFAULT_MODEL))


def _inputs() -> dict[str, tuple[np.ndarray, bool]]:
    """Batches, and whether each is clean (the fast path takes it)."""
    reviews = _reviews(64)
    clean = pad_sequences(reviews, LENGTH)
    widest = max(len(review) for review in reviews[:40])
    cut = pad_sequences(reviews[:40], widest)
    inside = clean.copy()
    inside[5, -3] = 0  # a pad id inside one review: masked there, as Keras masks it
    negative = clean.copy()
    negative[7, -1] = -4  # onnx Gather counts it from the end, as the Keras model's own graph does
    return {
        "clean, full padding": (clean, True),
        "clean, cut to the longest review": (cut, True),
        "one row alone": (clean[:1], False),
        f"{MIN_BATCH - 1} rows": (clean[: MIN_BATCH - 1], False),
        f"{MIN_BATCH} rows": (clean[:MIN_BATCH], True),
        "post-padded": (pad_sequences(reviews, LENGTH, padding="post"), False),
        "a pad inside a review": (inside, False),
        "a negative id": (negative, False),
        "wider than sequence_length": (pad_sequences(_reviews(32, seed=1, longest=LENGTH + 40), LENGTH + 40), False),
        "all padding": (np.zeros((20, 12), dtype=np.int32), True),
    }


def test_every_kind_of_batch_scores_as_the_general_path(shipped):
    fast, general = _session(shipped), _session(_general_only(shipped))
    for name, (ids, _) in _inputs().items():
        (want,) = general.run(["probability"], {"input_ids": ids})
        (got,) = fast.run(["probability"], {"input_ids": ids})
        assert got.shape == want.shape and np.all(np.isfinite(got)), name
        assert np.max(np.abs(got - want)) <= PARITY_TOLERANCE, name


def test_the_fast_path_takes_clean_batches_and_only_those(shipped):
    """With the folded table poisoned, exactly the clean batches come out NaN: the If routes as its docstring says."""
    poisoned = onnx.ModelProto()
    poisoned.CopyFrom(shipped)
    for tensor in poisoned.graph.initializer:
        if tensor.name == "clean_rows/table":
            table = onnx.numpy_helper.to_array(tensor)
            tensor.CopyFrom(onnx.numpy_helper.from_array(np.full_like(table, np.nan), tensor.name))
    session = _session(poisoned)
    for name, (ids, clean) in _inputs().items():
        (got,) = session.run(["probability"], {"input_ids": ids})
        assert bool(np.isnan(got).all()) is clean and bool(np.isnan(got).any()) is clean, name


def test_the_predictor_scores_the_same_through_either_path(shipped):
    general = Predictor(_session(_general_only(shipped)), Predictor.from_file(paths.DEFAULT_MODEL).metadata)
    fast = Predictor.from_file(paths.DEFAULT_MODEL)
    reviews = _reviews(300, seed=2)
    difference = np.abs(fast.sequence_probabilities(reviews) - general.sequence_probabilities(reviews))
    assert difference.max() <= PARITY_TOLERANCE
    fast.use_padding_skip = general.use_padding_skip = False
    difference = np.abs(fast.sequence_probabilities(reviews) - general.sequence_probabilities(reviews))
    assert difference.max() <= PARITY_TOLERANCE


def test_the_path_is_undone_exactly_and_the_rnn_op_baseline_still_unwraps(shipped):
    general = _general_only(shipped)
    assert op_counts(general)["If"] == 3 and "clean_rows/table" not in {t.name for t in general.graph.initializer}
    onnx.checker.check_model(general, full_check=True)
    baseline = onnx.ModelProto()
    baseline.CopyFrom(shipped)
    assert without(baseline, [BATCH_SCAN.name, CLEAN_ROWS.name]) and not has_clean_rows_path(baseline)
    assert "Scan" not in op_counts(baseline)


def test_upgrading_a_file_without_it_adds_it_once(shipped, tmp_path):
    old = tmp_path / "old.onnx"
    onnx.save(_general_only(shipped), str(old))
    new = tmp_path / "new.onnx"
    description, difference = upgrade.upgrade_file(old, new)
    assert description["method"] == "sequence_lens" and difference <= PARITY_TOLERANCE
    upgraded = onnx.load(str(new))
    assert has_clean_rows_path(upgraded) and op_counts(upgraded) == op_counts(shipped)
    with pytest.raises(PaddingSkipError, match="already skips padding and computes step_probability"):
        upgrade.upgrade_file(new, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_the_int8_copy_keeps_the_general_path_alone(tmp_path):
    result = quantize.quantize_file(paths.DEFAULT_MODEL, tmp_path / "model.int8.onnx")
    model = onnx.load(str(result.path))
    assert not has_clean_rows_path(model)
    assert not any(node.name.startswith("clean_rows") for node in walk_nodes(model.graph))


@pytest.mark.slow
def test_only_a_masked_one_layer_simple_rnn_gets_it_and_it_equals_keras(tmp_path):
    for name in ("masked_simple_rnn", "simple_rnn", "masked_stack", "gru"):
        config = CELL_CASES[name]
        model = randomized(build_model(config))
        path = tmp_path / f"{name}.onnx"
        export.export_model(model, ExperimentConfig(config), example_vocabulary(200), {}, path)
        proto = onnx.load(str(path))
        assert has_clean_rows_path(proto) is (name == "masked_simple_rnn"), name
        assert not clean_rows_path(proto)  # given once, or never
        if name != "masked_simple_rnn":
            continue
        generator = np.random.default_rng(4)
        reviews = [[1, *generator.integers(3, 200, size=int(size))] for size in generator.integers(0, 70, 64)]
        full = pad_sequences(reviews, config.sequence_length)
        expected = model.predict(full, verbose=0)[:, 0]
        (got,) = _session(proto).run(["probability"], {"input_ids": full})
        assert np.max(np.abs(got[:, 0] - expected)) <= PARITY_TOLERANCE
