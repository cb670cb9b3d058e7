"""An exported file described for people (the Export page): its metadata as rows, its inputs and outputs, its loops."""

from __future__ import annotations

import json

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
    # Each SimpleRNN layer's batch path is a Scan inside an If (core.onnx_graph.batched_simple_rnn); any other loop is
    # tf2onnx's generic Loop, which a file from this version never holds.
    return counts.get("Loop", 0) + max(0, counts.get("Scan", 0) - counts.get("If", 0))
