"""Cached loaders shared by the pages: datasets (st.cache_data), run stores, loaded runs and the training launch slot (st.cache_resource).

Longer than a page (it is not one): each loader sits beside the cache it uses and the key that invalidates it (a file's
modification time, a run's files); what they load is computed in core.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from core import paths
from core.config import PRESETS, ExperimentConfig
from core.data import DataError, Dataset, Review, load_dataset, read_reviews
from core.runs import RunInfo, RunStore, read_run
from core.training import LaunchSlot

# The session key holding a data source the user chose on the Data page (an uploaded CSV); absent means IMDB_DATA.
DATA_SOURCE_KEY = "data_source"
# The session key holding the ExperimentConfig configured on Build, which Train trains.
EXPERIMENT_KEY = "experiment_config"
# The session key holding the name of the preset the Build page started from.
PRESET_KEY = "experiment_preset"


def current_experiment() -> ExperimentConfig:
    """The experiment configured on the Build page in this session; the seed's classifier until one is."""
    return st.session_state.get(EXPERIMENT_KEY) or PRESETS["seed"]


def data_source() -> str | None:
    """The review source this session uses: an uploaded CSV if one was chosen, else IMDB_DATA, else None (Keras)."""
    return st.session_state.get(DATA_SOURCE_KEY) or paths.data_source()


def describe_source(source: str | None) -> str:
    """One line for people saying where reviews come from, without touching the disk."""
    if source is None:
        return "Keras imdb.npz download (IMDB_DATA is not set)"
    if source == st.session_state.get(DATA_SOURCE_KEY):
        return f"uploaded CSV {st.session_state.get(UPLOAD_NAME_KEY, '')}".rstrip()
    return source


# The session keys naming the uploaded CSV for people, and the hash of the last upload put in use.
UPLOAD_NAME_KEY = "data_source_name"
UPLOAD_HASH_KEY = "data_upload_applied"


@contextmanager
def uploaded_file(data: bytes, suffix: str, keep: bool) -> Iterator[Path]:
    """An upload as a file on the server: kept in the cache (save_upload) when keep, else a temporary file removed
    when the block ends (read-only mode stores nothing). The user's file name never becomes a path."""
    if keep:
        yield save_upload(data, suffix)
        return
    with tempfile.TemporaryDirectory(prefix="imdb-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        yield path


def save_upload(data: bytes, suffix: str) -> Path:
    """Keep an uploaded file in the cache folder under its content hash; the user's file name never becomes a path."""
    digest = hashlib.sha256(data).hexdigest()[:24]
    folder = paths.cache_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        temporary = folder / f".{digest}{suffix}.partial"
        temporary.write_bytes(data)
        temporary.replace(path)
    return path


def _source_stamp(source: str | None) -> tuple:
    # The path's size and modification time, so that a changed file is read again instead of served from memory.
    if source is None:
        return ()
    try:
        status = Path(source).expanduser().stat()
    except OSError:
        return ()
    return (status.st_mtime_ns, status.st_size)


@st.cache_data(max_entries=4, show_spinner="Reading and tokenizing the reviews (cached on disk after the first time)...")
def _cached_dataset(source: str | None, num_words: int, cache_dir: str, stamp: tuple) -> Dataset:
    return load_dataset(source, num_words, cache_dir=Path(cache_dir))


# A source that failed to load (the Keras download while offline takes seconds to fail) is not tried again for this
# long, so that every rerun of every page in every session does not wait for the same failure.
RETRY_FAILED_SOURCE_SECONDS = 60.0


@st.cache_resource
def _failed_sources() -> dict[tuple, tuple[float, str]]:
    # Shared by all sessions; each entry is replaced whole, which is safe across threads.
    return {}


def dataset(source: str | None, num_words: int) -> Dataset:
    """The reviews of source encoded with num_words words; DataError (a ValueError) with one line when unreadable."""
    key = (source, num_words, str(paths.cache_dir()), _source_stamp(source))
    failed = _failed_sources().get(key)
    if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_SOURCE_SECONDS:
        raise DataError(failed[1])
    try:
        return _cached_dataset(*key)
    except DataError as error:
        _failed_sources()[key] = (time.monotonic(), str(error))
        raise


# An archive must be read from its start to reach any review, so a whole split is read once and kept. Reviews are
# frozen dataclasses in a dict nobody writes to, so sharing one copy between sessions (cache_resource) is safe and
# spares copying some 30 MB of text on every rerun, which cache_data would do.
@st.cache_resource(max_entries=2, show_spinner="Reading the raw reviews (once per split)...")
def _cached_reviews(source: str | None, split: str, stamp: tuple) -> dict[str, Review]:
    return {review.name: review for review in read_reviews(source, split)}


def raw_review(source: str | None, split: str, name: str) -> Review | None:
    """One raw review by its name in Split.names (None if absent); DataError for Keras's ids-only file."""
    return _cached_reviews(source, split, _source_stamp(source)).get(name)


@st.cache_resource
def training_slot() -> LaunchSlot:
    """The training process this server started last, shared by every session: a reload or a second tab sees it.
    The training itself runs in its own process; a training started elsewhere is found through the runs folder."""
    return LaunchSlot()


def run_store() -> RunStore:
    """The run store at IMDB_RUNS (or runs/); cheap to make, so not cached: the folder may change between tests."""
    return RunStore(paths.runs_dir())


def list_runs() -> list[RunInfo]:
    """Every run, newest first, read fresh: a run's status changes while it trains and when its process dies."""
    return run_store().list()


def _run_stamp(path: Path) -> tuple:
    # A run changes only through its files, so their sizes and modification times key the cache.
    stamp = []
    for entry in sorted(path.iterdir()) if path.is_dir() else []:
        try:
            status = entry.stat()
        except OSError:
            continue
        stamp.append((entry.name, status.st_mtime_ns, status.st_size))
    return tuple(stamp)


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_run(path: str, stamp: tuple) -> RunInfo:
    return read_run(path)


def load_run(run_id: str) -> RunInfo:
    """One run by id, cached until one of its files changes; a run that still trains is always read fresh."""
    path = run_store().root / run_id
    info = _cached_run(str(path), _run_stamp(path))
    return read_run(path) if info.status == "running" else info


# ---- Classify, Export and Inside the RNN ------------------------------------------------------------------------------

DEFAULT_MODEL_LABEL = "Shipped default model"


def _modified_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# Keyed by path and modification time, so a re-exported file gets a fresh session. onnxruntime sessions and the
# Predictor are thread-safe, so every user shares one.
@st.cache_resource(max_entries=8, show_spinner="Loading the model...")
def _cached_predictor(path: str, modified_ns: int):
    from core.scoring import Predictor

    return Predictor.from_file(path)


# The whole vocabulary scored and the embedding read once a file (a few tenths of a second for the shipped model).
@st.cache_resource(max_entries=4, show_spinner="Scoring every word of the vocabulary alone...")
def _cached_words(path: str, modified_ns: int):
    import onnx

    from core.scoring import file_embedding, word_scores

    predictor = _cached_predictor(path, modified_ns)
    scores = word_scores(predictor)
    table = file_embedding(onnx.load(path), predictor.metadata.vocabulary.num_words)
    return scores, (None if table is None else table[scores.ids])


def learned_words(path: str | Path):
    """(WordScores, the embedding's rows of those words or None) of an exported file, shared until the file changes."""
    path = Path(path)
    return _cached_words(str(path.resolve()), _modified_ns(path))


def predictor(path: str | Path):
    """The Predictor of an exported .onnx file, shared until the file changes; ModelFileError (a ValueError) if unusable."""
    path = Path(path)
    return _cached_predictor(str(path.resolve()), _modified_ns(path))


def classify_models() -> dict[str, Path]:
    """What the Classify page offers, by label: the shipped default model when present, then exported runs, newest first."""
    models = {}
    if paths.DEFAULT_MODEL.is_file():
        models[DEFAULT_MODEL_LABEL] = paths.DEFAULT_MODEL
    try:
        exported = sorted(paths.runs_dir().glob("*/model.onnx"), reverse=True)
    except OSError:
        exported = []
    for path in exported:
        if not path.parent.name.startswith("."):
            models[f"Run {path.parent.name}"] = path
    return models


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_weights(path: str, modified_ns: int):
    from core.model import read_model_weights

    return read_model_weights(Path(path))


def run_weights(run_dir: str | Path):
    """The NumPy weights of a run's model.keras, shared until the file changes; ValueError when unreadable."""
    path = Path(run_dir) / "model.keras"
    return _cached_weights(str(path.resolve()), _modified_ns(path))


# Two phrases at up to 512 distances each: one onnxruntime call (30 ms for the shipped model) or the NumPy loop on a
# run's weights (a few tenths of a second); kept per file and texts, so moving between pages costs nothing.
@st.cache_data(max_entries=32, show_spinner="Placing the phrases at every distance...")
def _cached_memory(path: str, modified_ns: int, positive: str, negative: str, filler: str):
    from core.model import reference_probabilities
    from core.runs import read_vocabulary
    from core.scoring import Probe, memory_curve

    probe = Probe(positive, negative, filler)
    if path.endswith(".onnx"):
        model = _cached_predictor(path, modified_ns)
        metadata = model.metadata
        return memory_curve(model.probabilities, metadata.vocabulary, metadata.sequence_length, probe)
    run_dir = Path(path).parent
    weights = _cached_weights(path, modified_ns)
    sequence_length = read_run(run_dir).config.model.sequence_length

    def score(rows):
        return reference_probabilities(weights, rows)

    return memory_curve(score, read_vocabulary(run_dir), sequence_length, probe)


def memory_curve(path: str | Path, probe):
    """The memory probe (core.scoring.memory) of an exported .onnx file, or of a run's model.keras through the NumPy
    loop; ValueError for a file or run that cannot be read, or texts the probe cannot use."""
    path = Path(path)
    return _cached_memory(str(path.resolve()), _modified_ns(path), probe.positive, probe.negative, probe.filler)


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_loop(path: str, modified_ns: int):
    from core.runs import read_vocabulary

    if path.endswith(".onnx"):
        from core.export import numpy_weights, read_model_file

        _, proto, metadata = read_model_file(path)
        return numpy_weights(proto, metadata.config.model), metadata.vocabulary, metadata.config.model
    run_dir = Path(path).parent
    return _cached_weights(path, modified_ns), read_vocabulary(run_dir), read_run(run_dir).config.model


# One review forward and backward through the NumPy loop: milliseconds for 500 steps; kept per model and text.
@st.cache_data(max_entries=64, show_spinner=False)
def _cached_gradients(path: str, modified_ns: int, text: str):
    from core.model import probability_gradients, trace_review

    weights, vocabulary, model = _cached_loop(path, modified_ns)
    trace = trace_review(weights, vocabulary, model, text)
    gradients = probability_gradients(weights, trace.ids)
    return {
        "tokens": trace.tokens,
        "probability": gradients.probability,
        "state": gradients.state_norms(0)[trace.positions],
        "input": gradients.input_norms()[trace.positions],
    }


def review_gradients(path: str | Path, text: str) -> dict:
    """One review's gradients by backpropagation through time in NumPy (core.model.backward), at the review's own
    steps (the start marker, then the words read): tokens, probability, and the size of the gradient on the first
    layer's state ("state") and on the word vector ("input") at each; for an exported file (weights read from it)
    or a run's model.keras. ValueError when the weights cannot be read (an int8 copy)."""
    path = Path(path)
    return _cached_gradients(str(path.resolve()), _modified_ns(path), text)


# The one place the Inside page imports TensorFlow, and only when asked to compare with Keras.
@st.cache_resource(max_entries=2, show_spinner="Loading TensorFlow and the Keras model (a few seconds the first time)...")
def _cached_keras_model(path: str, modified_ns: int):
    from core.training import load_run_model

    return load_run_model(read_run(Path(path).parent))


def keras_model(run_dir: str | Path):
    """A run's Keras model, shared until model.keras changes; ValueError when it cannot be loaded."""
    path = Path(run_dir) / "model.keras"
    return _cached_keras_model(str(path.resolve()), _modified_ns(path))


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_graph_counts(path: str, modified_ns: int) -> tuple[dict[str, int], dict[str, int], bool]:
    # One read of the file for all three: op type -> nodes (most frequent first), recurrent op type -> layers, and
    # whether clean batches have their own path (core.export.passes.clean_rows).
    import onnx

    from core.export import has_clean_rows_path, op_counts, recurrent_layers

    proto = onnx.load(path, load_external_data=False)
    counts = dict(sorted(op_counts(proto).items(), key=lambda item: (-item[1], item[0])))
    return counts, recurrent_layers(proto), has_clean_rows_path(proto)


def onnx_recurrent_layers(path: str | Path) -> dict[str, int]:
    """Recurrent op type -> layers on it in an .onnx file (a node copied into two branches of an If counts once)."""
    path = Path(path)
    return _cached_graph_counts(str(path.resolve()), _modified_ns(path))[1]


def onnx_has_clean_rows_path(path: str | Path) -> bool:
    """The .onnx file sends cleanly pre-padded batches to their own Scan (core.export.passes.clean_rows)."""
    path = Path(path)
    return _cached_graph_counts(str(path.resolve()), _modified_ns(path))[2]


def onnx_op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type an .onnx file holds, subgraphs included, most frequent first."""
    path = Path(path)
    return _cached_graph_counts(str(path.resolve()), _modified_ns(path))[0]


@st.cache_data(max_entries=4, show_spinner="Packing the run...")
def _cached_run_archive(path: str, stamp: tuple) -> bytes:
    from core.runs import run_zip

    return run_zip(path)


def run_archive(run_dir: str | Path) -> bytes:
    """A zip of a run: config, vocabulary, metrics, history as JSON and CSV, model.keras and model.onnx when present."""
    path = Path(run_dir)
    return _cached_run_archive(str(path.resolve()), _run_stamp(path))
