"""Single-review latency and batch throughput of Keras, tf2onnx's Loop graph, the native-op file and NumPy."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMPLEMENTATIONS = ("keras_predict", "keras_function", "onnx_loop", "onnx_native", "numpy")
BATCH_SIZE = 1024  # reviews in the batch measurement
# (what, measured ratio name, target): onnx_native against the others, all from the same run.
TARGETS = (
    ("single review: keras_predict / onnx_native latency", "single_vs_keras_predict", 100.0),
    ("single review: onnx_loop / onnx_native latency", "single_vs_onnx_loop", 10.0),
    ("batch: onnx_native / keras_predict throughput", "batch_vs_keras_predict", 0.8),
)


@dataclass(frozen=True)
class BenchResult:
    """Medians after warm-up, one set of inputs for every implementation."""

    single_review_ms: dict[str, float]  # implementation -> milliseconds for one review
    batch_reviews_per_s: dict[str, float]  # implementation -> reviews a second over the batch
    batch_size: int
    sequence_length: int  # ids a review (the model's input length)
    max_abs_diff: float  # largest |implementation - keras_predict| over the batch: they compute the same thing
    load_average: float = 0.0  # the machine's 1-minute load when the run ended: other work skews every number

    def to_dict(self) -> dict:
        """The JSON of `python -m core bench --json`."""
        return {
            "single_review_ms": dict(self.single_review_ms),
            "batch_reviews_per_s": dict(self.batch_reviews_per_s),
            "batch_size": self.batch_size,
            "sequence_length": self.sequence_length,
        }

    def ratios(self) -> dict[str, float]:
        single, batch = self.single_review_ms, self.batch_reviews_per_s
        return {
            "single_vs_keras_predict": single["keras_predict"] / single["onnx_native"],
            "single_vs_onnx_loop": single["onnx_loop"] / single["onnx_native"],
            "batch_vs_keras_predict": batch["onnx_native"] / batch["keras_predict"],
        }

    def table(self) -> str:
        """The numbers and the target ratios, for people."""
        lines = [
            f"{self.sequence_length} ids a review; batch of {self.batch_size:,} reviews; medians after warm-up",
            "",
            f"{'implementation':<16}{'single review (ms)':>20}{'batch (reviews/s)':>20}",
            "-" * 56,
        ]
        for name in IMPLEMENTATIONS:
            lines.append(f"{name:<16}{self.single_review_ms[name]:>20.3f}{self.batch_reviews_per_s[name]:>20,.0f}")
        lines += ["", f"{'target':<56}{'measured':>10}{'goal':>8}"]
        ratios = self.ratios()
        for what, key, goal in TARGETS:
            verdict = "ok" if ratios[key] >= goal else "MISSED"
            lines.append(f"{what:<56}{ratios[key]:>9.1f}x{goal:>7g}x  {verdict}")
        lines.append(f"\nlargest difference from keras_predict over the batch: {self.max_abs_diff:.2e}")
        lines.append(f"load average at the end (1 min, {os.cpu_count()} cores): {self.load_average:.2f}")
        return "\n".join(lines)


def _median_seconds(call: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _numpy_forward(model) -> Callable[[np.ndarray], np.ndarray]:
    """core.model.numpy_loop's loop on the model's weights: the seed's NumPy formulation, made to run a whole batch."""
    from core.model.numpy_loop import extract_weights, run_reference

    weights = extract_weights(model)
    return lambda ids: run_reference(weights, ids).probability


def run_bench(
    model_path: str | Path,
    *,
    single_repeats: int = 30,
    batch_repeats: int = 3,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Measure every implementation on the same random full-length reviews, with the weights of the file."""
    from core.scoring.predictor import Predictor
    from core.export.model_file import session_options

    # The file is checked before TensorFlow's seconds-long start-up, so a bad path fails at once.
    predictor = Predictor.from_file(model_path)

    import onnx
    import onnxruntime
    import tensorflow as tf

    from core.export.convert import convert
    from core.model.build import build_model
    from core.export.passes.native_ops import keras_weights

    def say(message: str) -> None:
        if progress:
            progress(message)

    config = predictor.metadata.config.model
    # The Keras model is rebuilt from the file alone: its config metadata and its initializers.
    model = build_model(config)
    model.set_weights(keras_weights(onnx.load(str(model_path)), config))
    length = config.sequence_length
    generator = np.random.default_rng(0)
    batch = generator.integers(3, config.vocabulary_size, size=(batch_size, length), dtype=np.int32)
    batch[:, 0] = predictor.metadata.vocabulary.start_id
    single = batch[:1]

    say("converting the plain tf2onnx Loop graph")
    # Both ONNX graphs run with the same session settings, so that their difference is the graph alone.
    loop_session = onnxruntime.InferenceSession(
        convert(model, config, native=False).SerializeToString(),
        sess_options=session_options(),
        providers=["CPUExecutionProvider"],
    )
    loop_input = loop_session.get_inputs()[0].name
    keras_function = tf.function(lambda ids: model(ids, training=False), reduce_retracing=True)
    numpy_forward = _numpy_forward(model)

    runners: dict[str, tuple[Callable, Callable]] = {
        "keras_predict": (
            lambda ids: model.predict(ids, verbose=0),
            # The whole batch in one step: Keras's fastest setting here (its default of 32 runs at a quarter the speed).
            lambda ids: model.predict(ids, batch_size=len(ids), verbose=0),
        ),
        "keras_function": (lambda ids: keras_function(ids).numpy(),) * 2,
        "onnx_loop": (lambda ids: loop_session.run(None, {loop_input: ids})[0],) * 2,
        "onnx_native": (predictor.probabilities,) * 2,
        "numpy": (numpy_forward,) * 2,
    }
    single_ms, batch_per_s = {}, {}
    reference = np.asarray(runners["keras_predict"][1](batch)).reshape(-1)
    worst = 0.0
    for name, (run_single, run_batch) in runners.items():
        say(f"measuring {name}")
        single_ms[name] = 1000 * _median_seconds(lambda: run_single(single), single_repeats)
        seconds = _median_seconds(lambda: run_batch(batch), batch_repeats, warmup=1)
        batch_per_s[name] = batch_size / seconds
        worst = max(worst, float(np.max(np.abs(np.asarray(run_batch(batch)).reshape(-1) - reference))))
    return BenchResult(single_ms, batch_per_s, batch_size, length, worst, os.getloadavg()[0])
