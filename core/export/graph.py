"""ONNX graph helpers every pass shares, without TensorFlow: constants, producers and readers, pruning, op counts."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.cells import RECURRENT_OPS


class ExportError(ValueError):
    """The export cannot be made or failed its checks: one line says why."""


def subgraphs(node) -> list:
    """The graphs a node holds in its attributes (an If's branches, a Loop's or Scan's body)."""
    found = []
    for attribute in node.attribute:
        found += [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
    return found


def walk_nodes(graph):
    """Every node of the graph and of its subgraphs, outer nodes first."""
    for node in graph.node:
        yield node
        for subgraph in subgraphs(node):
            yield from walk_nodes(subgraph)


def recurrent_layers(proto) -> dict[str, int]:
    """Recurrent ONNX op type -> how many layers run on it: distinct node names, so a layer whose node is copied into
    both branches of an If (the steps switch, the SimpleRNN batch path) counts once."""
    names: dict[str, set[str]] = {}
    for node in walk_nodes(proto.graph):
        if node.op_type in RECURRENT_OPS:
            names.setdefault(node.op_type, set()).add(node.name)
    return {op_type: len(found) for op_type, found in sorted(names.items())}


def outer_references(graph) -> set[str]:
    """Tensor names an ONNX (sub)graph reads from its enclosing scope."""
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    needed: set[str] = set()
    for node in graph.node:
        for subgraph in subgraphs(node):
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
            for subgraph in subgraphs(node):
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


def sort_nodes(graph) -> None:
    """Order a graph's nodes in place so that each follows the writers of all it reads, what its subgraphs read from
    it included, keeping the given order where it can. Tools that sort by node inputs alone (onnxruntime's quantizer)
    put an If before the values its branches read."""
    available = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            reads = set(node.input)
            for subgraph in subgraphs(node):
                reads |= outer_references(subgraph)
            if reads <= available:
                ordered.append(node)
                available |= set(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError(f"node {waiting[0].name!r} reads a value no node writes")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def graph_constants(graph) -> dict[str, np.ndarray]:
    """Tensor name -> value of every initializer and Constant node of the graph (not of its subgraphs)."""
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def producers(graph) -> dict:
    """Tensor name -> the node that writes it."""
    return {output: node for node in graph.node for output in node.output}


def consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it (None for a graph output)."""
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    for output in graph.output:
        found.setdefault(output.name, []).append(None)
    return found


def perm(node) -> list[int]:
    """A Transpose node's permutation."""
    return next((list(attribute.ints) for attribute in node.attribute if attribute.name == "perm"), [])


def node_attributes(node) -> dict:
    """Attribute name -> Python value (strings stay bytes, as onnx returns them)."""
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def op_counts(proto) -> dict[str, int]:
    """ONNX op type -> number of nodes, in the main graph and every subgraph."""
    counts = Counter(node.op_type for node in walk_nodes(proto.graph))
    return dict(sorted(counts.items()))


def recurrent_nodes(graph) -> list:
    """The graph's RNN/GRU/LSTM nodes, bottom layer first (ONNX nodes are topologically sorted)."""
    return [node for node in graph.node if node.op_type in RECURRENT_OPS]


def recurrent_nodes_anywhere(graph) -> list:
    """The RNN/GRU/LSTM nodes, bottom layer first, also those inside an If made by core.export.passes.batched_rnn."""
    return [node for node in walk_nodes(graph) if node.op_type in RECURRENT_OPS]


def model_props(proto) -> dict[str, str]:
    """The metadata_props of a ModelProto as a dict."""
    return {prop.key: prop.value for prop in proto.metadata_props}


def set_props(proto, props: dict[str, str]) -> None:
    """Add or replace metadata_props entries, keeping the others."""
    existing = model_props(proto)
    existing.update(props)
    del proto.metadata_props[:]
    for key, value in existing.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def renamed_tensors(graph, renames: dict[str, str]) -> None:
    """Rename tensors read or written anywhere in graph and its subgraphs, in place."""
    for node in graph.node:
        for names in (node.input, node.output):
            for index, name in enumerate(names):
                if name in renames:
                    names[index] = renames[name]
        for subgraph in subgraphs(node):
            renamed_tensors(subgraph, renames)
    for value in graph.output:
        if value.name in renames:
            value.name = renames[value.name]


def branch_graph(nodes: list, prefix: str, outputs: list[str], name: str):
    """A subgraph of copies of nodes whose tensors and names are prefixed (a subgraph may not write a name its
    enclosing graph has), answering outputs (names before the prefix)."""
    from onnx import GraphProto, TensorProto, helper

    graph = GraphProto(name=name)
    graph.node.extend(nodes)
    written = {output for node in nodes for output in node.output if output}
    renames = {tensor: f"{prefix}/{tensor}" for tensor in written}
    renamed_tensors(graph, renames)
    for node in graph.node:
        node.name = f"{prefix}/{node.name}" if node.name else ""
    for output in outputs:
        if output not in written:  # computed outside the If (a shared node): passed through
            graph.node.append(helper.make_node("Identity", [output], [f"{prefix}/{output}"], name=f"{prefix}/{output}"))
    graph.output.extend(
        helper.make_tensor_value_info(f"{prefix}/{output}", TensorProto.FLOAT, None) for output in outputs
    )
    return graph


def inline_branch(graph, node, branch: str, prefix: str) -> None:
    """The inverse of branch_graph, in place: the If node replaced by the nodes of its branch ("then_branch" or
    "else_branch"), their tensors and names without prefix, the branch's outputs renamed to the If's."""
    inner = next(attribute.g for attribute in node.attribute if attribute.name == branch)
    written = {output for inner_node in inner.node for output in inner_node.output if output}
    renames = {name: name.removeprefix(prefix) for name in written}
    renames.update({value.name: outer for value, outer in zip(inner.output, node.output)})
    renamed_tensors(inner, renames)
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, inner_node in enumerate(list(inner.node)):
        inner_node.name = inner_node.name.removeprefix(prefix)
        graph.node.insert(position + offset, inner_node)
