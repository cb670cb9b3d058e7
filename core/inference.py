"""Classify reviews with an exported .onnx file through onnxruntime alone: no TensorFlow is imported on this path."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.text import NORMALIZATION, Vocabulary, pad_sequences, tokenize

INPUT_NAME = "input_ids"
OUTPUT_NAME = "probability"
TRAJECTORY_NAME = "step_probability"
LABELS = ("negative", "positive")
DEFAULT_THRESHOLD = 0.5
TEXT_COLUMNS = ("text", "review")
RECURRENT_OPS = ("RNN", "GRU", "LSTM")

# Every exported file carries these keys in metadata_props; a file without them was not made by this project.
METADATA_KEYS = (
    "vocabulary",
    "index_from",
    "pad_id",
    "start_id",
    "oov_id",
    "num_words",
    "sequence_length",
    "padding",
    "truncating",
    "normalization",
    "labels",
    "threshold",
    "config",
    "metrics",
    "parity_max_abs_diff",
    "versions",
    "created",
)

# Below this many rows a batch is one session.run call: splitting it would cost more in thread hand-offs than it saves.
MIN_ROWS_PER_THREAD = 16
# Python's csv module refuses fields over 128 KiB by default; a pasted review can be longer than that.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


class ModelFileError(ValueError):
    """A model file this project cannot use: the message says which file and why, on one line."""


@dataclass(frozen=True)
class Prediction:
    """One review's result."""

    label: str  # labels[1] when score >= threshold, else labels[0]
    score: float  # the positive probability
    tokens: int  # words found in the text
    unknown_tokens: int  # words outside the vocabulary
    truncated: bool  # the review was longer than sequence_length ids and was cut

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "score": self.score,
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class CsvPrediction:
    """One CSV row's result: a prediction, or the reason there is none (an empty review)."""

    row: int  # 1-based data row, the header not counted
    text: str
    prediction: Prediction | None
    error: str | None


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported file says about itself: enough to turn text into ids and ids into a label."""

    vocabulary: Vocabulary
    sequence_length: int
    padding: str
    truncating: str
    labels: tuple[str, str]
    threshold: float
    config: dict  # the run's ExperimentConfig as JSON
    metrics: dict  # the run's test metrics
    parity_max_abs_diff: float  # Keras vs onnxruntime, measured at export
    versions: dict  # library versions that made the file
    created: str  # ISO 8601, UTC

    def to_props(self) -> dict[str, str]:
        """The metadata_props of the file, every value a string."""
        vocabulary = self.vocabulary
        return {
            "vocabulary": json.dumps(list(vocabulary.words), ensure_ascii=False),
            "index_from": str(vocabulary.index_from),
            "pad_id": str(vocabulary.pad_id),
            "start_id": str(vocabulary.start_id),
            "oov_id": str(vocabulary.oov_id),
            "num_words": str(vocabulary.num_words),
            "sequence_length": str(self.sequence_length),
            "padding": self.padding,
            "truncating": self.truncating,
            "normalization": vocabulary.normalization,
            "labels": json.dumps(list(self.labels)),
            "threshold": repr(float(self.threshold)),
            "config": json.dumps(self.config, sort_keys=True),
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "parity_max_abs_diff": repr(float(self.parity_max_abs_diff)),
            "versions": json.dumps(self.versions, sort_keys=True),
            "created": self.created,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "the model") -> "ModelMetadata":
        """Parse metadata_props; ModelFileError when a key is missing or malformed."""
        missing = [key for key in METADATA_KEYS if key not in props]
        if len(missing) == len(METADATA_KEYS):
            raise ModelFileError(
                f"{source} is an ONNX model but not one exported by this project (no metadata): "
                "export one with python -m core export RUN_DIR"
            )
        if missing:
            raise ModelFileError(
                f"{source} lacks the metadata {', '.join(missing)}: re-export it with python -m core export RUN_DIR"
            )
        try:
            vocabulary = Vocabulary(
                words=tuple(json.loads(props["vocabulary"])),
                num_words=int(props["num_words"]),
                index_from=int(props["index_from"]),
                pad_id=int(props["pad_id"]),
                start_id=int(props["start_id"]),
                oov_id=int(props["oov_id"]),
                normalization=props["normalization"],
            )
            labels = tuple(json.loads(props["labels"]))
            metadata = cls(
                vocabulary=vocabulary,
                sequence_length=int(props["sequence_length"]),
                padding=props["padding"],
                truncating=props["truncating"],
                labels=labels,
                threshold=float(props["threshold"]),
                config=json.loads(props["config"]),
                metrics=json.loads(props["metrics"]),
                parity_max_abs_diff=float(props["parity_max_abs_diff"]),
                versions=json.loads(props["versions"]),
                created=props["created"],
            )
        except (ValueError, TypeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelFileError(f"{source} has malformed metadata: {reason}") from None
        if len(labels) != 2 or not all(isinstance(label, str) for label in labels):
            raise ModelFileError(f"{source} has malformed metadata: labels must be two strings, got {labels!r}")
        if metadata.padding not in ("pre", "post") or metadata.truncating not in ("pre", "post"):
            raise ModelFileError(f"{source} has malformed metadata: padding and truncating must be 'pre' or 'post'")
        if metadata.sequence_length < 1:
            raise ModelFileError(f"{source} has malformed metadata: sequence_length must be positive")
        return metadata

    @property
    def normalization(self) -> str:
        return self.vocabulary.normalization


def model_path(choice: str | Path | None = None) -> Path:
    """The model a command or page should use: the one chosen, else the default shipped in models/."""
    from core.paths import DEFAULT_MODEL

    if choice:
        return Path(choice)
    if not DEFAULT_MODEL.exists():
        raise ModelFileError(f"no model at {DEFAULT_MODEL}; export one with python -m core export RUN_DIR")
    return DEFAULT_MODEL


def vocabulary_map(source: Vocabulary, target: Vocabulary) -> np.ndarray:
    """A table that turns ids of source into the ids target gives the same words (OOV where target lacks one)."""
    table = np.full(source.num_words, target.oov_id, dtype=np.int32)
    for special in (source.pad_id, source.start_id, source.oov_id):
        table[special] = {source.pad_id: target.pad_id, source.start_id: target.start_id}.get(special, target.oov_id)
    for position, word in enumerate(source.words):
        token_id = position + source.index_from
        if position and token_id < source.num_words:
            table[token_id] = target.id_of(word)
    return table


def outer_references(graph) -> set[str]:
    """Tensor names an ONNX (sub)graph reads from its enclosing scope."""
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    needed: set[str] = set()
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
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
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
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


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _tensors(graph) -> Iterator:
    """Every tensor an ONNX graph holds: initializers, sparse ones, and tensor attributes, in subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from _tensors(subgraph)


def _check_external_data(model, source: str) -> None:
    """Refuse tensors stored outside the file: onnxruntime would open whatever path they name."""
    from onnx import TensorProto

    for tensor in _tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            raise ModelFileError(
                f"{source} keeps tensor {tensor.name!r} in an external data file; this project only loads "
                "self-contained .onnx files"
            )


def session_options():
    """The onnxruntime settings every session of this project uses."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread per run: the RNN kernel is sequential anyway, and the Predictor runs chunks of a batch on several
    # threads itself. Spinning intra-op threads would fight those for the cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def load_session(data: bytes, source: str):
    """An onnxruntime session on the CPU for a model already checked by Predictor.from_file."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for every kind of bad graph
        raise ModelFileError(f"onnxruntime cannot load {source}: {_one_line(error)}") from None


def read_model_file(path: str | Path) -> tuple[bytes, "onnx.ModelProto", ModelMetadata]:
    """The bytes, the parsed ModelProto (weights inline) and metadata of an exported file, or a ModelFileError."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ModelFileError(f"no model file at {source}")
    if path.is_dir():
        raise ModelFileError(f"{source} is a folder, not an .onnx file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read {source}: {error.strerror or _one_line(error)}") from None
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError):
        raise ModelFileError(f"{source} is not an ONNX file (another format, or a truncated or damaged one)") from None
    # Protobuf parses many byte strings without complaint; a real model has a graph with nodes and an opset.
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(f"{source} is not an ONNX model (no graph)")
    _check_external_data(model, source)
    metadata = ModelMetadata.from_props({prop.key: prop.value for prop in model.metadata_props}, source)
    return data, model, metadata


class Predictor:
    """An exported model ready to classify text: one onnxruntime session, safe to share between threads."""

    def __init__(self, session, metadata: ModelMetadata, path: Path | None = None, trajectory_session=None) -> None:
        """session answers probability; trajectory_session, when given, also step_probability."""
        self.session = session
        self.trajectory_session = trajectory_session
        self.metadata = metadata
        self.path = path
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(int32)" or len(inputs[0].shape) != 2:
            raise ModelFileError(f"{path or 'the model'} does not take one int32 [batch, sequence] input")
        self.input_name = inputs[0].name
        outputs = [output.name for output in session.get_outputs()]
        self.output_name = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        if trajectory_session is None and TRAJECTORY_NAME in outputs:
            self.trajectory_session = trajectory_session = session
        self.trajectory_name = None
        if trajectory_session is not None:
            names = [output.name for output in trajectory_session.get_outputs()]
            self.trajectory_name = TRAJECTORY_NAME if TRAJECTORY_NAME in names else None
        self.workers = max(1, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> "Predictor":
        """Check and load an exported file; ModelFileError (a ValueError) with one line when it cannot be used."""
        data, model, metadata = read_model_file(path)
        if metadata.normalization != NORMALIZATION:
            raise ModelFileError(
                f"{path} uses the text rule {metadata.normalization!r}; this version knows {NORMALIZATION!r}"
            )
        outputs = [output.name for output in model.graph.output]
        if TRAJECTORY_NAME not in outputs or OUTPUT_NAME not in outputs:
            return cls(load_session(data, str(path)), metadata, Path(path))
        # onnxruntime computes every output of a graph whatever run() asks for, and the per-step head costs a third
        # of a batch's time; a copy of the graph without it answers plain predictions.
        kept = [output for output in model.graph.output if output.name != TRAJECTORY_NAME]
        del model.graph.output[:]
        model.graph.output.extend(kept)
        prune_graph(model.graph)
        session = load_session(model.SerializeToString(), str(path))
        return cls(session, metadata, Path(path), trajectory_session=load_session(data, str(path)))

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Predictor":
        """The model.onnx of a run folder (made by python -m core export RUN_DIR)."""
        path = Path(run_dir) / "model.onnx"
        if not path.exists():
            raise ModelFileError(f"run {run_dir} has no model.onnx: export it with python -m core export {run_dir}")
        return cls.from_file(path)

    # Metadata, read-only views for pages and commands.
    @property
    def labels(self) -> tuple[str, str]:
        return self.metadata.labels

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def vocabulary(self) -> Vocabulary:
        return self.metadata.vocabulary

    @property
    def sequence_length(self) -> int:
        return self.metadata.sequence_length

    @property
    def config(self) -> dict:
        return self.metadata.config

    @property
    def metrics(self) -> dict:
        return self.metadata.metrics

    @property
    def has_trajectory(self) -> bool:
        return self.trajectory_name is not None

    # Preprocess.
    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Prediction]]:
        vocabulary = self.metadata.vocabulary
        encoded = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"review {index + 1} is {type(text).__name__}, not text")
            if not text.strip():
                raise ValueError("review is empty" if len(texts) == 1 else f"review {index + 1} is empty")
            encoded.append(vocabulary.encode(text))
        ids = self.pad([item.ids for item in encoded])
        length = self.metadata.sequence_length
        # Partial predictions carry the counts; the score and label are filled in after the run.
        partial = [Prediction("", 0.0, item.tokens, item.unknown, len(item.ids) > length) for item in encoded]
        return ids, partial

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Id lists to the int32 [batch, sequence_length] array the model was trained on."""
        metadata = self.metadata
        return pad_sequences(
            sequences, metadata.sequence_length, metadata.padding, metadata.truncating, metadata.vocabulary.pad_id
        )

    # Run.
    def _run(self, ids: np.ndarray) -> np.ndarray:
        (probability,) = self.session.run([self.output_name], {self.input_name: ids})
        return probability.reshape(-1)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="predictor")
            return self._pool

    def probabilities(self, ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Positive probabilities of int32 id rows, float32 [rows]; big batches are split over all cores."""
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.ndim != 2:
            raise ValueError(f"ids must be a [batch, sequence] array, got shape {ids.shape}")
        rows = len(ids)
        if rows == 0:
            return np.zeros(0, dtype=np.float32)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # Enough chunks to keep every core busy, none bigger than batch_size.
        threads = min(self.workers, max(1, rows // MIN_ROWS_PER_THREAD))
        chunks = max(threads, math.ceil(rows / batch_size))
        if chunks == 1:
            return self._run(ids)
        bounds = np.linspace(0, rows, chunks + 1).astype(int)
        parts = [ids[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
        return np.concatenate(list(self._executor().map(self._run, parts)))

    # Postprocess.
    def _label(self, score: float) -> str:
        return self.metadata.labels[1] if score >= self.metadata.threshold else self.metadata.labels[0]

    def predict(self, texts: str | Sequence[str], batch_size: int = 256) -> list[Prediction]:
        """One Prediction a review, in order; ValueError when a review is empty."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return []
        ids, partial = self._encode(texts)
        scores = self.probabilities(ids, batch_size)
        return [
            Prediction(self._label(float(score)), float(score), item.tokens, item.unknown_tokens, item.truncated)
            for item, score in zip(partial, scores)
        ]

    def trajectory(self, text: str) -> tuple[list[str], np.ndarray]:
        """The review's words as the model read them and the positive probability after each one."""
        if self.trajectory_name is None:
            raise ValueError(
                f"{self.path or 'this model'} has no step_probability output: re-export it with --trajectory"
            )
        if not isinstance(text, str) or not text.strip():
            raise ValueError("review is empty")
        metadata = self.metadata
        words = tokenize(text)
        encoded = metadata.vocabulary.encode_tokens(words)
        ids = self.pad([encoded.ids])
        (steps,) = self.trajectory_session.run([self.trajectory_name], {self.input_name: ids})
        length = metadata.sequence_length
        # Position 0 of the id list is the start id; keep the same cut the padding made, then drop the start step.
        labelled = ["<start>", *words]
        kept = labelled[-length:] if metadata.truncating == "pre" else labelled[:length]
        row = steps[0]
        values = row[length - len(kept) :] if metadata.padding == "pre" else row[: len(kept)]
        if kept[:1] == ["<start>"]:
            kept, values = kept[1:], values[1:]
        return list(kept), np.asarray(values, dtype=np.float32)

    def predict_csv(
        self,
        path: str | Path,
        *,
        text_column: str | None = None,
        chunk_size: int = 1024,
        progress: Callable[[float, int], None] | None = None,
    ) -> Iterator[CsvPrediction]:
        """Classify a CSV's reviews chunk by chunk, yielding rows in order; progress(fraction_of_bytes, rows_done)."""
        path = Path(path)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        try:
            total = max(path.stat().st_size, 1)
            raw = path.open("rb")
        except FileNotFoundError:
            raise ValueError(f"no CSV file at {path}") from None
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror or _one_line(error)}") from None
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
        with raw:
            stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(stream)
            try:
                header = next(reader, None)
                if header is None:
                    raise ValueError(f"{path} is empty: expected a header row with a text or review column")
                column = self._text_column(header, text_column, path)
                done = 0
                chunk: list[tuple[int, str]] = []
                for row_number, row in enumerate(reader, start=1):
                    if not row:
                        continue
                    chunk.append((row_number, row[column] if column < len(row) else ""))
                    if len(chunk) >= chunk_size:
                        yield from self._predict_rows(chunk)
                        done += len(chunk)
                        chunk = []
                        if progress:
                            progress(min(raw.tell() / total, 1.0), done)
                if chunk:
                    yield from self._predict_rows(chunk)
                    done += len(chunk)
                if progress:
                    progress(1.0, done)
            except UnicodeDecodeError:
                raise ValueError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from None
            except csv.Error as error:
                raise ValueError(f"{path} is not a readable CSV: {_one_line(error)}") from None

    @staticmethod
    def _text_column(header: list[str], text_column: str | None, path: Path) -> int:
        names = [name.strip() for name in header]
        if text_column is not None:
            if text_column not in names:
                raise ValueError(f"{path} has no column {text_column!r}; its columns: {', '.join(names)}")
            return names.index(text_column)
        lowered = [name.lower() for name in names]
        for candidate in TEXT_COLUMNS:
            if candidate in lowered:
                return lowered.index(candidate)
        raise ValueError(
            f"{path} has no text or review column (columns: {', '.join(names)}); name one with --text-column"
        )

    def _predict_rows(self, chunk: list[tuple[int, str]]) -> Iterator[CsvPrediction]:
        present = [(row, text) for row, text in chunk if text.strip()]
        predictions = iter(self.predict([text for _, text in present])) if present else iter(())
        for row, text in chunk:
            if text.strip():
                yield CsvPrediction(row, text, next(predictions), None)
            else:
                yield CsvPrediction(row, text, None, "review is empty")
