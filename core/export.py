"""Export a trained model to one self-describing .onnx file with native RNN/GRU/LSTM ops, checked against Keras."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.config import ExperimentConfig, ModelConfig
from core.inference import (
    DEFAULT_THRESHOLD,
    INPUT_NAME,
    LABELS,
    OUTPUT_NAME,
    TRAJECTORY_NAME,
    ModelMetadata,
    session_options,
    outer_references,
    prune_graph,
)
from core.model import layer_names
from core.text import Vocabulary, pad_sequences

OPSET = 17
PARITY_TOLERANCE = 1e-5
PARITY_REVIEWS = 300  # real test reviews checked at export, when the run's data can be read
RANDOM_PARITY_ROWS = 64  # rows of random ids checked at every export
NATIVE_OPS = {"simple_rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
FORBIDDEN_OPS = ("Loop", "Scan")


class ExportError(ValueError):
    """The export cannot be made or failed its checks: one line says why."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how well it matches Keras."""

    path: Path
    parity_max_abs_diff: float  # largest |Keras - onnxruntime| over every checked input and output
    op_counts: dict[str, int]  # ONNX op type -> nodes, subgraphs included
    size_bytes: int
    seconds: float  # conversion, checks and writing
    parity_inputs: str = ""  # which inputs the parity check used, for people


# Conversion -----------------------------------------------------------------------------------------------------


def _layers(model, config: ModelConfig):
    """The Keras layers of a build_model model: embedding, recurrent layers, head (hidden Dense, output)."""
    names = layer_names(config)
    layers = [model.get_layer(name) for name in names]
    count = len(config.recurrent_layers)
    return layers[0], layers[1 : 1 + count], layers[1 + count :]


def _check_exportable(config: ModelConfig) -> None:
    if not config.is_classifier:
        raise ExportError(
            "only classifiers can be exported: this model has no Dense(1, sigmoid) output on its final state"
        )
    if config.mask_padding:
        raise ExportError(
            "models with mask_padding cannot be exported yet: ONNX's recurrent ops can only skip padding at the end "
            "of a sequence, not the pre-padding Keras masks; train with mask_padding false"
        )


def _sequence_copy(layer):
    """The same recurrent layer (same weights) returning its output at every step, for the trajectory output."""
    copy = type(layer).from_config({**layer.get_config(), "return_sequences": True, "name": layer.name + "_steps"})
    copy.build((None, None, layer.get_weights()[0].shape[0]))  # the kernel's rows are the layer's input width
    copy.set_weights(layer.get_weights())
    return copy


def _forward_function(model, config: ModelConfig, trajectory: bool):
    """A tf.function over the model's own layers with a named, fully dynamic [batch, sequence] int32 input."""
    import tensorflow as tf

    embedding, recurrent, head = _layers(model, config)
    last = _sequence_copy(recurrent[-1]) if trajectory else recurrent[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)])
    def forward(input_ids):
        values = embedding(input_ids)
        for layer in recurrent[:-1]:
            values = layer(values, training=False)
        values = last(values, training=False)
        if not trajectory:
            for layer in head:
                values = layer(values)
            return {OUTPUT_NAME: values}
        steps, final = values, values[:, -1, :]
        for layer in head:
            steps, final = layer(steps), layer(final)
        return {OUTPUT_NAME: final, TRAJECTORY_NAME: tf.squeeze(steps, axis=-1)}

    return forward


def _native_node(layer, cell: str, sequence: str, output: str):
    """The native ONNX node of one Keras recurrent layer, its weights, and a Squeeze to [seq, batch, units]."""
    from onnx import helper, numpy_helper

    weights = layer.get_weights()
    kernel, recurrent_kernel, bias = (np.asarray(weight, dtype=np.float32) for weight in weights)
    units = recurrent_kernel.shape[0]
    attributes = {"hidden_size": units}
    if cell == "simple_rnn":
        if layer.activation.__name__ != "tanh":
            raise ExportError(f"{layer.name}: only tanh SimpleRNN layers can be exported")
        op_type = "RNN"
        attributes["activations"] = ["Tanh"]
        packed_bias = np.concatenate([bias, np.zeros_like(bias)])
    elif cell == "gru":
        op_type = "GRU"
        # Keras 3's GRU applies the reset gate after the recurrent matmul and keeps two biases: ONNX's
        # linear_before_reset=1 form, with B = [input bias, recurrent bias].
        if bias.ndim == 2:
            attributes["linear_before_reset"] = 1
            packed_bias = bias.reshape(-1)
        else:
            packed_bias = np.concatenate([bias, np.zeros_like(bias)])
    else:
        raise ExportError(f"{layer.name}: no native rewrite for {cell}")
    prefix = layer.name
    initializers = [
        numpy_helper.from_array(kernel.T[np.newaxis].copy(), f"{prefix}/W"),
        numpy_helper.from_array(recurrent_kernel.T[np.newaxis].copy(), f"{prefix}/R"),
        numpy_helper.from_array(packed_bias[np.newaxis].astype(np.float32), f"{prefix}/B"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}/direction_axis"),
    ]
    nodes = [
        helper.make_node(
            op_type, [sequence, f"{prefix}/W", f"{prefix}/R", f"{prefix}/B"], [f"{prefix}/Y"], name=prefix, **attributes
        ),
        # Y is [seq, directions, batch, units]; the Loop it replaces produced [seq, batch, units].
        helper.make_node("Squeeze", [f"{prefix}/Y", f"{prefix}/direction_axis"], [output], name=f"{prefix}/squeeze"),
    ]
    return nodes, initializers


def _replace_loops(proto, config: ModelConfig, recurrent) -> None:
    """Swap each Loop tf2onnx made for a SimpleRNN or GRU layer for one native node fed by that layer's weights."""
    graph = proto.graph
    producers = {output: node for node in graph.node for output in node.output}
    consumed = Counter(name for node in graph.node for name in node.input)
    consumed.update(output.name for output in graph.output)
    loops = [node for node in graph.node if node.op_type == "Loop"]
    looped = [(layer, spec.cell) for layer, spec in zip(recurrent, config.recurrent_layers) if spec.cell != "lstm"]
    if len(loops) != len(looped):
        raise ExportError(
            f"expected {len(looped)} Loop nodes from tf2onnx, found {len(loops)}: the native rewrite needs updating"
        )
    # ONNX nodes are topologically sorted, so the k-th Loop is the k-th SimpleRNN/GRU layer of the stack.
    for loop, (layer, cell) in zip(loops, looped):
        body = next(attribute.g for attribute in loop.attribute if attribute.name == "body")
        sequences = [
            name
            for name in outer_references(body)
            if name in producers and producers[name].op_type == "Transpose"
        ]
        if len(sequences) != 1:
            raise ExportError(f"{layer.name}: cannot find the Loop's time-major input (found {sequences})")
        carried = len(loop.input) - 2
        scan_outputs = list(loop.output[carried:])
        if len(scan_outputs) != 1 or any(consumed[name] for name in loop.output[:carried]):
            raise ExportError(f"{layer.name}: the Loop's outputs are not the one sequence the rewrite expects")
        nodes, initializers = _native_node(layer, cell, sequences[0], scan_outputs[0])
        position = list(graph.node).index(loop)
        graph.node.remove(loop)
        for offset, node in enumerate(nodes):
            graph.node.insert(position + offset, node)
        graph.initializer.extend(initializers)


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it (None for a graph output)."""
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    for output in graph.output:
        found.setdefault(output.name, []).append(None)
    return found


def _perm(node) -> list[int]:
    return next((list(attribute.ints) for attribute in node.attribute if attribute.name == "perm"), [])


def _cancel_transposes(graph) -> None:
    """Skip Transpose pairs that undo each other (a stacked layer's output turned batch-major and back)."""
    producers = {output: node for node in graph.node for output in node.output}
    outputs = {output.name for output in graph.output}
    replace: dict[str, str] = {}
    for node in graph.node:
        first = producers.get(node.input[0]) if node.op_type == "Transpose" else None
        if first is None or first.op_type != "Transpose" or node.output[0] in outputs:
            continue
        outer, inner = _perm(first), _perm(node)
        if [outer[axis] for axis in inner] == list(range(len(inner))):
            replace[node.output[0]] = first.input[0]
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in replace:
                node.input[index] = replace[name]


def _embed_time_major(graph) -> None:
    """Gather the vectors of transposed ids instead of transposing the gathered vectors: the same tensor, but the
    transpose moves 4 bytes a token instead of embedding_dim * 4."""
    from onnx import helper

    producers = {output: node for node in graph.node for output in node.output}
    consumers = _consumers(graph)
    for node in list(graph.node):
        if node.op_type not in NATIVE_OPS.values():
            continue
        transpose = producers.get(node.input[0])
        if transpose is None or transpose.op_type != "Transpose" or _perm(transpose) != [1, 0, 2]:
            continue
        gather = producers.get(transpose.input[0])
        if gather is None or gather.op_type != "Gather" or len(consumers[gather.output[0]]) != 1:
            continue
        if any(attribute.name == "axis" and attribute.i != 0 for attribute in gather.attribute):
            continue
        time_major_ids = f"{gather.name}/time_major_ids"
        flip = helper.make_node("Transpose", [gather.input[1]], [time_major_ids], name=time_major_ids, perm=[1, 0])
        gather.input[1] = time_major_ids
        gather.output[0] = transpose.output[0]
        graph.node.remove(transpose)
        graph.node.insert(list(graph.node).index(gather), flip)


def _final_state_outputs(graph) -> None:
    """Read a classifier's final state from the op's Y_h output instead of slicing the last step out of Y: without
    a trajectory output, onnxruntime then never writes the whole [seq, batch, units] sequence."""
    from onnx import helper, numpy_helper

    constants = _constants(graph)
    consumers = _consumers(graph)

    def constant(node, index: int) -> list | None:
        if len(node.input) <= index or node.input[index] not in constants:
            return None
        return [int(value) for value in np.ravel(constants[node.input[index]])]

    def takes_last_step(node, time_axis: int) -> bool:
        """A Slice that keeps the last step of time_axis and everything of every other axis."""
        if node.op_type != "Slice":
            return False
        starts, ends, axes = constant(node, 1), constant(node, 2), constant(node, 3)
        steps = constant(node, 4) if len(node.input) > 4 and node.input[4] else [1] * len(starts or [])
        if starts is None or ends is None or axes is None or steps is None or time_axis not in axes:
            return False
        whole = all(end >= 2**31 - 1 for end in ends) and all(step == 1 for step in steps)
        return whole and all(start == (-1 if axis == time_axis else 0) for start, axis in zip(starts, axes))

    def last_step_reads(sequence: str):
        """(Slice, Squeeze) pairs that take the last step of a time-major sequence, directly or batch-major."""
        for reader in consumers.get(sequence, []):
            if reader is not None and reader.op_type == "Transpose" and _perm(reader) == [1, 0, 2]:
                candidates = [(item, 1) for item in consumers.get(reader.output[0], []) if item is not None]
            else:
                candidates = [(reader, 0)] if reader is not None else []
            for last, axis in candidates:
                finals = consumers.get(last.output[0], [])
                if takes_last_step(last, axis) and len(finals) == 1 and finals[0] is not None:
                    if finals[0].op_type == "Squeeze" and constant(finals[0], 1) == [axis]:
                        yield last, finals[0]

    for node in list(graph.node):
        if node.op_type not in NATIVE_OPS.values() or not node.output[0]:
            continue
        readers = consumers.get(node.output[0], [])
        if len(readers) != 1 or readers[0] is None or readers[0].op_type != "Squeeze":
            continue
        squeeze = readers[0]
        if constant(squeeze, 1) != [1]:
            continue
        for last, final in list(last_step_reads(squeeze.output[0])):
            final_state = f"{node.name}/Y_h"
            if len(node.output) < 2 or node.output[1] != final_state:
                outputs = list(node.output) + [""] * (2 - len(node.output))
                outputs[1] = final_state
                del node.output[:]
                node.output.extend(outputs)
            axis = f"{node.name}/state_axis"
            graph.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), axis))
            replacement = helper.make_node("Squeeze", [final_state, axis], [final.output[0]], name=f"{node.name}/final")
            graph.node.remove(last)
            graph.node.remove(final)
            graph.node.insert(list(graph.node).index(node) + 1, replacement)


def op_counts(proto) -> dict[str, int]:
    """ONNX op type -> number of nodes, in the main graph and every subgraph."""
    counts: Counter[str] = Counter()

    def visit(graph) -> None:
        for node in graph.node:
            counts[node.op_type] += 1
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                    visit(subgraph)

    visit(proto.graph)
    return dict(sorted(counts.items()))


def convert(model, config: ModelConfig, *, trajectory: bool = False, native: bool = True):
    """The ONNX ModelProto of a build_model model; native=False keeps tf2onnx's plain Loop graph (for the benchmark)."""
    import logging

    import tf2onnx

    _check_exportable(config)
    # tf2onnx narrates every conversion at WARNING level (freezing retries, ops it removed); failures still raise.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    forward = _forward_function(model, config, trajectory)
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=forward.input_signature, opset=OPSET)
    if not native:
        return proto
    _, recurrent, _ = _layers(model, config)
    graph = proto.graph
    _replace_loops(proto, config, recurrent)
    prune_graph(graph)
    _cancel_transposes(graph)
    prune_graph(graph)
    _embed_time_major(graph)
    _final_state_outputs(graph)
    prune_graph(graph)
    counts = op_counts(proto)
    for cell, op_type in NATIVE_OPS.items():
        expected = sum(spec.cell == cell for spec in config.recurrent_layers)
        if counts.get(op_type, 0) != expected:
            raise ExportError(f"the graph has {counts.get(op_type, 0)} {op_type} nodes, expected {expected}")
    leftover = [op_type for op_type in FORBIDDEN_OPS if counts.get(op_type)]
    if leftover:
        raise ExportError(f"the graph still has {', '.join(leftover)} nodes after the native rewrite")
    return proto


# Weights back out of a file (the benchmark rebuilds the Keras model from a .onnx alone) -------------------------------


def keras_weights(proto, config: ModelConfig) -> list[np.ndarray]:
    """The Keras weights (model.get_weights() order) of a file made by convert(), read from its initializers."""
    from onnx import numpy_helper

    graph = proto.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producers = {output: node for node in graph.node for output in node.output}
    gathers = [node for node in graph.node if node.op_type == "Gather" and node.input[0] in constants]
    if len(gathers) != 1:
        raise ValueError("cannot find the embedding matrix in the file")
    weights = [constants[gathers[0].input[0]]]
    natives = [node for node in graph.node if node.op_type in ("RNN", "GRU", "LSTM")]
    for node, spec in zip(natives, config.recurrent_layers, strict=True):
        packed_kernel, packed_recurrent, packed_bias = (constants[name][0] for name in node.input[1:4])
        units = spec.units
        if node.op_type == "LSTM":
            # ONNX orders the gates i, o, f, c; Keras i, f, c, o.
            order = [0, 2, 3, 1]

            def keras_order(matrix):
                return np.concatenate([np.split(matrix, 4)[gate] for gate in order])

            bias = packed_bias[: 4 * units] + packed_bias[4 * units :]
            weights += [keras_order(packed_kernel).T, keras_order(packed_recurrent).T, keras_order(bias)]
        elif node.op_type == "GRU":
            weights += [packed_kernel.T, packed_recurrent.T, packed_bias.reshape(2, 3 * units)]
        else:
            weights += [packed_kernel.T, packed_recurrent.T, packed_bias[:units] + packed_bias[units:]]
    # The head, walked back from the probability output: Sigmoid <- [Add bias] <- MatMul kernel [<- Relu <- ...].
    head: list[np.ndarray] = []
    tensor = producers[OUTPUT_NAME].input[0]
    dense_count = 1 + (config.hidden_dense_units > 0)
    for _ in range(dense_count):
        node = producers[tensor]
        bias = None
        if node.op_type == "Add":
            constant = [name for name in node.input if name in constants]
            bias = constants[constant[0]]
            tensor = next(name for name in node.input if name not in constants)
            node = producers[tensor]
        if node.op_type != "MatMul" or node.input[1] not in constants:
            raise ValueError("cannot find the Dense layers in the file")
        kernel = constants[node.input[1]]
        head = [kernel, np.zeros(kernel.shape[1], np.float32) if bias is None else bias.reshape(-1)] + head
        tensor = node.input[0]
        if producers.get(tensor) is not None and producers[tensor].op_type == "Relu":
            tensor = producers[tensor].input[0]
    return [np.asarray(weight, dtype=np.float32) for weight in weights + head]


# Parity ---------------------------------------------------------------------------------------------------------


def random_ids(config: ModelConfig, rows: int, seed: int = 0) -> np.ndarray:
    """Random reviews as the model sees them: start id, random word ids, some rows pre- or post-padded."""
    generator = np.random.default_rng(seed)
    length = config.sequence_length
    ids = generator.integers(3, config.vocabulary_size, size=(rows, length), dtype=np.int32)
    ids[:, 0] = 1
    for row in range(1, rows, 2):
        keep = int(generator.integers(1, length + 1))
        ids[row] = pad_sequences([ids[row, :keep]], length, config.padding, config.truncating)[0]
    return ids


def _keras_outputs(model, config: ModelConfig, ids: np.ndarray, trajectory: bool) -> dict[str, np.ndarray]:
    import keras

    outputs = {OUTPUT_NAME: np.asarray(model.predict(ids, batch_size=256, verbose=0)).reshape(len(ids), 1)}
    if trajectory:
        embedding, recurrent, head = _layers(model, config)
        inputs = keras.Input(shape=(None,), dtype="int32")
        values = embedding(inputs)
        for layer in recurrent[:-1]:
            values = layer(values)
        values = _sequence_copy(recurrent[-1])(values)
        for layer in head:
            values = layer(values)
        steps = keras.Model(inputs, values).predict(ids, batch_size=256, verbose=0)
        outputs[TRAJECTORY_NAME] = np.asarray(steps)[..., 0]
    return outputs


def parity(proto, model, config: ModelConfig, ids: np.ndarray, *, trajectory: bool = False) -> float:
    """Largest |Keras - onnxruntime| over the given id rows, for every output of the file."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    expected = _keras_outputs(model, config, ids, trajectory)
    worst = 0.0
    for start in range(0, len(ids), 256):
        batch = ids[start : start + 256]
        got = dict(zip(names, session.run(names, {session.get_inputs()[0].name: batch})))
        for name, values in expected.items():
            worst = max(worst, float(np.max(np.abs(got[name] - values[start : start + 256]))))
    return worst


# Export -----------------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": str(OPSET),
    }


def _write_atomically(data: bytes, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_model(
    model,
    experiment: ExperimentConfig,
    vocabulary: Vocabulary,
    metrics: dict,
    out: str | Path,
    *,
    trajectory: bool = False,
    parity_ids: np.ndarray | None = None,
    parity_inputs: str = "",
) -> ExportResult:
    """Convert, check parity on parity_ids (else the example reviews) plus random ids, and write one .onnx file."""
    import onnx

    started = time.perf_counter()
    config = experiment.model
    if vocabulary.num_words != config.vocabulary_size:
        raise ExportError(
            f"the vocabulary has {vocabulary.num_words:,} ids but the model {config.vocabulary_size:,}: "
            "they come from different runs"
        )
    proto = convert(model, config, trajectory=trajectory)
    if parity_ids is None:
        from core.examples import EXAMPLE_REVIEWS

        parity_ids = pad_sequences(
            [vocabulary.encode(f"{title}. {text}").ids for title, text in EXAMPLE_REVIEWS],
            config.sequence_length,
            config.padding,
            config.truncating,
        )
        parity_inputs = parity_inputs or f"{len(EXAMPLE_REVIEWS)} example reviews"
    parity_inputs = f"{parity_inputs or f'{len(parity_ids)} given reviews'} and {RANDOM_PARITY_ROWS} random id rows"
    ids = np.concatenate([np.asarray(parity_ids, dtype=np.int32), random_ids(config, RANDOM_PARITY_ROWS)])
    difference = parity(proto, model, config, ids, trajectory=trajectory)
    if not difference <= PARITY_TOLERANCE:  # also catches NaN
        raise ExportError(
            f"onnxruntime differs from Keras by {difference:.3g} (limit {PARITY_TOLERANCE:g}) on {parity_inputs}: "
            "the file was not written"
        )
    metadata = ModelMetadata(
        vocabulary=vocabulary,
        sequence_length=config.sequence_length,
        padding=config.padding,
        truncating=config.truncating,
        labels=LABELS,
        threshold=DEFAULT_THRESHOLD,
        config=experiment.to_dict(),
        metrics=dict(metrics),
        parity_max_abs_diff=difference,
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name = "imdb-rnn core.export"
    proto.doc_string = "IMDB review sentiment: int32 input_ids [batch, sequence] -> probability [batch, 1] (positive)"
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    out = Path(out)
    _write_atomically(data, out)
    return ExportResult(
        path=out,
        parity_max_abs_diff=difference,
        op_counts=op_counts(proto),
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        parity_inputs=parity_inputs,
    )


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"cannot read the {what} {path}: {error}") from None


def _real_review_ids(run_info: dict, vocabulary: Vocabulary, config: ModelConfig) -> tuple[np.ndarray, str] | None:
    """A few hundred encoded test reviews from the run's data (or IMDB_DATA), or None when it cannot be read."""
    from core.paths import data_source

    recorded = run_info.get("data") if isinstance(run_info, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    candidates = [
        source
        for source in (recorded.get("path"), recorded.get("source"), data_source())
        if isinstance(source, str) and source and Path(source).exists()
    ]
    if not candidates:
        return None
    try:
        from core.data import load_dataset

        dataset = load_dataset(candidates[0], num_words=vocabulary.num_words)
    except (ValueError, OSError, ImportError):
        return None
    test = dataset.test
    if not len(test):
        return None
    rows = np.random.default_rng(0).choice(len(test), size=min(PARITY_REVIEWS, len(test)), replace=False)
    ids = pad_sequences([test.ids(int(row)) for row in rows], config.sequence_length, config.padding, config.truncating)
    return ids, f"{len(rows)} test reviews of {dataset.source}"


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    trajectory: bool = False,
    parity_reviews: Sequence[str] | None = None,
) -> ExportResult:
    """Export a run's model.keras to out (default RUN_DIR/model.onnx); parity_reviews replaces the checked texts."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"no run folder at {run_dir}")
    for name in ("config.json", "vocab.json", "model.keras"):
        if not (run_dir / name).is_file():
            raise ExportError(f"run {run_dir} has no {name}: only finished runs can be exported")
    run_info = _read_json(run_dir / "run.json", "run status") if (run_dir / "run.json").is_file() else {}
    if isinstance(run_info, dict) and run_info.get("status") == "running":
        from core.runs import read_run

        # A run whose process died still says "running" in run.json; read_run tells the two apart.
        if read_run(run_dir).status == "running":
            raise ExportError(f"run {run_dir} is still training: export it when it has finished")
    experiment = ExperimentConfig.from_dict(_read_json(run_dir / "config.json", "run config"))
    vocabulary = Vocabulary.from_dict(_read_json(run_dir / "vocab.json", "vocabulary"))
    metrics = _read_json(run_dir / "metrics.json", "metrics") if (run_dir / "metrics.json").is_file() else {}
    config = experiment.model
    _check_exportable(config)
    import keras  # after the checks: a mistyped folder fails in milliseconds, not after TensorFlow's start-up

    try:
        model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"cannot load {run_dir / 'model.keras'}: {message}") from None
    if parity_reviews is not None:
        texts = [text for text in parity_reviews if text.strip()]
        if not texts:
            raise ExportError("parity_reviews holds no non-empty review")
        parity = pad_sequences(
            [vocabulary.encode(text).ids for text in texts], config.sequence_length, config.padding, config.truncating
        )
        real = (parity, f"{len(texts)} given reviews")
    else:
        real = _real_review_ids(run_info, vocabulary, config)
    parity_ids, parity_inputs = real if real is not None else (None, "")
    return export_model(
        model,
        experiment,
        vocabulary,
        metrics,
        Path(out) if out else run_dir / "model.onnx",
        trajectory=trajectory,
        parity_ids=parity_ids,
        parity_inputs=parity_inputs,
    )
