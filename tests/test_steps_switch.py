"""The steps switch, as a plain onnxruntime user meets it on the shipped file: its two paths, files made before it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from core import paths
from core.export import parity
from core.export.passes.batched_rnn import SWITCH_NODE, steps_always
from core.export.passes.pass_list import BATCH_SCAN, CLEAN_ROWS, STEPS_SWITCH, without
from core.scoring.predictor import METADATA_KEYS, Predictor
from core.scoring.explanation import trajectory
from core.export.passes.clean_rows import MIN_BATCH
from core.export.passes.clean_rows import NODE as CLEAN_ROWS_NODE
from core.export.model_file import PARITY_TOLERANCE, STEPS_SWITCH_NAME, StepsSession, has_steps_switch
from core.export.passes.native_ops import keras_weights
from core.export.graph import op_counts, subgraphs, walk_nodes
from tests.float_checks import assert_close, assert_same_records

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "A moving, beautifully acted film.",
    "Dull and far too long; I walked out.",
    "Don't<br />miss it",
    "The plot was thin, but the actors carried it with warmth and wit, and I would watch it again.",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """The shipped file, and a copy in the format of files exported before the switch (the same graph inlined: every
    run computes step_probability), as the shipped file was before issue 12."""
    old = onnx.load(str(paths.DEFAULT_MODEL))
    assert steps_always(old)
    path = tmp_path_factory.mktemp("before_switch") / "before_switch.onnx"
    onnx.save(old, str(path))
    return paths.DEFAULT_MODEL, path


def _rows(count: int, seed: int = 0) -> np.ndarray:
    """Id rows pre-padded to 500 as the standalone example pads them: reviews of every length, some cut."""
    generator = np.random.default_rng(seed)
    ids = generator.integers(3, 10_000, size=(count, 500)).astype(np.int32)
    for row in range(count):
        length = int(generator.integers(1, 501))
        ids[row, : 500 - length] = 0
        ids[row, 500 - length] = 1
    return ids


def _stranger(path: Path):
    """What the README's stranger opens: a default session, no project code."""
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _switch(model) -> tuple:
    (node,) = [node for node in model.graph.node if node.name == SWITCH_NODE]
    branches = {attribute.name: attribute.g for attribute in node.attribute}
    return branches["then_branch"], branches["else_branch"]


def test_a_plain_run_gives_the_steps_runs_probability_and_the_predictors(files):
    shipped, _ = files
    session = _stranger(shipped)
    # The switch has a default: a stranger sees one input and feeds only input_ids.
    assert [item.name for item in session.get_inputs()] == ["input_ids"]
    assert [item.name for item in session.get_overridable_initializers()] == [STEPS_SWITCH_NAME]
    predictor = Predictor.from_file(shipped)
    for ids in (_rows(40), _rows(3, seed=1), _rows(1, seed=2)):  # the Scan path and the RNN op's
        probability, steps = session.run(None, {"input_ids": ids})
        assert probability.shape == (len(ids), 1) and steps.shape == (len(ids), 0)  # no step was computed
        requested, requested_steps = session.run(None, {"input_ids": ids, STEPS_SWITCH_NAME: np.array(True)})
        assert requested_steps.shape == ids.shape
        if len(ids) >= MIN_BATCH:  # clean rows: the plain path's own Scan over the folded table (core.export.passes.clean_rows)
            np.testing.assert_allclose(probability, requested, rtol=0, atol=PARITY_TOLERANCE)
        else:  # the RNN op on both paths, but two branches of the If: two graphs, equal within float32 rounding
            assert_close(probability, requested)
        np.testing.assert_allclose(predictor.probabilities(ids), probability[:, 0], atol=1e-6)


def test_the_plain_path_holds_no_step_output_and_the_steps_path_does(files):
    model = onnx.load(str(files[0]))
    with_steps, without_steps = _switch(model)

    def ops(graph) -> list[str]:
        return [node.op_type for node in walk_nodes(graph)]

    def scan_outputs(graph) -> list[int]:
        return [len(node.output) for node in walk_nodes(graph) if node.op_type == "Scan"]

    assert "ScatterElements" in ops(with_steps) and scan_outputs(with_steps) == [2]
    # The plain path: the general batch path's Scan and the clean rows' one, each writing the last state alone.
    assert "ScatterElements" not in ops(without_steps) and scan_outputs(without_steps) == [1, 1]
    (rnn,) = [node for node in walk_nodes(without_steps) if node.op_type == "RNN"]
    assert not rnn.output[0]  # the op's Y (every step's state) is not written either
    # Clean rows skip the padding skip's work: no sort, no mask, one Scan.
    (chooser,) = [node for node in walk_nodes(without_steps) if node.name.endswith(CLEAN_ROWS_NODE)]
    clean = next(attribute.g for attribute in chooser.attribute if attribute.name == "then_branch")
    assert {"TopK", "Where", "RNN"}.isdisjoint(ops(clean)) and ops(clean).count("Scan") == 1
    # The weights are stored once, in the outer graph.
    assert not any(subgraph.initializer for node in walk_nodes(model.graph) for subgraph in subgraphs(node))


def test_step_probability_on_request_equals_the_file_before_the_switch(files):
    shipped, old = files
    ids = _rows(64, seed=3)
    for rows in (ids, ids[:2]):
        expected = _stranger(old).run(None, {"input_ids": rows})
        got = _stranger(shipped).run(None, {"input_ids": rows, STEPS_SWITCH_NAME: np.array(True)})
        # The same nodes, but inside an If's branch here and in the main graph there: onnxruntime optimizes and
        # picks kernels for each graph on its own.
        for want, have in zip(expected, got, strict=True):
            assert_close(have, want)
    new_words, new_steps = trajectory(Predictor.from_file(shipped), TEXTS[3])
    old_words, old_steps = trajectory(Predictor.from_file(old), TEXTS[3])
    assert new_words == old_words and len(new_steps) == len(new_words)
    assert_close(new_steps, old_steps)


def test_a_file_from_before_the_switch_still_loads_and_scores_the_same(files):
    shipped, old = files
    assert not has_steps_switch(onnx.load(str(old)))
    before, after = Predictor.from_file(old), Predictor.from_file(shipped)
    # The old file keeps its probability-only copy; the new one needs none: one session, the switch fed for steps.
    assert [item.name for item in before.session.get_outputs()] == ["probability"]
    assert before.trajectory_session is not before.session
    assert isinstance(after.trajectory_session, StepsSession) and after.trajectory_session.session is after.session
    assert before.has_trajectory and after.has_trajectory
    ids = _rows(300, seed=4)
    # Two graphs: on AVX-512 CPUs they part by up to 8.3e-7 (issue 27), so within float32 rounding, not exactly.
    assert_close(after.probabilities(ids), before.probabilities(ids))
    assert_same_records(after.predict(TEXTS), before.predict(TEXTS))


def test_the_file_passes_the_full_checker_keeps_its_metadata_and_weights(files):
    shipped, old = files
    model, before = onnx.load(str(shipped)), onnx.load(str(old))
    onnx.checker.check_model(model, full_check=True)
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert set(METADATA_KEYS) <= set(props) and props == {prop.key: prop.value for prop in before.metadata_props}
    assert STEPS_SWITCH_NAME in model.doc_string
    config = Predictor.from_file(shipped).metadata.config.model
    for new, original in zip(keras_weights(model, config), keras_weights(before, config), strict=True):
        np.testing.assert_array_equal(new, original)
    # The weights are stored once; the clean rows add their table, the embedding folded into the kernel.
    table = 10_000 * 32 * 4
    assert shipped.stat().st_size < old.stat().st_size + table + 50_000


def test_the_switch_is_added_once_and_undone_exactly(files):
    shipped, old = files
    model = onnx.load(str(old))
    assert STEPS_SWITCH.apply(model, None, frozenset())
    assert not STEPS_SWITCH.apply(model, None, frozenset())  # already there
    onnx.checker.check_model(model, full_check=True)
    assert op_counts(model) == op_counts(onnx.load(str(shipped)))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = _rows(20, seed=5)
    np.testing.assert_allclose(session.run(["probability"], {"input_ids": ids})[0],
                               _stranger(old).run(["probability"], {"input_ids": ids})[0], rtol=0,
                               atol=PARITY_TOLERANCE)  # 20 clean rows: the clean-rows Scan
    assert_close(session.run(["probability"], {"input_ids": ids[:3]})[0],
                 _stranger(old).run(["probability"], {"input_ids": ids[:3]})[0])  # two graphs: float32 rounding


def test_the_rnn_op_baseline_unwraps_both_paths(files):
    """bench/padding_skip.py's baseline: every SimpleRNN layer back on the RNN op, on each path of the switch."""
    model = onnx.load(str(files[0]))
    assert without(model, [BATCH_SCAN.name, CLEAN_ROWS.name])
    counts = op_counts(model)
    assert "Scan" not in counts and counts["RNN"] == 2 and counts["If"] == 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = _rows(30, seed=6)
    expected = _stranger(files[0]).run(["probability"], {"input_ids": ids})[0]
    np.testing.assert_allclose(session.run(["probability"], {"input_ids": ids})[0], expected, atol=1e-6)


@pytest.mark.parametrize("branch", ["then_branch", "else_branch"])
def test_parity_checks_both_paths(files, branch):
    """A file whose plain path (or steps path) parts from the original fails parity, whichever path it is."""
    shipped, old = files
    model = onnx.load(str(shipped))
    (switch,) = [node for node in model.graph.node if node.name == SWITCH_NODE]
    graph = next(attribute.g for attribute in switch.attribute if attribute.name == branch)
    (last,) = [node for node in graph.node if node.output[0] == graph.output[0].name]  # writes probability
    assert last.op_type == "Sigmoid"
    last.op_type = "Tanh"
    broken = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = _rows(40, seed=7)
    reference = _stranger(old)
    expected = dict(zip(["probability", "step_probability"], reference.run(None, {"input_ids": ids})))
    healthy = parity.output_differences(
        _stranger(shipped), expected, ids, padding="pre", masked=True, skips=True
    )
    assert parity.exceeded(healthy) is None
    worst = parity.output_differences(broken, expected, ids, padding="pre", masked=True, skips=True)
    assert parity.exceeded(worst)[0] == "probability"


def test_the_standalone_example_prints_the_right_labels_on_both_files(files):
    for path in files:
        completed = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "classify_standalone.py"), str(path), *TEXTS],
            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""},
        )
        assert completed.returncode == 0, completed.stderr
        assert "with_steps" not in completed.stderr  # onnxruntime's load-time warning about the switch is silenced
        lines = [json.loads(line) for line in completed.stdout.splitlines()]
        predictions = Predictor.from_file(path).predict(TEXTS)
        assert [line["label"] for line in lines] == [prediction.label for prediction in predictions]
        assert [line["label"] for line in lines][:2] == ["positive", "negative"]
        np.testing.assert_allclose([line["score"] for line in lines], [p.score for p in predictions], atol=1e-6)
