"""SimpleRNN's batch path without TensorFlow: an If running big batches as a Scan of Gemm + Tanh, small ones on RNN.

Also its undoing (native_only), and the steps switch that gives a file with step_probability the speed of the graph
without it for a plain run(["probability"]) (steps_on_request, undone by steps_always). The order these and the
other passes run in is core.export.passes.pass_list's.
"""

from __future__ import annotations

import numpy as np

from core.cells import SIMPLE_RNN
from core.export.model_file import OUTPUT_NAME, STEPS_SWITCH_DOC, STEPS_SWITCH_NAME, TRAJECTORY_NAME, has_steps_switch
from core.export.graph import (
    branch_graph,
    graph_constants,
    inline_branch,
    outer_references,
    prune_graph,
    subgraphs,
    walk_nodes,
)

# Names of the steps switch's If node, its branches and its constants.
SWITCH_PREFIX = "steps_switch"
SWITCH_NODE = f"{SWITCH_PREFIX}/by_request"
BATCH_NODE_SUFFIX = "/by_batch"  # the If a SimpleRNN layer's node becomes: name of the layer's node, then this
# A batch of this many reviews or more runs a SimpleRNN layer as a Scan of Gemm + Tanh: onnxruntime's RNN
# kernel applies tanh element by element and costs ~6x more a review in batches (bench/padding_skip.py), while it is
# the faster of the two for a single review.
SCAN_MIN_BATCH = 16


def batched_simple_rnn(proto) -> int:
    """Give each SimpleRNN node (RNN op) an If: batches of SCAN_MIN_BATCH rows or more run an equivalent Scan (a Gemm
    h R + x_t and a Tanh a step, x_t = x W + b computed for every step at once beforehand), smaller
    ones the RNN node. With sequence_lens, the Scan keeps a row's state past its length (the op's Y there is zero
    instead, and Y_h is the same). Returns how many nodes were wrapped."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    constants = graph_constants(graph)
    wrapped = 0
    for node in [node for node in graph.node if node.op_type == SIMPLE_RNN.onnx_op]:
        inputs = list(node.input) + [""] * (6 - len(node.input))
        if any(name not in constants for name in inputs[1:4]):
            continue
        lengths = inputs[4]  # sequence_lens (a masked model): steps at or past a row's length keep its state
        outputs = list(node.output) + [""] * (2 - len(node.output))
        prefix = node.name
        # The Scan computes in Keras's layout: x_t W + b, then h U.
        kernel, recurrent, bias = SIMPLE_RNN.to_keras(*(constants[name] for name in inputs[1:4]))
        units = recurrent.shape[0]
        outer = [
            numpy_helper.from_array(kernel.copy(), f"{prefix}/scan_kernel"),
            numpy_helper.from_array(recurrent.copy(), f"{prefix}/scan_recurrent_kernel"),
            numpy_helper.from_array(bias.astype(np.float32), f"{prefix}/scan_bias"),
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
                name=f"{prefix}{BATCH_NODE_SUFFIX}",
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


def has_batch_scan(proto) -> bool:
    """The graph, or a branch of its steps switch, has a SimpleRNN layer's batch path (batched_simple_rnn)."""
    return any(node.op_type == "If" and node.name.endswith(BATCH_NODE_SUFFIX) for node in walk_nodes(proto.graph))


def native_only(graph) -> int:
    """Undo batched_simple_rnn in place: each If back to its RNN node (the graph export wrote before the Scan path;
    the benchmark's baseline). The clean-rows path, which holds such an If, is undone first (pass_list.without).
    Returns how many were unwrapped."""
    count = 0
    for node in [node for node in graph.node if node.op_type == "If" and node.name.endswith(BATCH_NODE_SUFFIX)]:
        branch = next(attribute.g for attribute in node.attribute if attribute.name == "else_branch")
        (native,) = branch.node
        renamed = {branch_output.name: outer for branch_output, outer in zip(branch.output, node.output)}
        outputs = [renamed.get(name, "") if name else "" for name in native.output]
        del native.output[:]
        native.output.extend(outputs)
        native.name = node.name.removesuffix(BATCH_NODE_SUFFIX)
        graph.node.insert(list(graph.node).index(node), native)
        graph.node.remove(node)
        count += 1
    prune_graph(graph)
    return count


def steps_on_request(proto, plain) -> bool:
    """Give a graph with step_probability the steps switch in place: a bool input STEPS_SWITCH_NAME whose default (an
    initializer of that name) is false, and an If on it. False runs plain, the same model's graph that answers
    probability alone (pass_list.prediction_graph: no step outputs anywhere), and answers step_probability with an
    empty [batch, 0] tensor; true runs the whole graph.

    onnxruntime computes every output of a graph whatever run() asks for, so a plain run(["probability"]) on a file
    with step_probability paid for every step's probability; with the switch it costs what a file without them costs.
    The nodes both graphs share (padding skip, embedding, ...) stay outside the If and the weights are stored once.
    Returns False, leaving the graph as it was, when it has no step_probability or already has the switch."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    names = [output.name for output in graph.output]
    if TRAJECTORY_NAME not in names or OUTPUT_NAME not in names or has_steps_switch(proto):
        return False
    # Outside the If: the plain graph's nodes that the whole graph has too, fed only by graph inputs, constants and
    # other such nodes (the same node on the same values).
    whole = {node.SerializeToString() for node in graph.node}
    known = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    shared, shared_keys = [], set()
    for node in plain.graph.node:
        key = node.SerializeToString()
        reads = {name for name in node.input if name}
        for subgraph in subgraphs(node):
            reads |= outer_references(subgraph)
        if key in whole and reads <= known:
            shared.append(node)
            shared_keys.add(key)
            known |= {name for name in node.output if name}
    steps_nodes = [node for node in graph.node if node.SerializeToString() not in shared_keys]
    plain_nodes = [node for node in plain.graph.node if node.SerializeToString() not in shared_keys]
    # The plain branch's step_probability: no steps, one row a review.
    input_ids = graph.input[0].name
    constants = {
        "first_axis_start": np.array([0], dtype=np.int64),
        "first_axis_end": np.array([1], dtype=np.int64),
        "no_steps": np.array([0], dtype=np.int64),
    }
    steps = "no_steps"  # inside the branch: its nodes become steps_switch/without_steps/no_steps/...
    plain_nodes += [
        helper.make_node("Shape", [input_ids], [f"{steps}/shape"], name=f"{steps}/shape"),
        helper.make_node("Slice", [f"{steps}/shape", f"{SWITCH_PREFIX}/first_axis_start",
                                   f"{SWITCH_PREFIX}/first_axis_end"], [f"{steps}/batch"], name=f"{steps}/batch"),
        helper.make_node("Concat", [f"{steps}/batch", f"{SWITCH_PREFIX}/no_steps"], [f"{steps}/empty_shape"],
                         name=f"{steps}/empty_shape", axis=0),
        helper.make_node("ConstantOfShape", [f"{steps}/empty_shape"], [TRAJECTORY_NAME], name=f"{steps}/empty",
                         value=numpy_helper.from_array(np.zeros(1, dtype=np.float32))),
    ]
    switch = helper.make_node(
        "If",
        [STEPS_SWITCH_NAME],
        names,
        name=SWITCH_NODE,
        then_branch=branch_graph(steps_nodes, f"{SWITCH_PREFIX}/with_steps", names, "with_steps"),
        else_branch=branch_graph(plain_nodes, f"{SWITCH_PREFIX}/without_steps", names, "without_steps"),
    )
    initializers = {tensor.name: tensor for tensor in plain.graph.initializer}
    initializers.update({tensor.name: tensor for tensor in graph.initializer})
    initializers.update({
        f"{SWITCH_PREFIX}/{name}": numpy_helper.from_array(value, f"{SWITCH_PREFIX}/{name}")
        for name, value in constants.items()
    })
    initializers[STEPS_SWITCH_NAME] = numpy_helper.from_array(np.array(False), STEPS_SWITCH_NAME)
    del graph.node[:]
    graph.node.extend([*shared, switch])
    del graph.initializer[:]
    graph.initializer.extend(initializers.values())
    graph.input.append(helper.make_tensor_value_info(
        STEPS_SWITCH_NAME, TensorProto.BOOL, [],
        doc_string=STEPS_SWITCH_DOC,
    ))
    prune_graph(graph)
    return True


def steps_always(proto) -> bool:
    """Undo steps_on_request in place: the whole graph inlined, every run computing step_probability (the graph files
    had before the switch; Keras weights are read from it). Returns False when the graph has no switch."""
    graph = proto.graph
    found = [node for node in graph.node if node.op_type == "If" and node.name == SWITCH_NODE]
    if not found or not has_steps_switch(proto):
        return False
    (switch,) = found
    # The names the nodes had before steps_on_request prefixed them, the If's outputs for the branch's.
    inline_branch(graph, switch, "then_branch", f"{SWITCH_PREFIX}/with_steps/")
    inputs = [value for value in graph.input if value.name != STEPS_SWITCH_NAME]
    del graph.input[:]
    graph.input.extend(inputs)
    initializers = [tensor for tensor in graph.initializer if tensor.name != STEPS_SWITCH_NAME]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    prune_graph(graph)
    return True
