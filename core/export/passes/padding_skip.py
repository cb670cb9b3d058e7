"""Skip the padding exactly: an exported graph that starts each layer from its state after the padding it was not fed.

Every review is pre-padded with the same pad id, so after k padding steps every layer of an unmasked model holds the
same state whatever the review. Those states are computed once here, from the file's own weights, for k = 0 ..
sequence_length, and stored in the graph. The graph then accepts input_ids pre-padded to any length T: each layer
starts from its state after sequence_length - T padding steps, which gives the score the model gives the review padded
to sequence_length, in T steps instead of sequence_length. A single review runs only its own tokens; a batch sorted
by length runs only as many steps as its longest review.

A model trained with mask_padding (Keras Embedding(mask_zero=True)) leaves its state unchanged on padded steps: its
table is all zeros, and a batch's shorter rows go through the recurrent ops with ONNX's sequence_lens, after their
tokens are moved to the front (the ops skip padding only at the end of a sequence).

No TensorFlow here: the transform reads a file made by core.export.convert and works on it with onnx and NumPy.
"""

from __future__ import annotations

import numpy as np

from core import cells
from core.export.model_file import INPUT_NAME, PADDING_SKIP_KEY, TRAJECTORY_NAME
from core.export.graph import graph_constants, node_attributes, producers, recurrent_nodes
from core.model.numpy_loop import RecurrentWeights, run_layer

METADATA_KEY = PADDING_SKIP_KEY  # metadata_props key of a file whose graph accepts shorter input_ids
PREFIX = "padding_skip"
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

UNMASKED_NEEDS_PRE = (
    "a model without mask_padding skips padding only with padding and truncating 'pre': it reads the padding, "
    "and only pre-padding comes before every review's first token"
)


class PaddingSkipError(ValueError):
    """The graph is not one this transform understands: one line says why."""


def _check_plain(node) -> None:
    """The node uses the ops' default activations, one forward direction, no clip, no peepholes."""
    attributes = node_attributes(node)
    activations = [value.decode() if isinstance(value, bytes) else value for value in attributes.get("activations", [])]
    if activations and activations != list(cells.by_onnx_op(node.op_type).activations):
        raise PaddingSkipError(f"{node.name}: activations {activations} are not the defaults")
    direction = attributes.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward" or "clip" in attributes or attributes.get("input_forget", 0):
        raise PaddingSkipError(f"{node.name}: only forward recurrences without clip or input_forget can skip padding")
    if len(node.input) > 7 and node.input[7]:
        raise PaddingSkipError(f"{node.name}: peepholes (an LSTM's input P) are not supported")
    if len(node.input) > 4 and node.input[4]:
        raise PaddingSkipError(f"{node.name}: the node already has sequence_lens")


def run_onnx_cell(node, weights: dict[str, np.ndarray], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The ONNX node's state after every step for one sequence inputs [steps, features], in float64, from zero state:
    (h [steps, units], c [steps, units] for a cell with a carry (LSTM) else None). The node's weights go to Keras's
    layout through core.cells and run through core.model.numpy_loop's loop: one implementation of each cell's maths."""
    _check_plain(node)
    cell = cells.by_onnx_op(node.op_type)
    packed = [weights[name].astype(np.float64) for name in node.input[1:4]]
    kernel, recurrent_kernel, bias = cell.to_keras(*packed, node_attributes(node))
    layer = RecurrentWeights(cell.name, kernel, recurrent_kernel, bias, return_sequences=True)
    states, carries = run_layer(layer, np.asarray(inputs, dtype=np.float64)[np.newaxis])
    return states[0], None if carries is None else carries[0]


def _embedding_matrix(graph, first, constants) -> np.ndarray:
    """The embedding matrix the first recurrent node reads (Gather of a constant), through Transposes."""
    written_by = producers(graph)
    tensor = first.input[0]
    for _ in range(8):
        node = written_by.get(tensor)
        if node is None:
            break
        if node.op_type == "Gather" and node.input[0] in constants:
            return constants[node.input[0]]
        if node.op_type not in ("Transpose", "Identity", "Squeeze", "Unsqueeze", "Cast"):
            break
        tensor = node.input[0]
    raise PaddingSkipError("cannot find the embedding that feeds the first recurrent layer")


def pad_state_tables(proto, sequence_length: int, pad_id: int = 0) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per recurrent layer, the state after k padding steps for k = 0 .. sequence_length: float32 (h, c or None),
    each [sequence_length + 1, units]; row 0 is the zero initial state."""
    graph = proto.graph
    nodes = recurrent_nodes(graph)
    if not nodes:
        raise PaddingSkipError(f"the graph has no recurrent node ({', '.join(cells.RECURRENT_OPS)})")
    constants = graph_constants(graph)
    for node in nodes:
        missing = [name for name in node.input[1:4] if name not in constants]
        if missing:
            raise PaddingSkipError(f"{node.name}: weights {missing} are not constants")
    embedding = _embedding_matrix(graph, nodes[0], constants)
    inputs = np.repeat(embedding[pad_id][np.newaxis].astype(np.float64), sequence_length, axis=0)
    tables = []
    for node in nodes:
        states, carries = run_onnx_cell(node, constants, inputs)
        units = states.shape[1]
        h_table = np.concatenate([np.zeros((1, units)), states]).astype(np.float32)
        c_table = None if carries is None else np.concatenate([np.zeros((1, units)), carries]).astype(np.float32)
        tables.append((h_table, c_table))
        inputs = states  # the next layer reads this layer's output at every padding step
    return tables


def _consumers_of(graph, name: str) -> list:
    return [node for node in graph.node if name in node.input]


def skip_padding(
    proto, sequence_length: int, *, masked: bool, padding: str = "pre", truncating: str = "pre", pad_id: int = 0
) -> dict:
    """Rewrite an exported graph in place so that input_ids may be as short as a batch's longest review (see the
    module's doc); rows fed at full sequence_length give what they gave before.

    Returns the description stored under METADATA_KEY.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    if [value.name for value in graph.input] != [INPUT_NAME]:
        raise PaddingSkipError(f"the graph must have one input named {INPUT_NAME}")
    if any(node.name.startswith(PREFIX + "/") for node in graph.node):
        raise PaddingSkipError("the graph already skips padding")
    nodes = recurrent_nodes(graph)
    for node in nodes:
        _check_plain(node)
    tables = None if masked else pad_state_tables(proto, sequence_length, pad_id)
    new_nodes = []
    initializers = []

    def constant(name: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), f"{PREFIX}/{name}"))
        return f"{PREFIX}/{name}"

    def add(op_type: str, inputs: list[str], name: str, **attributes) -> str:
        output = f"{PREFIX}/{name}"
        new_nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def add_two(op_type: str, inputs: list[str], name: str, **attributes) -> tuple[str, str]:
        outputs = [f"{PREFIX}/{name}_0", f"{PREFIX}/{name}_1"]
        new_nodes.append(helper.make_node(op_type, inputs, outputs, name=f"{PREFIX}/{name}", **attributes))
        return outputs[0], outputs[1]

    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise PaddingSkipError(f"padding and truncating must be 'pre' or 'post', got {padding!r} and {truncating!r}")
    if not masked and (padding, truncating) != ("pre", "pre"):
        raise PaddingSkipError(UNMASKED_NEEDS_PRE)
    readers = _consumers_of(graph, INPUT_NAME)
    shape = add("Shape", [INPUT_NAME], "input_shape")
    batch = add("Gather", [shape, constant("batch_index", np.array([0], dtype=np.int64))], "batch")
    if masked:
        # Keras skips every pad id of a masked model. The ops skip only steps past a row's sequence_lens, so each
        # row's kept tokens move to the front in their order: sort positions by (not kept, position). A row longer
        # than sequence_length keeps the tokens pad_sequences would keep: the last (truncating "pre") or the first.
        width = add("Gather", [shape, constant("time_index", np.array([1], dtype=np.int64))], "width")
        is_token = add(
            "Not", [add("Equal", [INPUT_NAME, constant("pad_id", np.array(pad_id, dtype=np.int32))], "is_pad")],
            "is_token",
        )
        token_flags = add("Cast", [is_token], "token_flags", to=TensorProto.INT64)
        rank = add("Sub", [add("CumSum", [token_flags, constant("time_axis_scalar", np.array(1, dtype=np.int64))],
                               "tokens_so_far"), token_flags], "token_rank")  # tokens before this position
        limit = constant("sequence_length_1d", np.array([sequence_length], dtype=np.int64))
        if truncating == "pre":
            count = add("ReduceSum", [token_flags, constant("sum_axes", [1])], "token_count", keepdims=1)
            in_window = add("GreaterOrEqual", [rank, add("Sub", [count, limit], "first_kept")], "in_window")
        else:
            in_window = add("Less", [rank, limit], "in_window")
        kept = add("And", [is_token, in_window], "kept")
        kept_flags = add("Cast", [kept], "kept_flags", to=TensorProto.INT64)
        lengths = add("ReduceSum", [kept_flags, constant("sum_axes_2", [1])], "lengths64", keepdims=0)
        lengths32 = add("Cast", [lengths], "lengths", to=TensorProto.INT32)
        positions = add(
            "Range",
            [constant("zero", np.array(0, dtype=np.int64)),
             add("Squeeze", [width, constant("axis_0", [0])], "width_scalar"),
             constant("one", np.array(1, dtype=np.int64))],
            "positions",
        )
        not_kept = add("Sub", [constant("one_1d", np.array([1], dtype=np.int64)), kept_flags], "not_kept")
        keys = add("Add", [add("Mul", [not_kept, width], "pad_offset"), positions], "sort_keys")
        _, order = add_two(
            "TopK", [add("Cast", [keys], "sort_keys_f", to=TensorProto.DOUBLE), width], "front_order",
            axis=1, largest=0, sorted=1,
        )
        front = add("GatherElements", [INPUT_NAME, order], "front_ids", axis=1)
        # Everything past the longest row's kept tokens is padding: run at most sequence_length steps.
        ids = add(
            "Slice",
            [front, constant("cut_starts", [0]), limit, constant("time_axis", [1])],
            "ids",
        )
        source = ids
    else:
        # Longer rows keep their last sequence_length ids, as pad_sequences(truncating="pre") keeps them.
        ids = add(
            "Slice",
            [INPUT_NAME, constant("cut_starts", [-sequence_length]), constant("cut_ends", [INT64_MAX]),
             constant("time_axis", [1])],
            "ids",
        )
        fed = add("Gather", [add("Shape", [ids], "shape"), constant("time_index", np.array(1, dtype=np.int64))],
                  "columns_fed")
        done = add("Sub", [constant("sequence_length", np.array(sequence_length, dtype=np.int64)), fed], "pad_done")
        source = ids
    for reader in readers:
        for index, name in enumerate(reader.input):
            if name == INPUT_NAME:
                reader.input[index] = source

    last_sequence = None
    for layer, node in enumerate(nodes):
        inputs = list(node.input) + [""] * (8 - len(node.input))
        units = int(node_attributes(node)["hidden_size"])
        if masked:
            inputs[4] = lengths32
            inputs[5] = inputs[6] = ""  # zero initial state: the padding never touched it
        else:
            state_shape = add("Concat", [constant(f"one_{layer}", [1]), batch, constant(f"units_{layer}", [units])],
                              f"state_shape_{layer}", axis=0)
            h_table, c_table = tables[layer]
            h_row = add("Gather", [constant(f"h_after_padding_{layer}", h_table), done], f"h_row_{layer}")
            inputs[5] = add("Expand", [h_row, state_shape], f"initial_h_{layer}")
            if c_table is not None:
                c_row = add("Gather", [constant(f"c_after_padding_{layer}", c_table), done], f"c_row_{layer}")
                inputs[6] = add("Expand", [c_row, state_shape], f"initial_c_{layer}")
        while inputs and not inputs[-1]:
            inputs.pop()
        del node.input[:]
        node.input.extend(inputs)
        last_sequence = node.output[0] if node.output and node.output[0] else None

    if masked and last_sequence and TRAJECTORY_NAME in {output.name for output in graph.output}:
        # The last layer's steps come out in the kept tokens' order: scatter them back to the input's positions
        # (padding and cut tokens hold zeros). Y is [steps, 1, batch, units]; work on its squeezed [steps, batch,
        # units] form.
        squeezes = [reader for reader in _consumers_of(graph, last_sequence) if reader.op_type == "Squeeze"]
        if len(squeezes) != 1:
            raise PaddingSkipError(f"{nodes[-1].name}: expected one Squeeze reading its steps")
        sequence = squeezes[0].output[0]
        units = int(node_attributes(nodes[-1])["hidden_size"])
        # Only the first `steps` entries of each row's order were run; scatter them into a [width, batch, units] zero.
        steps_run = add("Shape", [sequence], "steps_shape")
        order_run = add(
            "Slice", [order, constant("order_starts", [0]),
                      add("Gather", [steps_run, constant("steps_index", np.array([0], dtype=np.int64))],
                          "steps_run"),
                      constant("order_axis", [1])], "steps_order",
        )
        order_time_major = add("Transpose", [order_run], "steps_order_tm", perm=[1, 0])
        target_shape = add("Concat", [width, batch, constant("units_y", [units])], "steps_target_shape", axis=0)
        index = add(
            "Expand",
            [add("Unsqueeze", [order_time_major, constant("axis_2", [2])], "steps_index_3d"), steps_run],
            "steps_scatter_index",
        )
        zeros = add("ConstantOfShape", [target_shape], "steps_zeros",
                    value=numpy_helper.from_array(np.zeros(1, dtype=np.float32)))
        aligned = add("ScatterElements", [zeros, index, sequence], "steps_aligned", axis=0)
        for reader in _consumers_of(graph, sequence):
            if reader.name.startswith(PREFIX + "/"):
                continue
            for index_in, name in enumerate(reader.input):
                if name == sequence:
                    reader.input[index_in] = aligned
        tail_after = squeezes[0]
    else:
        tail_after = None

    # The new nodes read only the graph input and constants, except the ones placed after the last recurrent node.
    first = list(graph.node).index(nodes[0]) if nodes else 0
    head = [node for node in new_nodes if not node.name.startswith(f"{PREFIX}/steps_")]
    tail = [node for node in new_nodes if node.name.startswith(f"{PREFIX}/steps_")]
    earliest = min([first] + [list(graph.node).index(reader) for reader in readers])
    for offset, node in enumerate(head):
        graph.node.insert(earliest + offset, node)
    if tail:
        position = list(graph.node).index(tail_after) + 1
        for offset, node in enumerate(tail):
            graph.node.insert(position + offset, node)
    graph.initializer.extend(initializers)
    return {
        "method": "sequence_lens" if masked else "pad_states",
        "sequence_length": sequence_length,
        "padding": padding,
        "pad_id": pad_id,
        "input": f"input_ids padded ({padding}) with {pad_id} to any length up to {sequence_length}: a batch needs "
        "only as many columns as its longest review; the score equals the model's on the review padded to "
        f"{sequence_length}",
    }


def padded_lengths(ids: np.ndarray, padding: str, pad_id: int = 0) -> np.ndarray:
    """How many ids of each padded row remain once its leading (pre) or trailing (post) padding is dropped."""
    ids = np.asarray(ids)
    steps = ids.shape[1]
    tokens = ids != pad_id
    present = tokens.any(axis=1)
    if padding == "pre":
        return np.where(present, steps - tokens.argmax(axis=1), 0)
    return np.where(present, steps - tokens[:, ::-1].argmax(axis=1), 0)
