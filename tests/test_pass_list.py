"""The one list of graph passes: its order holds once, export and upgrade build the same graph from it, and a pass
left out comes back where it was."""

import re
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from core import paths
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig
from core.data.examples import EXAMPLE_REVIEWS
from core.data.text import Vocabulary, pad_sequences, tokenize
from core.export import convert, upgrade
from core.export.graph import op_counts
from core.export.model_file import read_model_file
from core.export.passes import pass_list
from core.export.passes.pass_list import PASSES, PassInputs, complete, present_passes, without
from core.model.build import build_model
from tests.float_checks import assert_close

ROOT = Path(__file__).resolve().parent.parent
LENGTH = 40
# The functions that apply or undo a pass: outside core/export/passes/ only the list calls them.
PASS_FUNCTIONS = (
    "use_native_ops",
    "skip_padding",
    "batched_simple_rnn",
    "native_only",
    "clean_rows_path",
    "general_path_only",
    "steps_on_request",
    "steps_always",
    "with_text_front",
    "ids_part",
)


def test_the_passes_are_written_once_in_order():
    assert [graph_pass.name for graph_pass in PASSES] == [
        "native_ops", "padding_skip", "batch_scan", "clean_rows", "steps_switch", "text_front",
    ]
    assert all(graph_pass.needs for graph_pass in PASSES)
    callers = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py"), *(ROOT / "bench").glob("*.py")]:
        if path.parent == ROOT / "core" / "export" / "passes":
            continue
        source = path.read_text(encoding="utf-8")
        calls = [name for name in PASS_FUNCTIONS if re.search(rf"\b{name}\(|import[^\n]*\b{name}\b", source)]
        callers += [f"{path.name}: {name}" for name in calls]
    assert callers == []


def test_unknown_names_and_passes_that_stay_are_refused():
    model = onnx.load(str(paths.DEFAULT_MODEL))
    with pytest.raises(ValueError, match="no graph pass is named clean_row"):
        without(model, "clean_row")
    with pytest.raises(ValueError, match="padding_skip pass cannot be left out"):
        without(model, "padding_skip")
    assert not without(model, "text_front")  # a pass the graph has not: nothing to do


def _vocabulary() -> Vocabulary:
    return Vocabulary.build([tokenize(f"{title} {text}") for title, text in EXAMPLE_REVIEWS], 200)


def _model(config: ModelConfig):
    model = build_model(config)
    # Weights drawn here, not by Keras's initializers, so that every case is the same model on every run.
    generator = np.random.default_rng(7)
    model.set_weights([generator.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _shape(model) -> tuple:
    """What two conversions of one model share: tf2onnx names its nodes and dimensions anew on every run."""
    props = {prop.key: prop.value for prop in model.metadata_props}
    for varying in ("created", "parity_max_abs_diff", "trajectory_max_abs_diff"):
        props.pop(varying, None)
    weights = Counter(onnx.numpy_helper.to_array(tensor).tobytes() for tensor in model.graph.initializer)
    return (
        op_counts(model),
        weights,
        [value.name for value in model.graph.input],
        [value.name for value in model.graph.output],
        props,
    )


CASES = {
    "simple_rnn": (dict(), dict(padding_skip=False)),
    "masked_simple_rnn": (dict(mask_padding=True), dict(steps_switch=False)),
    "gru_then_simple_rnn": (dict(), dict(padding_skip=False)),
}


@pytest.mark.parametrize("name", CASES)
def test_export_and_upgrade_of_the_same_model_give_the_same_graph(name, tmp_path):
    changes, older = CASES[name]
    cells = ("gru", "simple_rnn") if name.startswith("gru") else ("simple_rnn",)
    layers = tuple(RecurrentLayerConfig(cell, 8) for cell in cells)
    config = ModelConfig(vocabulary_size=200, sequence_length=LENGTH, embedding_dim=8, recurrent_layers=layers,
                         **changes)
    model, experiment, vocabulary = _model(config), ExperimentConfig(config), _vocabulary()
    exported, old, upgraded = tmp_path / "exported.onnx", tmp_path / "old.onnx", tmp_path / "upgraded.onnx"
    convert.export_model(model, experiment, vocabulary, {}, exported, trajectory=True)
    convert.export_model(model, experiment, vocabulary, {}, old, trajectory=True, **older)
    upgrade.upgrade_file(old, upgraded)
    want, got = onnx.load(str(exported)), onnx.load(str(upgraded))
    assert present_passes(got) == present_passes(want)
    assert _shape(got) == _shape(want)
    ids = pad_sequences(np.random.default_rng(2).integers(1, 200, size=(20, LENGTH)).tolist(), LENGTH)
    sessions = [
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (exported, upgraded)
    ]
    runs = [session.run(["probability"], {"input_ids": ids}) for session in sessions]
    # Two conversions: the same graph, but onnxruntime may order a sum differently (float32 rounding).
    assert_close(runs[1][0], runs[0][0])


@pytest.mark.parametrize("name", [graph_pass.name for graph_pass in PASSES if graph_pass.leave_out is not None])
def test_a_pass_left_out_of_the_shipped_file_comes_back_as_it_was(name):
    model = onnx.load(str(paths.DEFAULT_MODEL))
    passes = present_passes(model)
    counts = op_counts(model)
    if name not in passes:
        assert not without(model, name)
        return
    assert without(model, name)
    # The others stay, less those that need the one left out (the clean-rows path needs the batch Scan, and a graph
    # whose steps are read, as without the switch, cannot have it).
    left = present_passes(model)
    assert name not in left and set(left) <= set(passes)
    onnx.checker.check_model(model, full_check=True)
    _, _, metadata = read_model_file(paths.DEFAULT_MODEL)
    added = complete(model, PassInputs.from_config(metadata.config.model))
    assert name in added and sorted(added + left) == sorted(passes)
    assert present_passes(model) == passes and op_counts(model) == counts


def test_the_steps_switch_builds_its_plain_branch_without_what_was_left_out():
    model = onnx.load(str(paths.DEFAULT_MODEL))
    assert without(model, [pass_list.BATCH_SCAN.name, pass_list.CLEAN_ROWS.name])
    counts = op_counts(model)
    # Each branch of the switch runs the layer on onnxruntime's RNN op; no Scan anywhere.
    assert counts["RNN"] == 2 and counts["If"] == 1 and "Scan" not in counts
    assert present_passes(model) == ["native_ops", "padding_skip", "steps_switch"]
