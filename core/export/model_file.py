"""The exported .onnx file's contract: tensor names, metadata_props, the checks a file must pass, its session."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import ExperimentConfig
from core.errors import first_line, reason
from core.data.text import Vocabulary

INPUT_NAME = "input_ids"
OUTPUT_NAME = "probability"
TRAJECTORY_NAME = "step_probability"
DEFAULT_THRESHOLD = 0.5
# A file must match Keras within these at export: its probability, and its per-step probabilities (a picture of the
# review being read, from hundreds of float32 steps whose matmuls onnxruntime and Keras sum in different orders: on
# trained models they part by up to ~1.5e-5 at a few steps).
PARITY_TOLERANCE = 1e-5
TRAJECTORY_TOLERANCE = 1e-4
# Optional metadata_props key: the graph accepts input_ids shorter than sequence_length (see passes.padding_skip).
PADDING_SKIP_KEY = "padding_skip"
# Optional input of a file with step_probability (passes.batched_rnn.steps_on_request): a bool scalar whose default,
# an initializer of the same name, is false. onnxruntime computes every output of a graph whatever run() fetches, so
# step_probability is computed only when this is fed true; left out, a run answers probability at the cost of a file
# without step_probability, and step_probability is an empty [batch, 0] tensor. Files exported before it compute
# step_probability on every run (the Predictor answers their plain predictions with a copy that drops it).
STEPS_SWITCH_NAME = "with_steps"
STEPS_SWITCH_DOC = (
    f"{STEPS_SWITCH_NAME} (bool, optional, default false): true also computes step_probability [batch, sequence], the "
    "positive probability after each id; left out, step_probability is an empty [batch, 0] tensor and a run costs "
    "what probability alone costs"
)

# An export's companion that reads raw reviews (core.export.text_file) sits beside it: model.onnx -> model.text.onnx.
TEXT_SUFFIX = ".text.onnx"
# Every exported file carries these keys in metadata_props; a file without them was not made by this project.
METADATA_KEYS = (
    "vocabulary",
    "index_from",
    "pad_id",
    "start_id",
    "oov_id",
    "num_words",
    "sequence_length",
    "padding",
    "truncating",
    "normalization",
    "labels",
    "threshold",
    "config",
    "metrics",
    "parity_max_abs_diff",
    "versions",
    "created",
)


class ModelFileError(ValueError):
    """A model file this project cannot use: the message says which file and why, on one line."""


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported file says about itself: enough to turn text into ids and ids into a label."""

    vocabulary: Vocabulary
    sequence_length: int
    padding: str
    truncating: str
    labels: tuple[str, str]
    threshold: float
    config: ExperimentConfig  # the run's config, stored as its JSON
    metrics: dict  # the run's test metrics
    parity_max_abs_diff: float  # Keras vs onnxruntime, measured at export
    versions: dict  # library versions that made the file
    created: str  # ISO 8601, UTC
    # How the graph skips padding (passes.padding_skip), or None: the file then needs rows of sequence_length ids.
    padding_skip: dict | None = None

    def to_props(self) -> dict[str, str]:
        """The metadata_props of the file, every value a string."""
        vocabulary = self.vocabulary
        return {
            "vocabulary": json.dumps(list(vocabulary.words), ensure_ascii=False),
            "index_from": str(vocabulary.index_from),
            "pad_id": str(vocabulary.pad_id),
            "start_id": str(vocabulary.start_id),
            "oov_id": str(vocabulary.oov_id),
            "num_words": str(vocabulary.num_words),
            "sequence_length": str(self.sequence_length),
            "padding": self.padding,
            "truncating": self.truncating,
            "normalization": vocabulary.normalization,
            "labels": json.dumps(list(self.labels)),
            "threshold": repr(float(self.threshold)),
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "parity_max_abs_diff": repr(float(self.parity_max_abs_diff)),
            "versions": json.dumps(self.versions, sort_keys=True),
            "created": self.created,
            **({PADDING_SKIP_KEY: json.dumps(self.padding_skip, sort_keys=True)} if self.padding_skip else {}),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "the model") -> "ModelMetadata":
        """Parse metadata_props; ModelFileError when a key is missing or malformed."""
        missing = [key for key in METADATA_KEYS if key not in props]
        if len(missing) == len(METADATA_KEYS):
            raise ModelFileError(
                f"{source} is an ONNX model but not one exported by this project (no metadata): "
                "export one with python -m core export RUN_DIR"
            )
        if missing:
            raise ModelFileError(
                f"{source} lacks the metadata {', '.join(missing)}: re-export it with python -m core export RUN_DIR"
            )
        try:
            vocabulary = Vocabulary(
                words=tuple(json.loads(props["vocabulary"])),
                num_words=int(props["num_words"]),
                index_from=int(props["index_from"]),
                pad_id=int(props["pad_id"]),
                start_id=int(props["start_id"]),
                oov_id=int(props["oov_id"]),
                normalization=props["normalization"],
            )
            labels = tuple(json.loads(props["labels"]))
            metadata = cls(
                vocabulary=vocabulary,
                sequence_length=int(props["sequence_length"]),
                padding=props["padding"],
                truncating=props["truncating"],
                labels=labels,
                threshold=float(props["threshold"]),
                config=ExperimentConfig.from_dict(json.loads(props["config"])),
                metrics=json.loads(props["metrics"]),
                parity_max_abs_diff=float(props["parity_max_abs_diff"]),
                versions=json.loads(props["versions"]),
                created=props["created"],
                padding_skip=json.loads(props[PADDING_SKIP_KEY]) if props.get(PADDING_SKIP_KEY) else None,
            )
        except (ValueError, TypeError) as error:
            raise ModelFileError(f"{source} has malformed metadata: {first_line(error)}") from None
        if len(labels) != 2 or not all(isinstance(label, str) for label in labels):
            raise ModelFileError(f"{source} has malformed metadata: labels must be two strings, got {labels!r}")
        if metadata.padding not in ("pre", "post") or metadata.truncating not in ("pre", "post"):
            raise ModelFileError(f"{source} has malformed metadata: padding and truncating must be 'pre' or 'post'")
        if metadata.padding_skip is not None and not isinstance(metadata.padding_skip, dict):
            raise ModelFileError(f"{source} has malformed metadata: {PADDING_SKIP_KEY} must be a JSON object")
        if metadata.sequence_length < 1:
            raise ModelFileError(f"{source} has malformed metadata: sequence_length must be positive")
        return metadata


def text_path(ids_path: str | Path) -> Path:
    """Where the text file of an ids file goes: model.onnx -> model.text.onnx, beside it."""
    path = Path(ids_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(stem + TEXT_SUFFIX)


def model_path(choice: str | Path | None = None) -> Path:
    """The model a command or page should use: the one chosen, else the default shipped in models/."""
    from core.paths import DEFAULT_MODEL

    if choice:
        return Path(choice)
    if not DEFAULT_MODEL.exists():
        raise ModelFileError(f"no model at {DEFAULT_MODEL}; export one with python -m core export RUN_DIR")
    return DEFAULT_MODEL


def _attribute_tensors(attributes) -> Iterator:
    """The tensors node attributes hold: dense and sparse ones, and those of the graphs they hold."""
    for attribute in attributes:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        for sparse in [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []:
            yield from (sparse.values, sparse.indices)
        for sparse in attribute.sparse_tensors:
            yield from (sparse.values, sparse.indices)
        for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            yield from _tensors(subgraph)


def _tensors(graph) -> Iterator:
    """Every tensor an ONNX graph holds: initializers, sparse ones, and tensor attributes, in subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def model_tensors(model) -> Iterator:
    """Every tensor a ModelProto holds: its graph's (_tensors) and its local functions' (their nodes' attributes and
    the attributes' defaults)."""
    yield from _tensors(model.graph)
    for function in model.functions:
        yield from _attribute_tensors(function.attribute_proto)
        for node in function.node:
            yield from _attribute_tensors(node.attribute)


def _check_external_data(model, source: str) -> None:
    """Refuse tensors stored outside the file, anywhere in it: onnxruntime would open whatever path they name (relative
    to the working folder: a file there could be read back through the scores)."""
    from onnx import TensorProto

    for tensor in model_tensors(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            raise ModelFileError(
                f"{source} keeps tensor {tensor.name!r} in an external data file; this project only loads "
                "self-contained .onnx files"
            )


def has_steps_switch(model) -> bool:
    """Whether a ModelProto has the STEPS_SWITCH_NAME input (with its default): files exported before it do not."""
    defaults = {tensor.name for tensor in model.graph.initializer}
    return any(value.name == STEPS_SWITCH_NAME and value.name in defaults for value in model.graph.input)


class StepsSession:
    """An onnxruntime session on a file with the steps switch that always feeds it true: every output is computed.

    Everything else (get_inputs, get_outputs, ...) is the session's own."""

    def __init__(self, session) -> None:
        import numpy as np

        self.session = session
        self._switch = {STEPS_SWITCH_NAME: np.array(True)}

    def run(self, output_names, input_feed, run_options=None):
        return self.session.run(output_names, {**self._switch, **input_feed}, run_options)

    def __getattr__(self, name: str):
        return getattr(self.session, name)


# What the tensors of every session of this process may take together: onnxruntime's arena, shared through the
# environment, refuses an allocation past it (a hostile graph's huge tensor fails its run with one message instead of
# taking the machine's memory). Honest runs of this project's files take a few MB a batch.
MEMORY_LIMIT_BYTES = 2 * 1024**3
_arena_lock = threading.Lock()
_arena_registered = False


def _register_arena() -> None:
    """The process's shared CPU arena, capped at MEMORY_LIMIT_BYTES; once a process."""
    global _arena_registered
    import onnxruntime

    with _arena_lock:
        if _arena_registered:
            return
        memory = onnxruntime.OrtMemoryInfo(
            "Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT
        )
        # -1: onnxruntime's defaults for the growth strategy, the first chunk and the dead bytes a chunk may keep.
        onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg(MEMORY_LIMIT_BYTES, -1, -1, -1))
        _arena_registered = True


def session_options():
    """The onnxruntime settings every session of this project uses."""
    import onnxruntime

    _register_arena()
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")
    # One thread per run: the RNN kernel is sequential anyway, and the Predictor runs chunks of a batch on several
    # threads itself. Spinning intra-op threads would fight those for the cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def load_session(data: bytes, source: str):
    """An onnxruntime session on the CPU for a model already checked by Predictor.from_file."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for every kind of bad graph
        raise ModelFileError(f"onnxruntime cannot load {source}: {first_line(error)}") from None


def read_model_file(path: str | Path) -> tuple[bytes, "onnx.ModelProto", ModelMetadata]:
    """The bytes, the parsed ModelProto (weights inline) and metadata of an exported file, or a ModelFileError."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ModelFileError(f"no model file at {source}")
    if path.is_dir():
        raise ModelFileError(f"{source} is a folder, not an .onnx file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read {source}: {reason(error)}") from None
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError):
        raise ModelFileError(f"{source} is not an ONNX file (another format, or a truncated or damaged one)") from None
    # Protobuf parses many byte strings without complaint; a real model has a graph with nodes and an opset.
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(f"{source} is not an ONNX model (no graph)")
    _check_external_data(model, source)
    metadata = ModelMetadata.from_props({prop.key: prop.value for prop in model.metadata_props}, source)
    return data, model, metadata


def positive(scores, threshold: float):
    """The one rule from score to label: positive when the score, read as float64, is at least the threshold (a bool
    array shaped like scores). Float64 on both sides: a float32 score meets a threshold stored as a float64 number."""
    return np.asarray(scores, dtype=np.float64) >= float(threshold)


def label_names(scores, threshold: float, labels: tuple[str, str]) -> list[str]:
    """labels[1] for each positive score by positive's rule, labels[0] for the others."""
    return [labels[1] if is_positive else labels[0] for is_positive in positive(scores, threshold).ravel().tolist()]


def check_threshold(value, name: str = "threshold") -> float:
    """value as a float strictly between 0 and 1, else ValueError with one line saying so."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not math.isfinite(threshold) or not 0.0 < threshold < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return threshold


def _rewritten(path: str | Path, threshold) -> tuple[bytes, float]:
    """The file's bytes with its threshold replaced, and the threshold it had."""
    threshold = check_threshold(threshold)
    _, model, metadata = read_model_file(path)
    # The value is written as ModelMetadata.to_props writes it; the other props, the graph and the weights are
    # serialized back exactly as they were parsed.
    for prop in model.metadata_props:
        if prop.key == "threshold":
            prop.value = repr(threshold)
    return model.SerializeToString(), metadata.threshold


def with_threshold(path: str | Path, threshold: float) -> bytes:
    """The bytes of the exported file at path with its `threshold` metadata replaced; nothing else changes."""
    return _rewritten(path, threshold)[0]


def write_threshold(path: str | Path, threshold: float) -> float:
    """Store threshold in the exported file at path, and in its text file (text_path) when there is one, atomically;
    returns the threshold it had before.

    ValueError for a threshold outside (0, 1), ModelFileError for a file this project did not export.
    """
    from core.atomic import write_bytes

    data, previous = _rewritten(path, threshold)
    companion = text_path(path)
    # The text file beside an ids file is the same model: it gets the same threshold, in the same call.
    text_data = _rewritten(companion, threshold)[0] if companion.is_file() and companion != Path(path) else None
    write_bytes(path, data)
    if text_data is not None:
        write_bytes(companion, text_data)
    return previous
