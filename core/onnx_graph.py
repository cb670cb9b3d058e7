"""ONNX graph surgery, without TensorFlow: native RNN/GRU nodes in place of tf2onnx's Loops, then tidying passes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.config import ModelConfig
from core.model_file import OUTPUT_NAME

NATIVE_OPS = {"simple_rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
RECURRENT_OPS = tuple(NATIVE_OPS.values())
FORBIDDEN_OPS = ("Loop", "Scan")


class ExportError(ValueError):
    """The export cannot be made or failed its checks: one line says why."""


def outer_references(graph) -> set[str]:
    """Tensor names an ONNX (sub)graph reads from its enclosing scope."""
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    needed: set[str] = set()
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                needed |= outer_references(subgraph)
        needed |= {name for name in node.input if name}
        defined |= set(node.output)
    return needed - defined


def prune_graph(graph) -> None:
    """Drop the nodes, initializers, shape records and recurrent outputs no graph output depends on, in place."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(output in needed for output in node.output if output):
            kept.append(node)
            needed |= {name for name in node.input if name}
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                    needed |= outer_references(subgraph)
    kept.reverse()
    for node in kept:
        if node.op_type in RECURRENT_OPS:
            # Blank the optional outputs nobody reads (Y when only the final state is used), so that onnxruntime does
            # not materialize them.
            outputs = [name if name in needed else "" for name in node.output]
            while outputs and not outputs[-1]:
                outputs.pop()
            del node.output[:]
            node.output.extend(outputs)
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    shapes = [value for value in graph.value_info if value.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(shapes)


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


def graph_constants(graph) -> dict[str, np.ndarray]:
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

    constants = graph_constants(graph)
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


def use_native_ops(proto, config: ModelConfig, recurrent_layers) -> None:
    """Rewrite tf2onnx's graph of a build_model model in place: one native node per recurrent layer, no Loop or Scan.

    recurrent_layers are the model's Keras recurrent layers, whose weights feed the native nodes.
    """
    graph = proto.graph
    _replace_loops(proto, config, recurrent_layers)
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


# The benchmark rebuilds the Keras model from a .onnx file alone.
def keras_weights(proto, config: ModelConfig) -> list[np.ndarray]:
    """The Keras weights (model.get_weights() order) of a file made by convert(), read from its initializers."""
    graph = proto.graph
    constants = graph_constants(graph)
    producers = {output: node for node in graph.node for output in node.output}
    gathers = [
        node
        for node in graph.node
        if node.op_type == "Gather" and node.input[0] in constants and not node.name.startswith("padding_skip/")
    ]
    if len(gathers) != 1:
        raise ValueError("cannot find the embedding matrix in the file")
    weights = [constants[gathers[0].input[0]]]
    natives = recurrent_nodes_anywhere(graph)
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


# A batch of this many reviews or more runs a SimpleRNN layer as a Scan of Gemm + Tanh: onnxruntime's RNN
# kernel applies tanh element by element and costs ~6x more a review in batches (bench/padding_skip.py), while it is
# the faster of the two for a single review.
SCAN_MIN_BATCH = 16


def _walk_nodes(graph):
    """Every node of the graph and of its subgraphs, outer nodes first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from _walk_nodes(subgraph)


def recurrent_nodes_anywhere(graph) -> list:
    """The RNN/GRU/LSTM nodes, bottom layer first, also those inside an If made by batched_simple_rnn."""
    return [node for node in _walk_nodes(graph) if node.op_type in RECURRENT_OPS]


def batched_simple_rnn(proto) -> int:
    """Give each SimpleRNN node (RNN op) an If: batches of SCAN_MIN_BATCH rows or more run an equivalent Scan (a Gemm
    h R + x_t and a Tanh a step, x_t = x W + b computed for every step at once beforehand), smaller
    ones the RNN node. With sequence_lens, the Scan keeps a row's state past its length (the op's Y there is zero
    instead, and Y_h is the same). Returns how many nodes were wrapped."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    constants = graph_constants(graph)
    wrapped = 0
    for node in [node for node in graph.node if node.op_type == "RNN"]:
        inputs = list(node.input) + [""] * (6 - len(node.input))
        if any(name not in constants for name in inputs[1:4]):
            continue
        lengths = inputs[4]  # sequence_lens (a masked model): steps at or past a row's length keep its state
        outputs = list(node.output) + [""] * (2 - len(node.output))
        prefix = node.name
        kernel, recurrent, bias = (constants[name][0] for name in inputs[1:4])
        units = recurrent.shape[0]
        outer = [
            numpy_helper.from_array(kernel.T.copy(), f"{prefix}/scan_kernel"),
            numpy_helper.from_array(recurrent.T.copy(), f"{prefix}/scan_recurrent_kernel"),
            numpy_helper.from_array((bias[:units] + bias[units:]).astype(np.float32), f"{prefix}/scan_bias"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), f"{prefix}/batch_axis_index"),
            numpy_helper.from_array(np.array(SCAN_MIN_BATCH, dtype=np.int64), f"{prefix}/scan_min_batch"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), f"{prefix}/axis_0"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}/axis_1"),
        ]
        x = inputs[0]
        scan = f"{prefix}/scan"

        def value(name: str):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)

        # The scan output (every step's state) only when the layer's Y is read: a stacked layer above, or the
        # trajectory. Past a row's length the Scan keeps the state (as Keras does) and outputs zeros (as the op does).
        wants_steps = bool(outputs[0])
        body_nodes = [
            # z = h R + x in one Gemm (its C input), then tanh.
            helper.make_node("Gemm", [f"{scan}/h", f"{prefix}/scan_recurrent_kernel", f"{scan}/x"], [f"{scan}/z"]),
            helper.make_node("Tanh", [f"{scan}/z"], [f"{scan}/h_new" if lengths else f"{scan}/h_next"]),
        ]
        body_inputs = [value(f"{scan}/h"), value(f"{scan}/x")]
        body_outputs = [value(f"{scan}/h_next")]
        if lengths:
            body_nodes.append(
                helper.make_node("Where", [f"{scan}/m", f"{scan}/h_new", f"{scan}/h"], [f"{scan}/h_next"])
            )
            body_inputs.append(helper.make_tensor_value_info(f"{scan}/m", TensorProto.BOOL, None))
        if wants_steps:
            if lengths:
                body_nodes.append(helper.make_node("Mul", [f"{scan}/h_new", f"{scan}/m_float"], [f"{scan}/y"]))
                body_inputs.append(value(f"{scan}/m_float"))
            else:
                body_nodes.append(helper.make_node("Identity", [f"{scan}/h_next"], [f"{scan}/y"]))
            body_outputs.append(value(f"{scan}/y"))
        body = helper.make_graph(body_nodes, f"{prefix}_scan_body", body_inputs, body_outputs)
        then_nodes = [
            helper.make_node("MatMul", [x, f"{prefix}/scan_kernel"], [f"{scan}/xw"]),
            helper.make_node("Add", [f"{scan}/xw", f"{prefix}/scan_bias"], [f"{scan}/xp"]),
        ]
        if inputs[5]:
            then_nodes.append(helper.make_node("Squeeze", [inputs[5], f"{prefix}/axis_0"], [f"{scan}/h0"]))
        else:
            outer += [
                numpy_helper.from_array(np.array([units], dtype=np.int64), f"{prefix}/units"),
                numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}/batch_slice_start"),
                numpy_helper.from_array(np.array([2], dtype=np.int64), f"{prefix}/batch_slice_end"),
            ]
            then_nodes += [
                helper.make_node("Shape", [x], [f"{scan}/x_shape"]),
                helper.make_node(
                    "Slice",
                    [f"{scan}/x_shape", f"{prefix}/batch_slice_start", f"{prefix}/batch_slice_end"],
                    [f"{scan}/batch"],
                ),
                helper.make_node("Concat", [f"{scan}/batch", f"{prefix}/units"], [f"{scan}/h0_shape"], axis=0),
                helper.make_node("ConstantOfShape", [f"{scan}/h0_shape"], [f"{scan}/h0"],
                                 value=numpy_helper.from_array(np.zeros(1, dtype=np.float32))),
            ]
        scan_inputs = [f"{scan}/h0", f"{scan}/xp"]
        if lengths:
            # mask[t, b, 0] = t < sequence_lens[b]
            outer += [
                numpy_helper.from_array(np.array(0, dtype=np.int64), f"{prefix}/time_axis_index"),
                numpy_helper.from_array(np.array(0, dtype=np.int32), f"{prefix}/zero"),
                numpy_helper.from_array(np.array(1, dtype=np.int32), f"{prefix}/one"),
                numpy_helper.from_array(np.array([2], dtype=np.int64), f"{prefix}/axis_2"),
            ]
            then_nodes += [
                helper.make_node("Shape", [x], [f"{scan}/x_dims"]),
                helper.make_node("Gather", [f"{scan}/x_dims", f"{prefix}/time_axis_index"], [f"{scan}/steps64"]),
                helper.make_node("Cast", [f"{scan}/steps64"], [f"{scan}/steps32"], to=TensorProto.INT32),
                helper.make_node("Range", [f"{prefix}/zero", f"{scan}/steps32", f"{prefix}/one"], [f"{scan}/t"]),
                helper.make_node("Unsqueeze", [f"{scan}/t", f"{prefix}/axis_1"], [f"{scan}/t_column"]),
                helper.make_node("Unsqueeze", [lengths, f"{prefix}/axis_0"], [f"{scan}/lengths_row"]),
                helper.make_node("Less", [f"{scan}/t_column", f"{scan}/lengths_row"], [f"{scan}/mask2"]),
                helper.make_node("Unsqueeze", [f"{scan}/mask2", f"{prefix}/axis_2"], [f"{scan}/mask"]),
            ]
            scan_inputs.append(f"{scan}/mask")
            if wants_steps:
                then_nodes.append(
                    helper.make_node("Cast", [f"{scan}/mask"], [f"{scan}/mask_float"], to=TensorProto.FLOAT)
                )
                scan_inputs.append(f"{scan}/mask_float")
        scan_outputs = [f"{scan}/h_last", f"{scan}/steps"] if wants_steps else [f"{scan}/h_last"]
        then_nodes.append(
            helper.make_node("Scan", scan_inputs, scan_outputs, body=body, num_scan_inputs=len(scan_inputs) - 1)
        )
        then_outputs, else_outputs, if_outputs = [], [], []
        native_inputs = list(inputs)
        while native_inputs and not native_inputs[-1]:
            native_inputs.pop()
        native = helper.make_node(node.op_type, native_inputs, [], name=f"{prefix}/native", domain=node.domain)
        native.attribute.extend(node.attribute)
        native_outputs = []
        for index, (name, axis) in enumerate(zip(outputs, ("axis_1", "axis_0"))):
            if not name:
                native_outputs.append("")
                continue
            source = f"{scan}/steps" if index == 0 else f"{scan}/h_last"
            then_nodes.append(helper.make_node("Unsqueeze", [source, f"{prefix}/{axis}"], [f"{scan}/out_{index}"]))
            then_outputs.append(value(f"{scan}/out_{index}"))
            native_outputs.append(f"{prefix}/native/out_{index}")
            else_outputs.append(value(f"{prefix}/native/out_{index}"))
            if_outputs.append(name)
        while native_outputs and not native_outputs[-1]:
            native_outputs.pop()
        native.output.extend(native_outputs)
        condition = [
            helper.make_node("Shape", [x], [f"{prefix}/x_shape"], name=f"{prefix}/x_shape"),
            helper.make_node("Gather", [f"{prefix}/x_shape", f"{prefix}/batch_axis_index"], [f"{prefix}/batch"],
                             name=f"{prefix}/batch"),
            helper.make_node("GreaterOrEqual", [f"{prefix}/batch", f"{prefix}/scan_min_batch"],
                             [f"{prefix}/use_scan"], name=f"{prefix}/use_scan"),
            helper.make_node(
                "If",
                [f"{prefix}/use_scan"],
                if_outputs,
                name=f"{prefix}/by_batch",
                then_branch=helper.make_graph(then_nodes, f"{prefix}_scan", [], then_outputs),
                else_branch=helper.make_graph([native], f"{prefix}_native", [], else_outputs),
            ),
        ]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(condition):
            graph.node.insert(position + offset, new)
        graph.initializer.extend(outer)
        wrapped += 1
    return wrapped


def native_only(proto) -> int:
    """Undo batched_simple_rnn in place: each If back to its RNN node (the graph export wrote before the Scan path;
    the benchmark's baseline). Returns how many were unwrapped."""
    graph = proto.graph
    count = 0
    for node in [node for node in graph.node if node.op_type == "If" and node.name.endswith("/by_batch")]:
        branch = next(attribute.g for attribute in node.attribute if attribute.name == "else_branch")
        (native,) = branch.node
        renamed = {branch_output.name: outer for branch_output, outer in zip(branch.output, node.output)}
        outputs = [renamed.get(name, "") if name else "" for name in native.output]
        del native.output[:]
        native.output.extend(outputs)
        native.name = node.name.removesuffix("/by_batch")
        graph.node.insert(list(graph.node).index(node), native)
        graph.node.remove(node)
        count += 1
    prune_graph(graph)
    return count
