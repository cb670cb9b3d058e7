"""A hand-built exported file for the scoring tests: Gather -> RNN(tanh) -> Dense(sigmoid), no TensorFlow needed.

Its weights are seeded, and numpy_steps computes the same scores in NumPy, so a test knows every right answer.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core import paths
from core.config import ExperimentConfig, ModelConfig
from core.data.text import RESERVED_WORD, Vocabulary
from core.scoring.predictor import ModelMetadata

WORDS = ("good", "bad", "movie", "great", "awful", "plot", "actors", "boring", "loved", "it")
VOCABULARY = Vocabulary(words=(RESERVED_WORD, *WORDS), num_words=40)
SEQUENCE_LENGTH = 12
UNITS, DIM = 4, 3


def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)

    def normal(*shape):
        return generator.normal(0, 0.8, shape).astype(np.float32)

    return {
        "embedding": normal(VOCABULARY.num_words, DIM),
        "W": normal(1, UNITS, DIM),
        "R": normal(1, UNITS, UNITS),
        "B": normal(1, 2 * UNITS),
        "kernel": normal(UNITS, 1),
        "bias": normal(1),
    }


def tiny_metadata(**changes) -> ModelMetadata:
    values = dict(
        vocabulary=VOCABULARY,
        sequence_length=SEQUENCE_LENGTH,
        padding="pre",
        truncating="pre",
        labels=("negative", "positive"),
        threshold=0.5,
        config=ExperimentConfig(ModelConfig(vocabulary_size=VOCABULARY.num_words)),
        metrics={"test_accuracy": 0.75, "test_loss": 0.5},
        parity_max_abs_diff=1.5e-7,
        versions={"onnx": onnx.__version__},
        created="2025-01-01T00:00:00+00:00",
    )
    values.update(changes)
    return ModelMetadata(**values)


def build_model(trajectory: bool = True, metadata: ModelMetadata | None = None, seed: int = 0) -> onnx.ModelProto:
    """Gather -> RNN(tanh) -> Dense(1, sigmoid), the shape of an exported seed model, written with onnx.helper."""
    weights = tiny_weights(seed)
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    initializers += [
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
    ]
    nodes = [
        helper.make_node("Transpose", ["input_ids"], ["time_major"], perm=[1, 0]),
        helper.make_node("Gather", ["embedding", "time_major"], ["vectors"]),
        helper.make_node("RNN", ["vectors", "W", "R", "B"], ["Y", "Y_h"], hidden_size=UNITS),
        helper.make_node("Squeeze", ["Y_h", "axis0"], ["state"]),
        helper.make_node("MatMul", ["state", "kernel"], ["logit"]),
        helper.make_node("Add", ["logit", "bias"], ["biased"]),
        helper.make_node("Sigmoid", ["biased"], ["probability"]),
    ]
    outputs = [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])]
    if trajectory:
        nodes += [
            helper.make_node("Squeeze", ["Y", "axis1"], ["steps"]),
            helper.make_node("MatMul", ["steps", "kernel"], ["step_logit"]),
            helper.make_node("Add", ["step_logit", "bias"], ["step_biased"]),
            helper.make_node("Sigmoid", ["step_biased"], ["step_sigmoid"]),
            helper.make_node("Squeeze", ["step_sigmoid", "last_axis"], ["time_major_steps"]),
            helper.make_node("Transpose", ["time_major_steps"], ["step_probability"], perm=[1, 0]),
        ]
        outputs.append(helper.make_tensor_value_info("step_probability", TensorProto.FLOAT, ["batch", "sequence"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "sequence"])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if metadata is not False:
        helper.set_model_props(model, (metadata or tiny_metadata()).to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_steps(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """The positive probability after every step, [batch, sequence], computed in NumPy."""
    weights = tiny_weights(seed)
    state = np.zeros((len(ids), UNITS))
    steps = []
    for column in ids.T:
        x = weights["embedding"][column]
        bias = weights["B"][0, :UNITS] + weights["B"][0, UNITS:]
        state = np.tanh(x @ weights["W"][0].T + state @ weights["R"][0].T + bias)
        steps.append(1 / (1 + np.exp(-(state @ weights["kernel"] + weights["bias"]))))
    return np.concatenate(steps, axis=1)


# Hostile files: graphs that answer probability the way an attacker would write them.
def forged_model(nodes, initializers=(), functions=(), opset=17) -> onnx.ModelProto:
    """input_ids -> nodes -> probability [batch, 1], with the shipped file's metadata."""
    graph = helper.make_graph(
        list(nodes),
        "hostile",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "sequence"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        list(initializers),
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("hostile", 1)] if functions else [])
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.metadata_props.extend(onnx.load(paths.DEFAULT_MODEL).metadata_props)
    return model


def answer_nodes(value_name: str) -> list:
    """Nodes that broadcast the scalar value_name to a [batch, 1] probability."""
    return [
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Slice", ["ids_shape", "zero_list", "one_list"], ["batch"]),
        helper.make_node("Concat", ["batch", "one_list"], ["answer_shape"], axis=0),
        helper.make_node("Expand", [value_name, "answer_shape"], ["probability"]),
    ]


ANSWER_CONSTANTS = [
    numpy_helper.from_array(np.array([0], np.int64), "zero_list"),
    numpy_helper.from_array(np.array([1], np.int64), "one_list"),
]


def endless_loop_model() -> onnx.ModelProto:
    """A file whose graph loops 10**15 times: what the run guard must stop."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["going"], ["still_going"]), helper.make_node("Add", ["x", "step"], ["x_next"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("still_going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_next", TensorProto.FLOAT, []),
        ],
        [numpy_helper.from_array(np.array(0.0, np.float32), "step")],
    )
    return forged_model(
        [helper.make_node("Loop", ["trips", "go", "start"], ["final"], body=body), *answer_nodes("final")],
        [
            numpy_helper.from_array(np.array(10**15, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "go"),
            numpy_helper.from_array(np.array(0.5, np.float32), "start"),
            *ANSWER_CONSTANTS,
        ],
    )
