"""int8 models: onnxruntime's dynamic quantization of an exported file's embedding (compared with the float file by
core.evaluation.int8_comparison)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import cells
from core.export.passes.pass_list import CLEAN_ROWS, without
from core.export.model_file import ModelFileError, read_model_file
from core.export.graph import sort_nodes, walk_nodes

QUANTIZATION_KEY = "quantization"  # the metadata_props entry a quantized file adds to the float file's
INT8_SUFFIX = ".int8.onnx"
# The metadata key onnxruntime's shape inference leaves behind; it says nothing about the model, so it is dropped.
SHAPE_INFERENCE_KEY = "onnx.infer"

# Why every other weight-holding op of these graphs stays float32 (measured with onnxruntime 1.32, see README): each
# recurrent op says so in its core.cells entry.
NOT_QUANTIZED = {
    **{cell.onnx_op: cell.quantization_note for cell in cells.CELLS.values()},
    "MatMul": (
        "the Dense weights are a few dozen numbers, and dynamic quantization would also quantize their input with "
        "one scale for the whole batch, so a review's score would depend on the other reviews in its batch: "
        "left float32"
    ),
    "Gemm": "onnxruntime's dynamic quantization has no quantizer for Gemm: left float32",
}


class QuantizeError(ModelFileError):
    """A file that cannot be quantized: the message says which and why, on one line."""


@dataclass(frozen=True)
class QuantizeResult:
    """What quantize_file wrote."""

    path: Path
    float_bytes: int
    int8_bytes: int
    quantized: tuple[dict, ...]  # one entry an embedding: node, initializer, shape, dtype, scale, zero_point
    not_quantized: dict[str, str]  # op type present in the graph -> why its weights stay float32
    seconds: float


def int8_path(float_path: str | Path) -> Path:
    """Where the int8 file of float_path goes: model.onnx -> model.int8.onnx, beside it."""
    float_path = Path(float_path)
    return float_path.with_name(float_path.stem + INT8_SUFFIX)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # quantize_dynamic logs advice ("consider pre-processing") through the root logger, which would land on every
    # command's stderr; logging offers no narrower switch for a library that logs to the root logger.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _embedding_nodes(model, num_words: int) -> list:
    """The Gather nodes that look words up in a float32 [num_words, dim] initializer: the embeddings."""
    from onnx import TensorProto

    tables = {
        tensor.name
        for tensor in model.graph.initializer
        if tensor.data_type == TensorProto.FLOAT and len(tensor.dims) == 2 and tensor.dims[0] == num_words
    }
    return [node for node in model.graph.node if node.op_type == "Gather" and node.input[0] in tables]


def _quantized_entries(model, embedding_nodes: list) -> tuple[dict, ...]:
    """What became of each embedding: its uint8 table, scale and zero point, read back from the quantized graph."""
    from onnx import TensorProto, numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    entries = []
    for node in embedding_nodes:
        name = node.input[0]
        table = initializers.get(f"{name}_quantized")
        if table is None or table.data_type not in (TensorProto.UINT8, TensorProto.INT8) or name in initializers:
            raise QuantizeError(f"onnxruntime did not quantize the embedding {name!r} of node {node.name!r}")
        entries.append(
            {
                "op": "Gather",
                "node": node.name,
                "initializer": name,
                "shape": list(table.dims),
                "dtype": "uint8" if table.data_type == TensorProto.UINT8 else "int8",
                "scale": float(numpy_helper.to_array(initializers[f"{name}_scale"])),
                "zero_point": int(numpy_helper.to_array(initializers[f"{name}_zero_point"])),
            }
        )
    return tuple(entries)


def _float_model(path: Path):
    """The parsed model and metadata of an exported float file; ModelFileError for anything else."""
    _, model, metadata = read_model_file(path)
    if any(prop.key == QUANTIZATION_KEY for prop in model.metadata_props):
        raise QuantizeError(f"{path} is already quantized: quantize the float file it was made from")
    return model, metadata


def float_metadata(path: str | Path):
    """The ModelMetadata of an exported float file, checked as quantize_file checks it, before any work is done."""
    return _float_model(Path(path))[1]


def quantize_file(float_path: str | Path, out_path: str | Path | None = None) -> QuantizeResult:
    """Write an int8 copy of an exported file (default <stem>.int8.onnx beside it): the embedding becomes uint8.

    onnxruntime's quantize_dynamic turns each embedding Gather into a Gather over uint8 rows followed by a standard
    DequantizeLinear (one scale and zero point for the table). Everything else stays float32 (NOT_QUANTIZED says why).
    The result keeps every metadata_props entry of the float file and adds `quantization` (JSON), passes the full
    ONNX checker, uses only standard ONNX ops, and loads in plain onnxruntime; ModelFileError (a ValueError) otherwise.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from core.atomic import write_bytes
    from core.export.model_file import load_session

    started = time.perf_counter()
    float_path = Path(float_path)
    out = Path(out_path) if out_path else int8_path(float_path)
    model, metadata = _float_model(float_path)
    # The clean-rows table is a float32 copy of the embedding folded into the kernel: it would undo what the int8
    # embedding saves, so the int8 file scores every batch through the general path.
    without(model, CLEAN_ROWS.name)
    props = {prop.key: prop.value for prop in model.metadata_props}
    if out.is_dir():
        raise QuantizeError(f"{out} is a folder: give the path of the .onnx file to write")
    if out.resolve() == float_path.resolve():
        raise QuantizeError(f"{out} is the float file itself: write the int8 file elsewhere")
    # quantize_dynamic picks nodes by name, and hand-written graphs may leave names empty.
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    embeddings = _embedding_nodes(model, metadata.vocabulary.num_words)
    if not embeddings:
        raise QuantizeError(
            f"{float_path} has no embedding to quantize (a Gather on a float32 [{metadata.vocabulary.num_words}, dim] "
            "table): it was not exported by this project"
        )
    # Subgraphs included: the Dense head and the recurrent ops sit inside If branches (SimpleRNN's batch path, the
    # steps switch).
    present = {node.op_type for node in walk_nodes(model.graph)}
    not_quantized = {op: reason for op, reason in NOT_QUANTIZED.items() if op in present}

    with tempfile.TemporaryDirectory(prefix="quantize-") as folder, _quiet_quantizer():
        written = Path(folder) / "int8.onnx"
        quantize_dynamic(
            model,
            written,
            op_types_to_quantize=["Gather"],
            nodes_to_quantize=[node.name for node in embeddings],
            per_channel=False,  # onnxruntime quantizes a Gather's table per tensor whatever this says
            weight_type=QuantType.QUInt8,  # a Gather's table takes the activation type, always uint8 in dynamic mode
        )
        quantized = onnx.load(written)
    # quantize_dynamic sorts nodes by their inputs alone: an If whose branches read other nodes' values comes first.
    sort_nodes(quantized.graph)
    nodes = quantized.graph.node
    foreign = sorted({f"{node.domain}.{node.op_type}" for node in nodes if node.domain not in ("", "ai.onnx")})
    if foreign:
        raise QuantizeError(f"the quantized graph uses ops outside standard ONNX: {', '.join(foreign)}")
    entries = _quantized_entries(quantized, embeddings)

    float_bytes = float_path.stat().st_size
    info = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "onnxruntime": onnxruntime.__version__,
        "weight_type": entries[0]["dtype"],
        "per_channel": False,
        "scheme": "asymmetric, one scale and zero point a table; uint8 rows gathered, then DequantizeLinear",
        "quantized": list(entries),
        "not_quantized": not_quantized,
        "float_file": float_path.name,
        "float_bytes": float_bytes,
        "int8_bytes": 0,
    }
    del quantized.metadata_props[:]
    for key, value in props.items():
        if key != SHAPE_INFERENCE_KEY:
            quantized.metadata_props.add(key=key, value=value)
    entry = quantized.metadata_props.add(key=QUANTIZATION_KEY)
    # The file records its own size: repeat until writing the number no longer changes it.
    for _ in range(5):
        entry.value = json.dumps(info, sort_keys=True)
        data = quantized.SerializeToString()
        if info["int8_bytes"] == len(data):
            break
        info["int8_bytes"] = len(data)
    onnx.checker.check_model(quantized, full_check=True)
    load_session(data, str(out))  # plain onnxruntime must load it, or nothing is written
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, data)
    return QuantizeResult(out, float_bytes, len(data), entries, not_quantized, time.perf_counter() - started)


def quantization_info(path: str | Path) -> dict | None:
    """The `quantization` metadata of a file (None for a float file)."""
    _, model, _ = read_model_file(path)
    props = {prop.key: prop.value for prop in model.metadata_props}
    return json.loads(props[QUANTIZATION_KEY]) if QUANTIZATION_KEY in props else None
