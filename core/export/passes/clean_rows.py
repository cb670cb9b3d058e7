"""A masked SimpleRNN's fastest batch path: rows padded as the model pads them go straight to one Scan.

The padding skip (passes.padding_skip) accepts any rows: pads anywhere, reviews longer than sequence_length. It finds
each row's tokens, moves them to the front, and runs the layer with sequence_lens (a Scan with a mask a step for
batches, passes.batched_rnn). Most batches need none of that: the Predictor's rows, and a plain user's rows padded to
500 ids, are pre-padded cleanly (pad ids first, then the review, at most sequence_length columns). For those, the
graph this module adds runs only:

    a Scan over the ids' columns, each step  x = F[id]  (a Gather)  and  h = tanh(h U + x)  (one Gemm + Tanh)

with F = E W + b, the embedding folded into the layer's kernel and bias (the Keras layer computes E[id] W + b for
every step; here it is one table, made when the file is written). F's pad-id row is zero: from the zero state, a
pad step gives tanh(0 U + 0) = 0 exactly, so the leading pad steps leave the state where the mask leaves it. No
compaction, no mask, no per-step Where: the padding-skipped scoring of the test split takes about a third of the
time it took through the general path (bench/padding_skip.py).

Which path runs is decided by an If on the rows themselves: at least MIN_BATCH rows (a single review is faster on
onnxruntime's RNN op), at most sequence_length columns, no id below zero, and no pad id after a token in any row.
Anything else (post-padding, a pad inside a review, wider rows) takes the general path, unchanged, so every input
scores as before; the fast path's scores differ from it by float32 rounding (F is summed once, not at every step).

No TensorFlow here: the transform reads the graph passes.batched_rnn leaves and works on it with onnx and NumPy.
"""

from __future__ import annotations

import json

import numpy as np

from core.cells import SIMPLE_RNN
from core.export.passes.batched_rnn import BATCH_NODE_SUFFIX
from core.export.model_file import INPUT_NAME, PADDING_SKIP_KEY
from core.export.graph import (
    branch_graph,
    graph_constants,
    inline_branch,
    model_props,
    outer_references,
    producers,
    prune_graph,
    subgraphs,
    walk_nodes,
)

PREFIX = "clean_rows"
NODE = f"{PREFIX}/by_rows"  # the If choosing between the fast path and the general one
# Fewer rows take the general path: for one review onnxruntime's RNN op is faster (0.11 ms a review of the test split
# there, 0.21 ms through this Scan, whose every step is three kernel calls); from 16 rows on, this path is.
MIN_BATCH = 16


def _needs(graph, node, written_by: dict) -> list:
    """The top-level nodes node depends on, in graph order (node excluded)."""
    wanted, pending = set(), [node]
    while pending:
        current = pending.pop()
        reads = {name for name in current.input if name}
        for subgraph in subgraphs(current):
            reads |= outer_references(subgraph)
        for name in reads:
            writer = written_by.get(name)
            if writer is not None and id(writer) not in wanted:
                wanted.add(id(writer))
                pending.append(writer)
    return [candidate for candidate in graph.node if id(candidate) in wanted]


def has_clean_rows_path(proto) -> bool:
    """The graph, or the default branch of its steps switch, has the path (clean_rows_path)."""
    return any(node.op_type == "If" and node.name.endswith(NODE) for node in walk_nodes(proto.graph))


def clean_rows_path(proto) -> bool:
    """Give the graph of a masked one-layer SimpleRNN model that skips padding, after
    passes.batched_rnn.batched_simple_rnn, the fast path for cleanly pre-padded batches, in place (see the module's
    docstring). Returns False, leaving the graph as it was (less any node nothing reads), for any other graph: no
    padding skip described in the metadata, an unmasked model (no sequence_lens), stacked or other recurrent layers,
    a layer whose every step is read (step_probability), or a graph given the path already."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    described = model_props(proto).get(PADDING_SKIP_KEY)
    if not described or any(node.name == NODE for node in graph.node):
        return False
    skip = json.loads(described)
    if skip.get("method") != "sequence_lens" or skip.get("padding") != "pre":
        return False
    pad_id, sequence_length = int(skip["pad_id"]), int(skip["sequence_length"])
    prune_graph(graph)  # nodes nothing reads would count as readers of what the general path writes
    switches = [node for node in graph.node if node.op_type == "If" and node.name.endswith(BATCH_NODE_SUFFIX)]
    if len(switches) != 1:
        return False
    (switch,) = switches
    (native,) = next(attribute.g for attribute in switch.attribute if attribute.name == "else_branch").node
    inputs = list(native.input) + [""] * (6 - len(native.input))
    # sequence_lens: a masked model; no initial state; only the final state read (the layer's Y unused).
    if native.op_type != SIMPLE_RNN.onnx_op or not inputs[4] or inputs[5] or len(switch.output) != 1:
        return False
    if len(native.output) < 2 or native.output[0]:
        return False
    constants = graph_constants(graph)
    written_by = producers(graph)
    gather = written_by.get(inputs[0])
    if gather is None or gather.op_type != "Gather" or gather.input[0] not in constants:
        return False
    if any(name not in constants for name in inputs[1:4]):
        return False
    general = _needs(graph, switch, written_by) + [switch]
    moved = {id(node) for node in general}
    # The general path moves into the If's other branch: nothing else may read what it writes on the way.
    written = {name for node in general for name in node.output if name}
    outputs = {value.name for value in graph.output}
    for node in graph.node:
        if id(node) in moved:
            continue
        reads = {name for name in node.input if name}
        for subgraph in subgraphs(node):
            reads |= outer_references(subgraph)
        if (reads & written) - set(switch.output):
            return False
    if (outputs & written) - set(switch.output):
        return False

    embedding = constants[gather.input[0]]
    kernel, recurrent, bias = SIMPLE_RNN.to_keras(*(constants[name] for name in inputs[1:4]))
    # What the Keras layer computes at every step, x W + b, once for every id, in float32 as Keras does.
    table = (embedding.astype(np.float32) @ kernel.astype(np.float32) + bias.astype(np.float32)).astype(np.float32)
    table[pad_id] = 0.0
    units = recurrent.shape[0]
    p = PREFIX
    initializers = [
        numpy_helper.from_array(table, f"{p}/table"),
        numpy_helper.from_array(recurrent.astype(np.float32), f"{p}/recurrent_kernel"),
        numpy_helper.from_array(np.array(pad_id, dtype=np.int32), f"{p}/pad_id"),
        numpy_helper.from_array(np.array(0, dtype=np.int32), f"{p}/zero"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), f"{p}/zero64"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), f"{p}/one64"),
        numpy_helper.from_array(np.array(sequence_length, dtype=np.int64), f"{p}/sequence_length"),
        numpy_helper.from_array(np.array(MIN_BATCH, dtype=np.int64), f"{p}/min_batch"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), f"{p}/axis_0"),
        numpy_helper.from_array(np.array([units], dtype=np.int64), f"{p}/units"),
    ]
    make = helper.make_node
    ids = INPUT_NAME
    # Is this batch clean? Many rows, narrow enough, no negative id, and no pad id after a row's first token.
    condition = [
        make("Shape", [ids], [f"{p}/shape"], name=f"{p}/shape"),
        make("Gather", [f"{p}/shape", f"{p}/zero64"], [f"{p}/batch"], name=f"{p}/batch"),
        make("Gather", [f"{p}/shape", f"{p}/one64"], [f"{p}/width"], name=f"{p}/width"),
        make("GreaterOrEqual", [f"{p}/batch", f"{p}/min_batch"], [f"{p}/many"], name=f"{p}/many"),
        make("LessOrEqual", [f"{p}/width", f"{p}/sequence_length"], [f"{p}/narrow"], name=f"{p}/narrow"),
        make("ReduceMin", [ids], [f"{p}/lowest"], name=f"{p}/lowest", keepdims=0),
        make("GreaterOrEqual", [f"{p}/lowest", f"{p}/zero"], [f"{p}/no_negative"], name=f"{p}/no_negative"),
        make("Equal", [ids, f"{p}/pad_id"], [f"{p}/is_pad"], name=f"{p}/is_pad"),
        make("Not", [f"{p}/is_pad"], [f"{p}/is_token"], name=f"{p}/is_token"),
        make("Cast", [f"{p}/is_token"], [f"{p}/token_flags"], name=f"{p}/token_flags", to=TensorProto.INT32),
        make("CumSum", [f"{p}/token_flags", f"{p}/one64"], [f"{p}/tokens_so_far"], name=f"{p}/tokens_so_far"),
        # A pad id counts where a token came before it: the sum is zero exactly when every row is pads then tokens.
        make("Cast", [f"{p}/is_pad"], [f"{p}/pad_flags"], name=f"{p}/pad_flags", to=TensorProto.INT32),
        make("Mul", [f"{p}/pad_flags", f"{p}/tokens_so_far"], [f"{p}/pads_after"], name=f"{p}/pads_after"),
        make("ReduceMax", [f"{p}/pads_after"], [f"{p}/worst"], name=f"{p}/worst", keepdims=0),
        make("LessOrEqual", [f"{p}/worst", f"{p}/zero"], [f"{p}/pads_first"], name=f"{p}/pads_first"),
        make("And", [f"{p}/many", f"{p}/narrow"], [f"{p}/shape_ok"], name=f"{p}/shape_ok"),
        make("And", [f"{p}/no_negative", f"{p}/pads_first"], [f"{p}/rows_ok"], name=f"{p}/rows_ok"),
        make("And", [f"{p}/shape_ok", f"{p}/rows_ok"], [f"{p}/clean"], name=f"{p}/clean"),
    ]

    def value(name: str, kind=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, kind, None)

    # The fast path: ids time-major, a Scan whose step gathers its row of the table and runs the cell.
    step = f"{p}/step"
    body = helper.make_graph(
        [
            make("Gather", [f"{p}/table", f"{step}/id"], [f"{step}/x"]),
            make("Gemm", [f"{step}/h", f"{p}/recurrent_kernel", f"{step}/x"], [f"{step}/z"]),
            make("Tanh", [f"{step}/z"], [f"{step}/h_next"]),
        ],
        f"{p}_step",
        [value(f"{step}/h"), value(f"{step}/id", TensorProto.INT32)],
        [value(f"{step}/h_next")],
    )
    fast = f"{p}/fast"
    fast_nodes = [
        make("Transpose", [ids], [f"{fast}/time_major"], perm=[1, 0]),
        make("Unsqueeze", [f"{p}/batch", f"{p}/axis_0"], [f"{fast}/batch_1d"]),
        make("Concat", [f"{fast}/batch_1d", f"{p}/units"], [f"{fast}/h0_shape"], axis=0),
        make("ConstantOfShape", [f"{fast}/h0_shape"], [f"{fast}/h0"],
             value=numpy_helper.from_array(np.zeros(1, dtype=np.float32))),
        make("Scan", [f"{fast}/h0", f"{fast}/time_major"], [f"{fast}/h_last"], body=body, num_scan_inputs=1),
        make("Unsqueeze", [f"{fast}/h_last", f"{p}/axis_0"], [f"{fast}/y_h"]),
    ]
    final_state = switch.output[0]
    chooser = make(
        "If",
        [f"{p}/clean"],
        [final_state],
        name=NODE,
        then_branch=helper.make_graph(fast_nodes, f"{p}_fast", [], [value(f"{fast}/y_h")]),
        else_branch=branch_graph(general, f"{p}/general", [final_state], f"{p}_general"),
    )
    position = list(graph.node).index(general[0])
    kept = [node for node in graph.node if id(node) not in moved]
    del graph.node[:]
    graph.node.extend(kept[:position] + condition + [chooser] + kept[position:])
    graph.initializer.extend(initializers)
    prune_graph(graph)
    return True


def general_path_only(graph) -> int:
    """Undo clean_rows_path in place: the If replaced by its general branch, inlined under its old names. Returns how
    many were undone (0 or 1)."""
    # In the steps switch's default branch the node's name has the branch's prefix; what it holds does not.
    found = [node for node in graph.node if node.op_type == "If" and node.name.endswith(NODE)]
    if not found:
        return 0
    (chooser,) = found
    inline_branch(graph, chooser, "else_branch", f"{PREFIX}/general/")
    prune_graph(graph)
    return 1
