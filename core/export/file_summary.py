"""An exported file described for people (the Export page): its metadata as rows, its inputs and outputs, its loops."""

from __future__ import annotations

import json

from core.export.passes.clean_rows import MIN_BATCH as CLEAN_ROWS_MIN_BATCH
from core.export.model_file import PARITY_TOLERANCE

# Metadata entries shown as JSON of their own rather than as a row.
JSON_ENTRIES = ("config", "metrics", "versions")


def metadata_rows(props: dict[str, str]) -> list[dict[str, str]]:
    """The file's metadata_props as (key, value) rows: the vocabulary summarized, the JSON entries left out."""
    rows = []
    for name, value in props.items():
        if name == "vocabulary":
            words = json.loads(value)
            value = f"{len(words) - 1:,} words: " + ", ".join(words[1:11]) + ", ..."
        elif name in JSON_ENTRIES:
            continue
        rows.append({"key": name, "value": value})
    return rows


def shape_text(dimensions: list) -> str:
    """A tensor shape for people: onnxruntime names dynamic axes with generated symbols; they show as "any"."""
    return "[" + ", ".join(str(size) if isinstance(size, int) else "any" for size in dimensions) + "]"


def io_rows(predictor) -> list[dict[str, str]]:
    """Every input and output of a Predictor's file: name, direction, type and shape."""
    # The session with every output: plain predictions use a copy of the graph without step_probability.
    session = getattr(predictor, "trajectory_session", None) or predictor.session
    return [
        {"name": item.name, "direction": direction, "type": item.type, "shape": shape_text(item.shape)}
        for direction, items in (("input", session.get_inputs()), ("output", session.get_outputs()))
        for item in items
    ]


def generic_loops(counts: dict[str, int]) -> int:
    """tf2onnx's generic Loop nodes (and Scans beyond the SimpleRNN batch paths) in a file's op counts."""
    # Each SimpleRNN layer's batch path is a Scan inside an If (passes.batched_rnn.batched_simple_rnn); any other loop
    # is tf2onnx's generic Loop, which a file from this version never holds.
    return counts.get("Loop", 0) + max(0, counts.get("Scan", 0) - counts.get("If", 0))


def file_notes(
    counts: dict[str, int], padding_skip: dict | None, sequence_length: int, clean_rows: bool = False
) -> list[str]:
    """What people should know about how the file runs: SimpleRNN's two paths, how it skips padding, and whether
    clean batches have their own path (core.export.passes.clean_rows.has_clean_rows_path)."""
    notes = []
    if counts.get("If"):
        notes.append(
            "Each SimpleRNN layer runs as onnxruntime's RNN op for one review and as a Scan of Gemm + Tanh for "
            "batches, chosen by an If: the Scan is faster a review in batches."
        )
    if padding_skip:
        how = (
            "masked model: its rows go through the op's sequence_lens, tokens first"
            if padding_skip.get("method") == "sequence_lens"
            else "each layer starts from its state after the padding it was not fed"
        )
        notes.append(
            f"Skips padding: input_ids may be as short as a batch's longest review ({how}); "
            f"the scores equal the model's on {sequence_length} ids."
        )
    if clean_rows:
        notes.append(
            f"A batch of {CLEAN_ROWS_MIN_BATCH} or more rows padded before the review (as the Predictor and the "
            f"standalone example pad them, at most {sequence_length} ids wide) skips the padding skip's sorting: one "
            "Scan reads a table of the embedding folded into the layer's kernel, a Gemm + Tanh a step."
        )
    return notes


def file_problem(counts: dict[str, int], parity: float) -> str | None:
    """Why the file should not be trusted (a generic loop left, parity above the bound), or None."""
    if generic_loops(counts):
        return "This file still holds generic Loop nodes: export the run again with this version."
    if parity > PARITY_TOLERANCE:
        return f"Parity {parity:.1e} is above {PARITY_TOLERANCE:.0e}: do not trust this file; export the run again."
    return None
