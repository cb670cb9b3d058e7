"""The graph passes of an exported file, written once and in order: what each needs, how it is applied, how to tell
it is there, how to leave it out.

Export applies them to tf2onnx's graph; upgrade adds the ones an older file lacks; the Predictor's prediction-only
graph, the int8 copy without the clean-rows path and the benchmarks' baselines leave some out. Each is a walk over
PASSES, so a new pass is one entry here (and its module and tests): see docs/ARCHITECTURE.md.

A pass that can be left out is undone in place; the passes after it are undone first and redone after it, so that
each sees the graph it was written for (the steps switch, last, copies the graph it wraps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from core.export.graph import model_props, prune_graph, recurrent_layers, set_props
from core.export.model_file import OUTPUT_NAME, PADDING_SKIP_KEY, TRAJECTORY_NAME, has_steps_switch
from core.export.passes import batched_rnn, clean_rows, native_ops, padding_skip, text_front


@dataclass(frozen=True)
class PassInputs:
    """What the passes read beside the graph: the model's padding rule, and for the first and last pass more."""

    sequence_length: int
    masked: bool  # the model masks padding (mask_padding): the padding skip feeds sequence_lens
    padding: str  # "pre" or "post", as the model pads
    truncating: str  # "pre" or "post", as the model cuts long reviews
    pad_id: int = 0
    config: object = None  # the ModelConfig, for the native ops
    recurrent_layers: tuple = ()  # the Keras recurrent layers, for the native ops
    vocabulary: object = None  # the Vocabulary, for the text front

    @classmethod
    def from_config(cls, config, **more) -> "PassInputs":
        """The inputs of a ModelConfig; more names the optional fields (pad_id, recurrent_layers, vocabulary)."""
        return cls(
            config.sequence_length, config.mask_padding, config.padding, config.truncating, config=config, **more
        )

    @property
    def skips_padding(self) -> bool:
        """Whether the model's graph can accept rows shorter than sequence_length (the padding skip's rule)."""
        return self.masked or (self.padding, self.truncating) == ("pre", "pre")


@dataclass(frozen=True)
class GraphPass:
    """One rewrite of the exported graph."""

    name: str
    needs: str  # what the graph (and PassInputs) must hold for the pass to apply; it leaves any other graph as it was
    apply: Callable  # (proto, PassInputs | None, left_out: frozenset[str]) -> bool: whether it changed the graph
    present: Callable  # (proto) -> bool
    leave_out: Callable | None = None  # (proto) -> bool, undo in place; None: a pass that stays once applied
    redo_needs_inputs: bool = field(default=False)  # apply reads PassInputs, so the pass cannot be redone from a file
    in_ids_file: bool = True  # False: the pass makes the companion text file, not the ids file


def _native_ops(proto, inputs: PassInputs, left_out) -> bool:
    # Not on recurrent_layers(proto): tf2onnx writes some layers as native nodes already, and the rewrite tidies them.
    if not inputs.recurrent_layers:
        return False
    native_ops.use_native_ops(proto, inputs.config, inputs.recurrent_layers)
    return True


def _padding_skip(proto, inputs: PassInputs, left_out) -> bool:
    if PADDING_SKIP_KEY in model_props(proto) or not inputs.skips_padding:
        return False
    description = padding_skip.skip_padding(
        proto,
        inputs.sequence_length,
        masked=inputs.masked,
        padding=inputs.padding,
        truncating=inputs.truncating,
        pad_id=inputs.pad_id,
    )
    # The file says how its graph reads shorter rows; the clean-rows pass reads it too.
    set_props(proto, {PADDING_SKIP_KEY: json.dumps(description, sort_keys=True)})
    return True


def _batch_scan(proto, inputs, left_out) -> bool:
    return batched_rnn.batched_simple_rnn(proto) > 0


def _clean_rows(proto, inputs, left_out) -> bool:
    return clean_rows.clean_rows_path(proto)


def _general_path_only(proto) -> bool:
    return clean_rows.general_path_only(proto.graph) > 0


def _steps_switch(proto, inputs, left_out) -> bool:
    from onnx import ModelProto

    names = [output.name for output in proto.graph.output]
    if TRAJECTORY_NAME not in names or OUTPUT_NAME not in names or has_steps_switch(proto):
        return False
    plain = ModelProto()
    plain.CopyFrom(proto)
    prediction_graph(plain, left_out)
    return batched_rnn.steps_on_request(proto, plain)


def _text_front(proto, inputs: PassInputs, left_out) -> bool:
    if text_front.has_text_front(proto):
        return False
    proto.CopyFrom(
        text_front.with_text_front(proto, inputs.vocabulary, inputs.sequence_length, inputs.padding, inputs.truncating)
    )
    return True


def _ids_part(proto) -> bool:
    if not text_front.has_text_front(proto):
        return False
    proto.CopyFrom(text_front.ids_part(proto))
    return True


NATIVE_OPS = GraphPass(
    "native_ops",
    needs="tf2onnx's graph of a build_model model (a Loop a recurrent layer) and the model's Keras recurrent layers",
    apply=_native_ops,
    present=lambda proto: bool(recurrent_layers(proto)) and not any(
        node.op_type in native_ops.FORBIDDEN_OPS for node in proto.graph.node
    ),
    redo_needs_inputs=True,
)
PADDING_SKIP = GraphPass(
    "padding_skip",
    needs="native ops; a model that masks padding, or pads and truncates at the front (PassInputs.skips_padding)",
    apply=_padding_skip,
    present=lambda proto: PADDING_SKIP_KEY in model_props(proto),
    redo_needs_inputs=True,
)
BATCH_SCAN = GraphPass(
    "batch_scan",
    needs="SimpleRNN layers as RNN nodes with constant weights",
    apply=_batch_scan,
    present=batched_rnn.has_batch_scan,
    leave_out=lambda proto: batched_rnn.native_only(proto.graph) > 0,
)
CLEAN_ROWS = GraphPass(
    "clean_rows",
    needs="the padding skip and the batch Scan of a masked one-layer SimpleRNN whose steps nobody reads",
    apply=_clean_rows,
    present=clean_rows.has_clean_rows_path,
    leave_out=_general_path_only,
)
STEPS_SWITCH = GraphPass(
    "steps_switch",
    needs="a step_probability output beside probability",
    apply=_steps_switch,
    present=has_steps_switch,
    leave_out=batched_rnn.steps_always,
)
TEXT_FRONT = GraphPass(
    "text_front",
    needs="an ids file (input_ids first) and its Vocabulary; makes the companion text file",
    apply=_text_front,
    present=text_front.has_text_front,
    leave_out=_ids_part,
    redo_needs_inputs=True,
    in_ids_file=False,
)

PASSES = (NATIVE_OPS, PADDING_SKIP, BATCH_SCAN, CLEAN_ROWS, STEPS_SWITCH, TEXT_FRONT)
BY_NAME = {graph_pass.name: graph_pass for graph_pass in PASSES}
# What export's padding_skip=False leaves out: the graph files had before the padding-free path.
AFTER_NATIVE_OPS = frozenset(graph_pass.name for graph_pass in PASSES[1:] if graph_pass.in_ids_file)


def _names(names) -> frozenset[str]:
    found = frozenset([names] if isinstance(names, str) else names)
    unknown = found - BY_NAME.keys()
    if unknown:
        raise ValueError(f"no graph pass is named {', '.join(sorted(unknown))}: the passes are {', '.join(BY_NAME)}")
    return found


def apply_passes(proto, inputs: PassInputs, left_out=frozenset()) -> list[str]:
    """Apply every pass of an ids file in order, in place, except those named in left_out; the names applied."""
    left_out = _names(left_out)
    return [
        graph_pass.name
        for graph_pass in PASSES
        if graph_pass.in_ids_file and graph_pass.name not in left_out and graph_pass.apply(proto, inputs, left_out)
    ]


def present_passes(proto) -> list[str]:
    """The names of the passes a graph has, in order."""
    return [graph_pass.name for graph_pass in PASSES if graph_pass.present(proto)]


def _undo_from(proto, first: int) -> list[GraphPass]:
    """Undo, last first, every pass from index first on that the graph has; the ones undone, in order."""
    undone = [graph_pass for graph_pass in PASSES[first:] if graph_pass.present(proto)]
    for graph_pass in reversed(undone):
        if graph_pass.leave_out is None:
            raise ValueError(f"the {graph_pass.name} pass cannot be left out of a graph that has it")
        if graph_pass.redo_needs_inputs and graph_pass is not undone[0]:
            raise ValueError(f"the {graph_pass.name} pass would have to be redone, which needs more than the file")
        graph_pass.leave_out(proto)
    return undone


def without(proto, names) -> bool:
    """Leave the named passes out of a graph in place, the others it has kept (redone over what remains). Returns
    False, leaving the graph as it was, when it has none of them."""
    names = _names(names)
    had = [index for index, graph_pass in enumerate(PASSES) if graph_pass.name in names and graph_pass.present(proto)]
    if not had:
        return False
    undone = _undo_from(proto, had[0])
    for graph_pass in undone:
        if graph_pass.name not in names:
            graph_pass.apply(proto, None, names)
    return True


def complete(proto, inputs: PassInputs, first: str = PADDING_SKIP.name) -> list[str]:
    """Give a graph, in place, every ids-file pass from first on that applies to it and it lacks, in order (what
    upgrade adds to an older file); the passes after the first one missing are undone and redone. The names added."""
    start = list(PASSES).index(BY_NAME[first])
    before = set(present_passes(proto))
    for index in range(start, len(PASSES)):
        graph_pass = PASSES[index]
        if not graph_pass.in_ids_file or graph_pass.present(proto):
            continue
        # Undone passes cannot be redone from inputs they need but the caller did not give: only those after it.
        _undo_from(proto, index + 1)
        for later in PASSES[index:]:
            if later.in_ids_file:
                later.apply(proto, inputs, frozenset())
        break
    return [name for name in present_passes(proto) if name not in before]


def prediction_graph(proto, left_out=frozenset()) -> bool:
    """Turn a graph with step_probability into one that answers probability alone, in place: the step output
    dropped, and the passes from the batch Scan on redone for that graph (the Scan no longer writes every step; the
    clean-rows path, which a graph whose steps are read cannot have, added), less those in left_out. onnxruntime
    computes every output of a graph whatever run() asks for, and the per-step head costs a third of a batch's time.

    Returns False, leaving the graph as it was, when it has no step_probability output to drop, or has the steps switch
    (its default run is this graph already)."""
    left_out = _names(left_out)
    names = [output.name for output in proto.graph.output]
    if TRAJECTORY_NAME not in names or OUTPUT_NAME not in names or has_steps_switch(proto):
        return False
    kept = [output for output in proto.graph.output if output.name != TRAJECTORY_NAME]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    start = list(PASSES).index(BATCH_SCAN)
    if _undo_from(proto, start):
        for graph_pass in PASSES[start:]:
            if graph_pass.in_ids_file and graph_pass.name not in left_out:
                graph_pass.apply(proto, None, left_out)
    prune_graph(proto.graph)
    return True
