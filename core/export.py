"""Export a trained model to one self-describing .onnx file with native RNN/GRU/LSTM ops, checked against Keras."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.atomic import write_bytes
from core.config import ExperimentConfig, ModelConfig
from core.errors import first_line
from core.model import layer_names
from core.model_file import (
    DEFAULT_THRESHOLD,
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    TRAJECTORY_TOLERANCE,
    TRAJECTORY_NAME,
    ModelMetadata,
    session_options,
)
from core.onnx_graph import ExportError, batched_simple_rnn, keras_weights, op_counts, use_native_ops
from core.padding_skip import METADATA_KEY as PADDING_SKIP_KEY
from core.padding_skip import PaddingSkipError, output_differences, skip_padding
from core.reviews import LABELS
from core.text import Vocabulary, pad_sequences

__all__ = ["ExportError", "ExportResult", "convert", "export_model", "export_run", "keras_weights", "op_counts"]

OPSET = 17
PARITY_REVIEWS = 300  # real test reviews checked at export, when the run's data can be read
RANDOM_PARITY_ROWS = 64  # rows of random ids checked at every export


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how well it matches Keras."""

    path: Path
    parity_max_abs_diff: float  # largest |Keras - onnxruntime| of the probability over every checked input
    op_counts: dict[str, int]  # ONNX op type -> nodes, subgraphs included
    size_bytes: int
    seconds: float  # conversion, checks and writing
    parity_inputs: str = ""  # which inputs the parity check used, for people
    trajectory_max_abs_diff: float | None = None  # the same for step_probability, when the file has it


def _layers(model, config: ModelConfig):
    """The Keras layers of a build_model model: embedding, recurrent layers, head (hidden Dense, output)."""
    names = layer_names(config)
    layers = [model.get_layer(name) for name in names]
    count = len(config.recurrent_layers)
    return layers[0], layers[1 : 1 + count], layers[1 + count :]


def _check_exportable(config: ModelConfig) -> None:
    if not config.is_classifier:
        raise ExportError(
            "only classifiers can be exported: this model has no Dense(1, sigmoid) output on its final state"
        )


def _sequence_copy(layer):
    """The same recurrent layer (same weights) returning its output at every step, for the trajectory output."""
    copy = type(layer).from_config({**layer.get_config(), "return_sequences": True, "name": layer.name + "_steps"})
    copy.build((None, None, layer.get_weights()[0].shape[0]))  # the kernel's rows are the layer's input width
    copy.set_weights(layer.get_weights())
    return copy


def _forward_function(model, config: ModelConfig, trajectory: bool, strip_mask: bool = True):
    """A tf.function over the model's own layers with a named, fully dynamic [batch, sequence] int32 input."""
    import tensorflow as tf

    embedding, recurrent, head = _layers(model, config)
    last = _sequence_copy(recurrent[-1]) if trajectory else recurrent[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)])
    def forward(input_ids):
        values = embedding(input_ids)
        if config.mask_padding and strip_mask:
            # A new tensor without the Keras mask: the layers convert as unmasked ones, and core.padding_skip gives
            # the graph the mask's meaning with the ops' sequence_lens.
            values = tf.identity(values)
        for layer in recurrent[:-1]:
            values = layer(values, training=False)
        values = last(values, training=False)
        if not trajectory:
            for layer in head:
                values = layer(values)
            return {OUTPUT_NAME: values}
        steps, final = values, values[:, -1, :]
        for layer in head:
            steps, final = layer(steps), layer(final)
        return {OUTPUT_NAME: final, TRAJECTORY_NAME: tf.squeeze(steps, axis=-1)}

    return forward


def skips_padding(config: ModelConfig) -> bool:
    """Whether the export of this model accepts input_ids shorter than sequence_length (core.padding_skip)."""
    return config.mask_padding or (config.padding, config.truncating) == ("pre", "pre")


def convert(
    model, config: ModelConfig, *, trajectory: bool = False, native: bool = True, padding_skip: bool = True
):
    """The ONNX ModelProto of a build_model model; native=False keeps tf2onnx's plain Loop graph (for the benchmark).

    The native graph skips padding when the model allows it (skips_padding) unless padding_skip is False: its
    description is then in proto.metadata_props under PADDING_SKIP_KEY."""
    import logging

    import tf2onnx

    _check_exportable(config)
    if config.mask_padding and native and not padding_skip:
        raise ExportError("a model with mask_padding exports only as a native graph that skips padding")
    # tf2onnx narrates every conversion at WARNING level (freezing retries, ops it removed); failures still raise.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # The native rewrite wants the layers unmasked (padding_skip puts the mask back); tf2onnx's Loop keeps it.
    forward = _forward_function(model, config, trajectory, strip_mask=native)
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=forward.input_signature, opset=OPSET)
    if not native:
        return proto
    _, recurrent, _ = _layers(model, config)
    use_native_ops(proto, config, recurrent)
    if padding_skip and skips_padding(config):
        try:
            description = skip_padding(
                proto,
                config.sequence_length,
                masked=config.mask_padding,
                padding=config.padding,
                truncating=config.truncating,
            )
        except PaddingSkipError as error:
            raise ExportError(f"cannot skip padding: {error}") from None
        onnx_helper_set_props(proto, {PADDING_SKIP_KEY: json.dumps(description, sort_keys=True)})
    if padding_skip:
        batched_simple_rnn(proto)
    return proto


def _props(proto) -> dict[str, str]:
    return {prop.key: prop.value for prop in proto.metadata_props}


def onnx_helper_set_props(proto, props: dict[str, str]) -> None:
    """Add or replace metadata_props entries, keeping the others."""
    existing = _props(proto)
    existing.update(props)
    del proto.metadata_props[:]
    for key, value in existing.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def random_ids(config: ModelConfig, rows: int, seed: int = 0) -> np.ndarray:
    """Random reviews as the model sees them: start id, random word ids, some rows pre- or post-padded."""
    generator = np.random.default_rng(seed)
    length = config.sequence_length
    ids = generator.integers(3, config.vocabulary_size, size=(rows, length), dtype=np.int32)
    ids[:, 0] = 1
    for row in range(1, rows, 2):
        keep = int(generator.integers(1, length + 1))
        ids[row] = pad_sequences([ids[row, :keep]], length, config.padding, config.truncating)[0]
    return ids


def _keras_outputs(model, config: ModelConfig, ids: np.ndarray, trajectory: bool) -> dict[str, np.ndarray]:
    import keras

    outputs = {OUTPUT_NAME: np.asarray(model.predict(ids, batch_size=256, verbose=0)).reshape(len(ids), 1)}
    if trajectory:
        embedding, recurrent, head = _layers(model, config)
        inputs = keras.Input(shape=(None,), dtype="int32")
        values = embedding(inputs)
        for layer in recurrent[:-1]:
            values = layer(values)
        values = _sequence_copy(recurrent[-1])(values)
        for layer in head:
            values = layer(values)
        steps = keras.Model(inputs, values).predict(ids, batch_size=256, verbose=0)
        outputs[TRAJECTORY_NAME] = np.asarray(steps)[..., 0]
    return outputs


def parity(proto, model, config: ModelConfig, ids: np.ndarray, *, trajectory: bool = False) -> dict[str, float]:
    """Output name -> largest |Keras - onnxruntime| over the given id rows; for a file that skips padding, also with
    each batch cut to its longest row, against Keras on the full padding."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return output_differences(
        session,
        _keras_outputs(model, config, ids, trajectory),
        ids,
        padding=config.padding,
        masked=config.mask_padding,
        skips=bool(_props(proto).get(PADDING_SKIP_KEY)),
    )


def _versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": str(OPSET),
    }


def export_model(
    model,
    experiment: ExperimentConfig,
    vocabulary: Vocabulary,
    metrics: dict,
    out: str | Path,
    *,
    trajectory: bool = False,
    parity_ids: np.ndarray | None = None,
    parity_inputs: str = "",
    padding_skip: bool = True,
) -> ExportResult:
    """Convert, check parity on parity_ids (else the example reviews) plus random ids, and write one .onnx file.

    padding_skip=False writes the graph files had before the padding-free path: every row at full sequence_length,
    SimpleRNN layers as plain RNN nodes."""
    import onnx

    started = time.perf_counter()
    config = experiment.model
    if vocabulary.num_words != config.vocabulary_size:
        raise ExportError(
            f"the vocabulary has {vocabulary.num_words:,} ids but the model {config.vocabulary_size:,}: "
            "they come from different runs"
        )
    proto = convert(model, config, trajectory=trajectory, padding_skip=padding_skip)
    if parity_ids is None:
        from core.examples import EXAMPLE_REVIEWS

        parity_ids = pad_sequences(
            [vocabulary.encode(f"{title}. {text}").ids for title, text in EXAMPLE_REVIEWS],
            config.sequence_length,
            config.padding,
            config.truncating,
        )
        parity_inputs = parity_inputs or f"{len(EXAMPLE_REVIEWS)} example reviews"
    parity_inputs = f"{parity_inputs or f'{len(parity_ids)} given reviews'} and {RANDOM_PARITY_ROWS} random id rows"
    ids = np.concatenate([np.asarray(parity_ids, dtype=np.int32), random_ids(config, RANDOM_PARITY_ROWS)])
    differences = parity(proto, model, config, ids, trajectory=trajectory)
    difference = differences[OUTPUT_NAME]
    steps_difference = differences.get(TRAJECTORY_NAME)
    if not difference <= PARITY_TOLERANCE:  # also catches NaN
        raise ExportError(
            f"onnxruntime differs from Keras by {difference:.3g} (limit {PARITY_TOLERANCE:g}) on {parity_inputs}: "
            "the file was not written"
        )
    if steps_difference is not None and not steps_difference <= TRAJECTORY_TOLERANCE:
        raise ExportError(
            f"onnxruntime's step_probability differs from Keras by {steps_difference:.3g} (limit "
            f"{TRAJECTORY_TOLERANCE:g}) on {parity_inputs}: the file was not written"
        )
    metadata = ModelMetadata(
        vocabulary=vocabulary,
        sequence_length=config.sequence_length,
        padding=config.padding,
        truncating=config.truncating,
        labels=LABELS,
        threshold=DEFAULT_THRESHOLD,
        config=experiment.to_dict(),
        metrics=dict(metrics),
        parity_max_abs_diff=difference,
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        padding_skip=_props(proto).get(PADDING_SKIP_KEY) and json.loads(_props(proto)[PADDING_SKIP_KEY]),
    )
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name = "imdb-rnn core.export"
    proto.doc_string = (
        "IMDB review sentiment: int32 input_ids [batch, sequence] -> probability [batch, 1] (positive)"
        + (f"; {metadata.padding_skip['input']}" if metadata.padding_skip else "")
    )
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, data)
    return ExportResult(
        path=out,
        parity_max_abs_diff=difference,
        op_counts=op_counts(proto),
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        parity_inputs=parity_inputs,
        trajectory_max_abs_diff=steps_difference,
    )


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ExportError(f"cannot read the {what} {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"the {what} {path} is not valid JSON: {error}") from None


def _real_review_ids(run_info: dict, vocabulary: Vocabulary, config: ModelConfig) -> tuple[np.ndarray, str] | None:
    """A few hundred encoded test reviews from the run's data (or IMDB_DATA), or None when it cannot be read."""
    from core.paths import data_source

    recorded = run_info.get("data") if isinstance(run_info, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    candidates = [
        source
        for source in (recorded.get("path"), data_source())
        if isinstance(source, str) and source and Path(source).exists()
    ]
    if not candidates:
        return None
    try:
        from core.data import load_dataset

        dataset = load_dataset(candidates[0], num_words=vocabulary.num_words)
    except (ValueError, OSError, ImportError):
        return None
    test = dataset.test
    if not len(test):
        return None
    rows = np.random.default_rng(0).choice(len(test), size=min(PARITY_REVIEWS, len(test)), replace=False)
    ids = pad_sequences([test.ids(int(row)) for row in rows], config.sequence_length, config.padding, config.truncating)
    return ids, f"{len(rows)} test reviews of {dataset.source}"


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    trajectory: bool = False,
    parity_reviews: Sequence[str] | None = None,
) -> ExportResult:
    """Export a run's model.keras to out (default RUN_DIR/model.onnx); parity_reviews replaces the checked texts."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ExportError(f"{run_dir} is a file, not a run folder; `python -m core runs` lists the runs")
    if not run_dir.is_dir():
        raise ExportError(f"no run folder at {run_dir}")
    out = Path(out) if out else run_dir / "model.onnx"
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give the path of the .onnx file to write, such as {out / 'model.onnx'}")
    for name in ("config.json", "vocab.json", "model.keras"):
        if not (run_dir / name).is_file():
            raise ExportError(f"run {run_dir} has no {name}: only finished runs can be exported")
    run_info = _read_json(run_dir / "run.json", "run status") if (run_dir / "run.json").is_file() else {}
    if isinstance(run_info, dict) and run_info.get("status") == "running":
        from core.runs import read_run

        # A run whose process died still says "running" in run.json; read_run tells the two apart.
        if read_run(run_dir).status == "running":
            raise ExportError(f"run {run_dir} is still training: export it when it has finished")
    try:
        experiment = ExperimentConfig.from_dict(_read_json(run_dir / "config.json", "run config"))
        vocabulary = Vocabulary.from_dict(_read_json(run_dir / "vocab.json", "vocabulary"))
    except ExportError:
        raise
    except ValueError as error:
        raise ExportError(f"run {run_dir} cannot be exported: {error}") from None
    metrics = _read_json(run_dir / "metrics.json", "metrics") if (run_dir / "metrics.json").is_file() else {}
    config = experiment.model
    _check_exportable(config)
    import keras  # after the checks: a mistyped folder fails in milliseconds, not after TensorFlow's start-up

    try:
        model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        message = first_line(error)
        raise ExportError(f"cannot load {run_dir / 'model.keras'}: {message}") from None
    if parity_reviews is not None:
        texts = [text for text in parity_reviews if text.strip()]
        if not texts:
            raise ExportError("parity_reviews holds no non-empty review")
        parity = pad_sequences(
            [vocabulary.encode(text).ids for text in texts], config.sequence_length, config.padding, config.truncating
        )
        real = (parity, f"{len(texts)} given reviews")
    else:
        real = _real_review_ids(run_info, vocabulary, config)
    parity_ids, parity_inputs = real if real is not None else (None, "")
    return export_model(
        model,
        experiment,
        vocabulary,
        metrics,
        out,
        trajectory=trajectory,
        parity_ids=parity_ids,
        parity_inputs=parity_inputs,
    )
