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

No TensorFlow here: the transform reads a file made by core.export and works on it with onnx and NumPy.
"""

from __future__ import annotations

import json

import numpy as np

from core.atomic import write_bytes
from core.model_file import (
    INPUT_NAME,
    OUTPUT_NAME,
    PADDING_SKIP_KEY,
    PARITY_TOLERANCE,
    TRAJECTORY_NAME,
    TRAJECTORY_TOLERANCE,
)
from core.onnx_graph import batched_simple_rnn, graph_constants
from core.text import pad_sequences

METADATA_KEY = PADDING_SKIP_KEY  # metadata_props key of a file whose graph accepts shorter input_ids
RECURRENT_OPS = ("RNN", "GRU", "LSTM")
PREFIX = "padding_skip"
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class PaddingSkipError(ValueError):
    """The graph is not one this transform understands: one line says why."""


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _check_plain(node) -> None:
    """The node uses the ops' default activations, one forward direction, no clip, no peepholes."""
    attributes = _attributes(node)
    activations = [value.decode() if isinstance(value, bytes) else value for value in attributes.get("activations", [])]
    defaults = {"RNN": [["Tanh"]], "GRU": [["Sigmoid", "Tanh"]], "LSTM": [["Sigmoid", "Tanh", "Tanh"]]}[node.op_type]
    if activations and activations not in defaults:
        raise PaddingSkipError(f"{node.name}: activations {activations} are not the defaults")
    direction = attributes.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward" or "clip" in attributes or attributes.get("input_forget", 0):
        raise PaddingSkipError(f"{node.name}: only forward recurrences without clip or input_forget can skip padding")
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        raise PaddingSkipError(f"{node.name}: LSTM peepholes are not supported")
    if len(node.input) > 4 and node.input[4]:
        raise PaddingSkipError(f"{node.name}: the node already has sequence_lens")


def run_onnx_cell(node, weights: dict[str, np.ndarray], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The ONNX op's state after every step for one sequence inputs [steps, features], in float64, from zero state:
    (h [steps, units], c [steps, units] for an LSTM else None). The ops' formulas, as the ONNX spec writes them."""
    _check_plain(node)
    kernel, recurrent, bias = (weights[name][0].astype(np.float64) for name in node.input[1:4])
    units = recurrent.shape[1]
    gates = kernel.shape[0] // units
    w_bias, r_bias = bias[: gates * units], bias[gates * units :]
    projected = inputs.astype(np.float64) @ kernel.T + w_bias
    state = np.zeros(units)
    carry = np.zeros(units)
    states = np.empty((len(inputs), units))
    carries = np.empty((len(inputs), units)) if node.op_type == "LSTM" else None
    linear_before_reset = _attributes(node).get("linear_before_reset", 0)
    for step, x_part in enumerate(projected):
        if node.op_type == "RNN":
            state = np.tanh(x_part + recurrent @ state + r_bias)
        elif node.op_type == "GRU":
            # Gates z, r, h.
            h_part = recurrent[: 2 * units] @ state + r_bias[: 2 * units]
            update = _sigmoid(x_part[:units] + h_part[:units])
            reset = _sigmoid(x_part[units : 2 * units] + h_part[units:])
            if linear_before_reset:
                hidden = reset * (recurrent[2 * units :] @ state + r_bias[2 * units :])
            else:
                hidden = recurrent[2 * units :] @ (reset * state) + r_bias[2 * units :]
            candidate = np.tanh(x_part[2 * units :] + hidden)
            state = (1.0 - update) * candidate + update * state
        else:
            # Gates i, o, f, c.
            z = x_part + recurrent @ state + r_bias
            input_gate, output_gate = _sigmoid(z[:units]), _sigmoid(z[units : 2 * units])
            forget_gate, candidate = _sigmoid(z[2 * units : 3 * units]), np.tanh(z[3 * units :])
            carry = forget_gate * carry + input_gate * candidate
            state = output_gate * np.tanh(carry)
            carries[step] = carry
        states[step] = state
    return states, carries


def _producers(graph) -> dict:
    return {output: node for node in graph.node for output in node.output}


def _embedding_matrix(graph, first, constants) -> np.ndarray:
    """The embedding matrix the first recurrent node reads (Gather of a constant), through Transposes."""
    producers = _producers(graph)
    tensor = first.input[0]
    for _ in range(8):
        node = producers.get(tensor)
        if node is None:
            break
        if node.op_type == "Gather" and node.input[0] in constants:
            return constants[node.input[0]]
        if node.op_type not in ("Transpose", "Identity", "Squeeze", "Unsqueeze", "Cast"):
            break
        tensor = node.input[0]
    raise PaddingSkipError("cannot find the embedding that feeds the first recurrent layer")


def recurrent_nodes(graph) -> list:
    """The graph's RNN/GRU/LSTM nodes, bottom layer first (ONNX nodes are topologically sorted)."""
    return [node for node in graph.node if node.op_type in RECURRENT_OPS]


def pad_state_tables(proto, sequence_length: int, pad_id: int = 0) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per recurrent layer, the state after k padding steps for k = 0 .. sequence_length: float32 (h, c or None),
    each [sequence_length + 1, units]; row 0 is the zero initial state."""
    graph = proto.graph
    nodes = recurrent_nodes(graph)
    if not nodes:
        raise PaddingSkipError("the graph has no RNN, GRU or LSTM node")
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
        raise PaddingSkipError(
            "a model without mask_padding skips padding only with padding and truncating 'pre': it reads the padding, "
            "and only pre-padding comes before every review's first token"
        )
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
        units = int(_attributes(node)["hidden_size"])
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
        units = int(_attributes(nodes[-1])["hidden_size"])
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
        "input": f"input_ids padded ({padding}) with {pad_id} to any length up to {sequence_length}: a batch needs only "
        "as many columns as its longest review; the score equals the model's on the review padded to "
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



def _worse(known: float, new: float) -> float:
    """The larger difference, NaN winning (max() would drop a NaN that comes second)."""
    return float("nan") if np.isnan(known) or np.isnan(new) else max(known, new)


def _trimmed_batches(ids: np.ndarray, padding: str, pad_id: int, batch_size: int):
    """(rows, ids) of rows sorted by length, each batch only as wide as its longest row; then a few rows alone."""
    lengths = np.maximum(padded_lengths(ids, padding, pad_id), 1)
    order = np.argsort(lengths, kind="stable")
    groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    groups += [order[index : index + 1] for index in np.linspace(0, len(order) - 1, min(8, len(order))).astype(int)]
    for rows in groups:
        width = int(lengths[rows].max())
        batch = ids[rows]
        yield rows, (batch[:, -width:] if padding == "pre" else batch[:, :width])


def output_differences(
    session, expected: dict[str, np.ndarray], ids: np.ndarray, *, padding: str, masked: bool, skips: bool,
    pad_id: int = 0,
) -> dict[str, float]:
    """Output name -> largest |expected - session's| over full id rows fed in batches of 256 and, when the graph
    skips padding, over the rows sorted by length with each batch cut to its longest row (and a few rows alone).

    expected holds each output of the full rows. For a masked model only the tokens' steps of step_probability count:
    Keras repeats the last state on masked steps where the ONNX ops write zeros."""
    names = list(expected)
    input_name = session.get_inputs()[0].name
    worst = dict.fromkeys(names, 0.0)

    def compare(rows: np.ndarray, batch: np.ndarray) -> None:
        got = dict(zip(names, session.run(names, {input_name: batch})))
        for name in names:
            want = expected[name][rows]
            if name == TRAJECTORY_NAME:
                width = batch.shape[1]
                want = want[:, -width:] if padding == "pre" else want[:, :width]
                if masked:
                    keep = batch != pad_id
                    got[name], want = np.where(keep, got[name], 0.0), np.where(keep, want, 0.0)
            worst[name] = _worse(worst[name], float(np.max(np.abs(got[name] - want))))

    for start in range(0, len(ids), 256):
        compare(np.arange(start, min(start + 256, len(ids))), ids[start : start + 256])
    if skips:
        for rows, batch in _trimmed_batches(ids, padding, pad_id, 64):
            compare(rows, batch)
    return worst


def upgrade_file(source, out, *, rows: int = 256, seed: int = 0) -> tuple[dict, float]:
    """Write a copy of an exported file whose graph skips padding, checked against the original on full padding.

    For files exported before the padding-free path existed. Returns (the METADATA_KEY description, the largest
    |original - new| over every output on random reviews cut to their own length). Raises PaddingSkipError.
    """
    import onnx

    from core.model_file import load_session, read_model_file

    _, proto, metadata = read_model_file(source)
    if metadata.padding_skip:
        raise PaddingSkipError(f"{source} already skips padding")
    masked = bool(metadata.config.get("model", {}).get("mask_padding", False))
    original = load_session(proto.SerializeToString(), str(source))
    description = skip_padding(
        proto,
        metadata.sequence_length,
        masked=masked,
        padding=metadata.padding,
        truncating=metadata.truncating,
        pad_id=metadata.vocabulary.pad_id,
    )
    batched_simple_rnn(proto)
    onnx.checker.check_model(proto, full_check=True)
    upgraded = load_session(proto.SerializeToString(), str(out))
    # Random reviews of every length, as the Predictor pads them.
    generator = np.random.default_rng(seed)
    length = metadata.sequence_length
    vocabulary = metadata.vocabulary
    low = vocabulary.oov_id + 1
    sequences = [
        [vocabulary.start_id, *generator.integers(low, vocabulary.num_words, size=int(size) - 1)]
        for size in generator.integers(1, length + 40, size=rows)
    ]
    full = pad_sequences(sequences, length, metadata.padding, metadata.truncating, vocabulary.pad_id)
    names = [output.name for output in original.get_outputs()]
    expected = dict(zip(names, original.run(names, {INPUT_NAME: full})))
    worst = output_differences(
        upgraded, expected, full, padding=metadata.padding, masked=masked, skips=True, pad_id=vocabulary.pad_id
    )
    for name, limit in ((OUTPUT_NAME, PARITY_TOLERANCE), (TRAJECTORY_NAME, TRAJECTORY_TOLERANCE)):
        if name in worst and not worst[name] <= limit:
            raise PaddingSkipError(
                f"the padding-free graph's {name} differs from the original by {worst[name]:.3g}: nothing written"
            )
    props = {prop.key: prop.value for prop in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, METADATA_KEY: json.dumps(description, sort_keys=True)})
    write_bytes(out, proto.SerializeToString())
    return description, worst[OUTPUT_NAME]
