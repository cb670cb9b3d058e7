"""The ONNX wing's small parts without TensorFlow: the probability-only graph, tolerances, the config in metadata."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from core.export.passes.batched_rnn import SCAN_MIN_BATCH, batched_simple_rnn
from core.export.passes.pass_list import prediction_graph
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig
from core.export.model_file import ModelFileError, ModelMetadata
from core.export.graph import op_counts
from core.export.parity import exceeded
from tests.hand_built_file import tiny_metadata, build_model


def _run(proto, ids: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["probability"], {"input_ids": ids})[0]


def test_the_plain_prediction_graph_answers_probability_alone_and_the_same():
    original = build_model(trajectory=True)
    assert batched_simple_rnn(original) == 1
    plain = onnx.ModelProto()
    plain.CopyFrom(original)
    assert prediction_graph(plain)
    assert [output.name for output in plain.graph.output] == ["probability"]
    # The Scan of the batch path no longer writes every step: its only output is the final state.
    (branch,) = [node for node in plain.graph.node if node.op_type == "If"]
    then_branch = next(attribute.g for attribute in branch.attribute if attribute.name == "then_branch")
    (scan,) = [node for node in then_branch.node if node.op_type == "Scan"]
    assert len(scan.output) == 1 and op_counts(plain)["RNN"] == 1
    onnx.checker.check_model(plain, full_check=True)
    ids = np.random.default_rng(0).integers(1, 40, size=(SCAN_MIN_BATCH + 4, 12)).astype(np.int32)
    for rows in (ids, ids[:1]):  # the Scan branch and the RNN node
        np.testing.assert_allclose(_run(plain, rows), _run(original, rows), atol=1e-6)


def test_a_graph_without_step_probability_is_left_as_it_is():
    model = build_model(trajectory=False)
    before = model.SerializeToString()
    assert not prediction_graph(model)
    assert model.SerializeToString() == before


def test_exceeded_names_the_first_output_over_its_tolerance():
    assert exceeded({"probability": 1e-5, "step_probability": 1e-4}) is None
    assert exceeded({"probability": 3e-4}) == ("probability", 3e-4, 1e-5)
    assert exceeded({"probability": 0.0, "step_probability": 2e-4}) == ("step_probability", 2e-4, 1e-4)
    name, difference, _ = exceeded({"probability": float("nan")})
    assert name == "probability" and np.isnan(difference)


def test_the_config_in_the_metadata_is_the_experiment_config_and_its_json_is_unchanged():
    experiment = ExperimentConfig(ModelConfig(recurrent_layers=(RecurrentLayerConfig("gru", 8),), mask_padding=True))
    metadata = tiny_metadata(config=experiment)
    props = metadata.to_props()
    assert props["config"] == json.dumps(experiment.to_dict(), sort_keys=True)
    assert ModelMetadata.from_props(props).config == experiment
    props["config"] = json.dumps({"model": {"recurrent_layers": [{"cell": "rnn"}]}})
    with pytest.raises(ModelFileError, match=r"^the model has malformed metadata: .*cell must be one of") as caught:
        ModelMetadata.from_props(props)
    assert "\n" not in str(caught.value)


def test_a_layer_copied_into_both_branches_of_an_if_counts_once():
    import onnx

    from core.export.graph import op_counts, recurrent_layers
    from core.paths import DEFAULT_MODEL

    shipped = onnx.load(DEFAULT_MODEL)
    # The shipped file's one SimpleRNN layer sits in both branches of the steps switch: two nodes, one layer.
    assert op_counts(shipped)["RNN"] == 2
    assert recurrent_layers(shipped) == {"RNN": 1}
