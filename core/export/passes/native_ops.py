"""The native-op rewrite without TensorFlow: tf2onnx's Loops become RNN/GRU nodes, then tidying; weights read back."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core import cells
from core.export.passes.batched_rnn import steps_always
from core.config import ModelConfig
from core.export.model_file import OUTPUT_NAME, has_steps_switch
from core.export.graph import (
    ExportError,
    consumers,
    graph_constants,
    node_attributes,
    op_counts,
    outer_references,
    perm,
    producers,
    prune_graph,
    recurrent_nodes_anywhere,
)

FORBIDDEN_OPS = ("Loop", "Scan")


def _native_node(layer, cell: cells.Cell, sequence: str, output: str):
    """The native ONNX node of one Keras recurrent layer, its weights, and a Squeeze to [seq, batch, units]."""
    from onnx import helper, numpy_helper

    if layer.get_config().get("activation") != "tanh":
        raise ExportError(f"{layer.name}: only tanh {cell.label} layers can be exported")
    kernel, recurrent_kernel, bias = (np.asarray(weight, dtype=np.float32) for weight in layer.get_weights())
    packed_kernel, packed_recurrent, packed_bias, attributes = cell.to_onnx(kernel, recurrent_kernel, bias)
    prefix = layer.name
    initializers = [
        numpy_helper.from_array(packed_kernel, f"{prefix}/W"),
        numpy_helper.from_array(packed_recurrent, f"{prefix}/R"),
        numpy_helper.from_array(packed_bias.astype(np.float32), f"{prefix}/B"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}/direction_axis"),
    ]
    nodes = [
        helper.make_node(
            cell.onnx_op,
            [sequence, f"{prefix}/W", f"{prefix}/R", f"{prefix}/B"],
            [f"{prefix}/Y"],
            name=prefix,
            **attributes,
        ),
        # Y is [seq, directions, batch, units]; the Loop it replaces produced [seq, batch, units].
        helper.make_node("Squeeze", [f"{prefix}/Y", f"{prefix}/direction_axis"], [output], name=f"{prefix}/squeeze"),
    ]
    return nodes, initializers


def _replace_loops(proto, config: ModelConfig, recurrent) -> None:
    """Swap each Loop tf2onnx made for a recurrent layer (the cells it does not write natively) for one native node
    fed by that layer's weights."""
    graph = proto.graph
    written_by = producers(graph)
    consumed = Counter(name for node in graph.node for name in node.input)
    consumed.update(output.name for output in graph.output)
    loops = [node for node in graph.node if node.op_type == "Loop"]
    looped = [
        (layer, cells.cell(spec.cell))
        for layer, spec in zip(recurrent, config.recurrent_layers)
        if not cells.cell(spec.cell).native_from_tf2onnx
    ]
    if len(loops) != len(looped):
        raise ExportError(
            f"expected {len(looped)} Loop nodes from tf2onnx, found {len(loops)}: the native rewrite needs updating"
        )
    # ONNX nodes are topologically sorted, so the k-th Loop is the k-th looped layer of the stack.
    for loop, (layer, cell) in zip(loops, looped):
        body = next(attribute.g for attribute in loop.attribute if attribute.name == "body")
        sequences = [
            name
            for name in outer_references(body)
            if name in written_by and written_by[name].op_type == "Transpose"
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


def _cancel_transposes(graph) -> None:
    """Skip Transpose pairs that undo each other (a stacked layer's output turned batch-major and back)."""
    written_by = producers(graph)
    outputs = {output.name for output in graph.output}
    replace: dict[str, str] = {}
    for node in graph.node:
        first = written_by.get(node.input[0]) if node.op_type == "Transpose" else None
        if first is None or first.op_type != "Transpose" or node.output[0] in outputs:
            continue
        outer, inner = perm(first), perm(node)
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

    written_by = producers(graph)
    readers_of = consumers(graph)
    for node in list(graph.node):
        if node.op_type not in cells.RECURRENT_OPS:
            continue
        transpose = written_by.get(node.input[0])
        if transpose is None or transpose.op_type != "Transpose" or perm(transpose) != [1, 0, 2]:
            continue
        gather = written_by.get(transpose.input[0])
        if gather is None or gather.op_type != "Gather" or len(readers_of[gather.output[0]]) != 1:
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
    readers_of = consumers(graph)

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
        for reader in readers_of.get(sequence, []):
            if reader is not None and reader.op_type == "Transpose" and perm(reader) == [1, 0, 2]:
                candidates = [(item, 1) for item in readers_of.get(reader.output[0], []) if item is not None]
            else:
                candidates = [(reader, 0)] if reader is not None else []
            for last, axis in candidates:
                finals = readers_of.get(last.output[0], [])
                if takes_last_step(last, axis) and len(finals) == 1 and finals[0] is not None:
                    if finals[0].op_type == "Squeeze" and constant(finals[0], 1) == [axis]:
                        yield last, finals[0]

    for node in list(graph.node):
        if node.op_type not in cells.RECURRENT_OPS or not node.output[0]:
            continue
        readers = readers_of.get(node.output[0], [])
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
    for cell in cells.CELLS.values():
        expected = sum(spec.cell == cell.name for spec in config.recurrent_layers)
        if counts.get(cell.onnx_op, 0) != expected:
            raise ExportError(f"the graph has {counts.get(cell.onnx_op, 0)} {cell.onnx_op} nodes, expected {expected}")
    leftover = [op_type for op_type in FORBIDDEN_OPS if counts.get(op_type)]
    if leftover:
        raise ExportError(f"the graph still has {', '.join(leftover)} nodes after the native rewrite")


# The benchmark rebuilds the Keras model from a .onnx file alone.
def keras_weights(proto, config: ModelConfig) -> list[np.ndarray]:
    """The Keras weights (model.get_weights() order) of an exported file, read from its initializers."""
    if has_steps_switch(proto):
        # Read from the whole graph inlined: one copy of each layer, the head writing probability at the top.
        whole = type(proto)()
        whole.CopyFrom(proto)
        steps_always(whole)
        proto = whole
    graph = proto.graph
    constants = graph_constants(graph)
    written_by = producers(graph)
    gathers = [
        node
        for node in graph.node
        if node.op_type == "Gather" and node.input[0] in constants and not node.name.startswith("padding_skip/")
    ]
    if len(gathers) != 1:
        raise ValueError("cannot find the embedding matrix in the file")
    weights = [constants[gathers[0].input[0]]]
    for node, spec in zip(recurrent_nodes_anywhere(graph), config.recurrent_layers, strict=True):
        cell = cells.by_onnx_op(node.op_type)
        packed = [constants[name] for name in node.input[1:4]]
        weights += list(cell.to_keras(*packed, node_attributes(node)))
    # The head, walked back from the probability output: Sigmoid <- [Add bias] <- MatMul kernel [<- Relu <- ...].
    head: list[np.ndarray] = []
    tensor = written_by[OUTPUT_NAME].input[0]
    dense_count = 1 + (config.hidden_dense_units > 0)
    for _ in range(dense_count):
        node = written_by[tensor]
        bias = None
        if node.op_type == "Add":
            constant = [name for name in node.input if name in constants]
            bias = constants[constant[0]]
            tensor = next(name for name in node.input if name not in constants)
            node = written_by[tensor]
        if node.op_type != "MatMul" or node.input[1] not in constants:
            raise ValueError("cannot find the Dense layers in the file")
        kernel = constants[node.input[1]]
        head = [kernel, np.zeros(kernel.shape[1], np.float32) if bias is None else bias.reshape(-1)] + head
        tensor = node.input[0]
        if written_by.get(tensor) is not None and written_by[tensor].op_type == "Relu":
            tensor = written_by[tensor].input[0]
    return [np.asarray(weight, dtype=np.float32) for weight in weights + head]


def numpy_weights(proto, config: ModelConfig):
    """The weights of an exported file as core.model's NumPy loop takes them (ModelWeights), read by keras_weights:
    so the loop, its backward pass and the pages that show them work on a file alone (the shipped model, an upload).
    ValueError for a file whose weights are not all float (an int8 copy)."""
    from onnx import TensorProto

    from core.model.numpy_loop import DenseWeights, RecurrentWeights, model_weights

    if any(tensor.data_type in (TensorProto.UINT8, TensorProto.INT8) for tensor in proto.graph.initializer):
        raise ValueError("this file keeps its weights quantized (an int8 copy): read its float file instead")
    arrays = keras_weights(proto, config)
    embedding, rest = arrays[0], arrays[1:]
    layers = config.recurrent_layers
    recurrent = []
    for index, spec in enumerate(layers):
        kernel, recurrent_kernel, bias = rest[3 * index : 3 * index + 3]
        recurrent.append(RecurrentWeights(spec.cell, kernel, recurrent_kernel, bias, index < len(layers) - 1))
    head = rest[3 * len(layers) :]
    activations = ["relu"] * (config.hidden_dense_units > 0) + ["sigmoid"]
    dense = [DenseWeights(head[2 * index], head[2 * index + 1], name) for index, name in enumerate(activations)]
    return model_weights(embedding, config.mask_padding, recurrent, dense, source="the file")
