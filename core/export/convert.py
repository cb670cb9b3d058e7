"""Export a trained model (the TensorFlow side): tf2onnx, the ONNX wing's passes, Keras parity, one .onnx file."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.export import parity
from core.atomic import write_bytes
from core.config import ExperimentConfig, ModelConfig
from core.errors import first_line
from core.model.build import model_layers, sequence_copy
from core.export.model_file import (
    DEFAULT_THRESHOLD,
    INPUT_NAME,
    OUTPUT_NAME,
    PADDING_SKIP_KEY,
    STEPS_SWITCH_DOC,
    TRAJECTORY_NAME,
    ModelMetadata,
    has_steps_switch,
)
from core.export.text_file import checked_text_file, text_path
from core.export.graph import ExportError, model_props, op_counts, recurrent_layers
from core.export.passes.padding_skip import PaddingSkipError
from core.export.passes.pass_list import AFTER_NATIVE_OPS, STEPS_SWITCH, PassInputs, apply_passes
from core.data.reviews import LABELS
from core.runs.store import CONFIG_FILE, MODEL_FILE, VOCABULARY_FILE, read_run, read_vocabulary
from core.data.text import Vocabulary, pad_sequences

# op_counts is re-exported: an export's caller compares a file's op counts with ExportResult.op_counts.
__all__ = ["ExportError", "ExportResult", "convert", "export_model", "export_run", "op_counts", "skips_padding"]

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
    recurrent_layers: dict[str, int] = field(default_factory=dict)  # recurrent op type -> layers on it
    text_path: Path | None = None  # the companion that reads raw reviews (core.export.text_file)
    text_size_bytes: int = 0
    text_max_abs_diff: float | None = None  # largest |text file - ids file| of the probability on the checked reviews


def _check_exportable(config: ModelConfig) -> None:
    if not config.is_classifier:
        raise ExportError(
            "only classifiers can be exported: this model has no Dense(1, sigmoid) output on its final state"
        )


def _forward_function(model, config: ModelConfig, trajectory: bool, strip_mask: bool = True):
    """A tf.function over the model's own layers with a named, fully dynamic [batch, sequence] int32 input."""
    import tensorflow as tf

    embedding, recurrent, head = model_layers(model, config)
    last = sequence_copy(recurrent[-1]) if trajectory else recurrent[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)])
    def forward(input_ids):
        values = embedding(input_ids)
        if config.mask_padding and strip_mask:
            # A new tensor without the Keras mask: the layers convert as unmasked ones, and passes.padding_skip gives
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
    """Whether the export of this model accepts input_ids shorter than sequence_length (passes.padding_skip)."""
    return PassInputs.from_config(config).skips_padding


def convert(
    model,
    config: ModelConfig,
    *,
    trajectory: bool = False,
    native: bool = True,
    padding_skip: bool = True,
    steps_switch: bool = True,
):
    """The ONNX ModelProto of a build_model model; native=False keeps tf2onnx's plain Loop graph (for the benchmark).

    The native graph skips padding when the model allows it (skips_padding) unless padding_skip is False: its
    description is then in proto.metadata_props under PADDING_SKIP_KEY. With trajectory, it computes step_probability
    only when its with_steps input is fed true (the steps switch) unless steps_switch or padding_skip is False (the
    graph files had before: every run computes it). The passes are core.export.passes.pass_list's, in its order."""
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
    _, recurrent, _ = model_layers(model, config)
    left_out = set() if padding_skip else set(AFTER_NATIVE_OPS)
    if not steps_switch:
        left_out.add(STEPS_SWITCH.name)
    try:
        apply_passes(proto, PassInputs.from_config(config, recurrent_layers=tuple(recurrent)), left_out)
    except PaddingSkipError as error:
        raise ExportError(f"cannot skip padding: {error}") from None
    return proto


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
    steps_switch: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> ExportResult:
    """Convert, check parity on parity_ids (else the example reviews) plus random ids, and write one .onnx file.
    on_stage hears each stage as it starts, in a few words ("converting with tf2onnx").

    padding_skip=False writes the graph files had before the padding-free path: every row at full sequence_length,
    SimpleRNN layers as plain RNN nodes. steps_switch=False writes a trajectory file as it was before the steps switch:
    step_probability computed on every run."""
    import onnx

    started = time.perf_counter()
    config = experiment.model
    if vocabulary.num_words != config.vocabulary_size:
        raise ExportError(
            f"the vocabulary has {vocabulary.num_words:,} ids but the model {config.vocabulary_size:,}: "
            "they come from different runs"
        )
    stage = on_stage or (lambda _: None)
    stage("converting with tf2onnx and rewriting to native recurrent ops")
    proto = convert(model, config, trajectory=trajectory, padding_skip=padding_skip, steps_switch=steps_switch)
    if parity_ids is None:
        from core.data.examples import EXAMPLE_REVIEWS

        parity_ids = pad_sequences(
            [vocabulary.encode(f"{title}. {text}").ids for title, text in EXAMPLE_REVIEWS],
            config.sequence_length,
            config.padding,
            config.truncating,
        )
        parity_inputs = parity_inputs or f"{len(EXAMPLE_REVIEWS)} example reviews"
    parity_inputs = f"{parity_inputs or f'{len(parity_ids)} given reviews'} and {RANDOM_PARITY_ROWS} random id rows"
    ids = np.concatenate([np.asarray(parity_ids, dtype=np.int32), parity.random_ids(config, RANDOM_PARITY_ROWS)])
    stage(f"checking parity with Keras on {parity_inputs}")
    differences = parity.keras_differences(proto, model, config, ids, trajectory=trajectory)
    difference = differences[OUTPUT_NAME]
    steps_difference = differences.get(TRAJECTORY_NAME)
    failure = parity.exceeded(differences)
    if failure is not None:
        name, worst, limit = failure
        which = "onnxruntime" if name == OUTPUT_NAME else f"onnxruntime's {name}"
        raise ExportError(
            f"{which} differs from Keras by {worst:.3g} (limit {limit:g}) on {parity_inputs}: the file was not written"
        )
    skip_description = model_props(proto).get(PADDING_SKIP_KEY)
    metadata = ModelMetadata(
        vocabulary=vocabulary,
        sequence_length=config.sequence_length,
        padding=config.padding,
        truncating=config.truncating,
        labels=LABELS,
        threshold=DEFAULT_THRESHOLD,
        config=experiment,
        metrics=dict(metrics),
        parity_max_abs_diff=difference,
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        padding_skip=json.loads(skip_description) if skip_description else None,
    )
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name = "imdb-rnn core.export.convert"
    proto.doc_string = (
        "IMDB review sentiment: int32 input_ids [batch, sequence] -> probability [batch, 1] (positive)"
        + (f"; {metadata.padding_skip['input']}" if metadata.padding_skip else "")
        + (f"; {STEPS_SWITCH_DOC}" if has_steps_switch(proto) else "")
    )
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    out = Path(out)
    # Its companion that reads raw reviews (core.export.text_file), made and checked before either file is written.
    text_out = text_path(out)
    stage("making and checking the text file (raw reviews in)")
    try:
        text_data, text_difference, _ = checked_text_file(proto, metadata, str(text_out))
    except ValueError as error:
        raise ExportError(f"the text file failed: {error}; nothing was written") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, data)
    write_bytes(text_out, text_data)
    return ExportResult(
        path=out,
        parity_max_abs_diff=difference,
        op_counts=op_counts(proto),
        recurrent_layers=recurrent_layers(proto),
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        parity_inputs=parity_inputs,
        trajectory_max_abs_diff=steps_difference,
        text_path=text_out,
        text_size_bytes=len(text_data),
        text_max_abs_diff=text_difference,
    )


def _real_review_ids(run, vocabulary: Vocabulary, config: ModelConfig) -> tuple[np.ndarray, str] | None:
    """A few hundred test reviews of the run's data (or IMDB_DATA), encoded with the run's vocabulary; None when no
    review text can be read. Only the test split's texts are read: no training split, vocabulary or cache is built."""
    from core.data.load import read_reviews

    source = run.data_source()
    if source is None or not Path(source).exists():
        return None
    try:
        reviews = read_reviews(source, "test")
    except (ValueError, OSError):
        return None
    if not reviews:
        return None
    # The same rows as the cached dataset's test split would give: read_reviews keeps its order.
    rows = np.random.default_rng(0).choice(len(reviews), size=min(PARITY_REVIEWS, len(reviews)), replace=False)
    encoded = [vocabulary.encode(reviews[int(row)].text).ids for row in rows]
    ids = pad_sequences(encoded, config.sequence_length, config.padding, config.truncating)
    # The run recorded how its data reads for people ("Stanford archive ..."); another source is named by its path.
    described = run.data.get("source") if source == run.recorded_source else None
    return ids, f"{len(rows)} test reviews of {described or source}"


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    trajectory: bool = False,
    parity_reviews: Sequence[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a run's model.keras to out (default RUN_DIR/model.onnx); parity_reviews replaces the checked texts;
    on_stage hears each stage as it starts (loading, reading reviews, converting, parity, the text file)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ExportError(f"{run_dir} is a file, not a run folder; `python -m core runs` lists the runs")
    if not run_dir.is_dir():
        raise ExportError(f"no run folder at {run_dir}")
    out = Path(out) if out else run_dir / "model.onnx"
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give the path of the .onnx file to write, such as {out / 'model.onnx'}")
    for name in (CONFIG_FILE, VOCABULARY_FILE, MODEL_FILE):
        if not (run_dir / name).is_file():
            raise ExportError(f"run {run_dir} has no {name}: only finished runs can be exported")
    run = read_run(run_dir)
    # read_run tells a live training from a run whose process died while run.json still says "running"; the rule is the
    # one every use of a run's model follows (still training, a broken part, no weights).
    problem = run.why_unusable("export")
    if problem:
        raise ExportError(problem)
    try:
        vocabulary = read_vocabulary(run_dir)
    except ValueError as error:
        raise ExportError(f"run {run_dir} cannot be exported: {error}") from None
    experiment = run.config
    config = experiment.model
    _check_exportable(config)
    stage = on_stage or (lambda _: None)
    stage(f"loading TensorFlow and {run.model_path.name}")
    import keras  # after the checks: a mistyped folder fails in milliseconds, not after TensorFlow's start-up

    try:
        model = keras.saving.load_model(run.model_path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        message = first_line(error)
        raise ExportError(f"cannot load {run.model_path}: {message}") from None
    if parity_reviews is not None:
        texts = [text for text in parity_reviews if text.strip()]
        if not texts:
            raise ExportError("parity_reviews holds no non-empty review")
        given = pad_sequences(
            [vocabulary.encode(text).ids for text in texts], config.sequence_length, config.padding, config.truncating
        )
        real = (given, f"{len(texts)} given reviews")
    else:
        stage("reading the run's test reviews for the parity check")
        real = _real_review_ids(run, vocabulary, config)
    parity_ids, parity_inputs = real if real is not None else (None, "")
    return export_model(
        model,
        experiment,
        vocabulary,
        # A killed or stopped run exports its best epoch's model, and the file says it is partial.
        {**(run.metrics or {}), **({"partial": run.partial} if run.partial else {})},
        out,
        trajectory=trajectory,
        parity_ids=parity_ids,
        parity_inputs=parity_inputs,
        on_stage=on_stage,
    )
