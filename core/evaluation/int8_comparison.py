"""An exported file beside its int8 copy: the test reviews to measure them on, quantizing, and the comparison to show.

core.export.quantize writes the int8 file; this module measures both files in one run (compare_quantized), decides
which reviews measure them and what is said about it, for `python -m core quantize`, `export --quantize` and the
Export page alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import first_line
from core.evaluation.evaluation import MAPPED_NOTE
from core.export.model_file import positive
from core.export.quantize import QuantizeError, float_metadata, quantization_info, quantize_file

# Why the command line measures no accuracy when it has no reviews; the Export page says it its own way.
NO_DATA_CLI = "no test data (give --data or set IMDB_DATA)"
NO_DATA_PAGE = "no test data; set IMDB_DATA or choose a CSV on the Data page"


@dataclass(frozen=True)
class ReviewsToScore:
    """The test split a comparison scores, or why there is none."""

    split: object | None  # core.data.load.Split encoded with the model's vocabulary; None when not available
    missing: str | None = None  # why there is no split, for "test accuracy not measured: ..."


def reviews_to_score(
    vocabulary,
    source: str | None,
    *,
    no_data: str = NO_DATA_CLI,
    keep_going: bool = False,
    load: Callable | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ReviewsToScore:
    """The test split of source in the model's ids; load(source, num_words) reads it (default core.data.load.load_dataset).

    No source means no split: Keras's imdb.npz would need the network and TensorFlow. With keep_going, a source that
    cannot be read costs the accuracy rows only (its first line says why); otherwise its ValueError is raised.
    """
    from core.data.load import load_dataset, split_for_vocabulary

    if source is None:
        return ReviewsToScore(None, no_data)
    try:
        if load is None:
            dataset = load_dataset(source, num_words=vocabulary.num_words)
        else:
            dataset = load(source, vocabulary.num_words)
        split, exact = split_for_vocabulary(dataset, vocabulary)
    except ValueError as error:
        if not keep_going:
            raise
        return ReviewsToScore(None, f"the test reviews could not be read: {first_line(error)}")
    if not exact and on_note:
        on_note(MAPPED_NOTE)
    return ReviewsToScore(split)


def quantized_lines(quantized: tuple[dict, ...] | list[dict], not_quantized: dict[str, str]) -> list[str]:
    """What was quantized and what stays float32, one line each, for the command line."""
    lines = []
    for entry in quantized:
        shape = " x ".join(f"{size:,}" for size in entry["shape"])
        lines.append(f"quantized: {entry['op']} table {entry['initializer']} [{shape}] to {entry['dtype']}")
    lines += [f"float32: {op}: {reason}" for op, reason in not_quantized.items()]
    return lines


def quantization_summary(info: dict) -> str:
    """The `quantization` metadata of an int8 file in one sentence, for the Export page."""
    done = "; ".join(
        f"{entry['op']} table {' x '.join(f'{size:,}' for size in entry['shape'])} to {entry['dtype']}"
        for entry in info["quantized"]
    )
    kept = " ".join(f"{op}: {reason}." for op, reason in info["not_quantized"].items())
    return f"Quantized with {info['method']}: {done}. Kept in float32: {kept}"


@dataclass(frozen=True)
class Int8Comparison:
    """An int8 file measured against its float file."""

    path: Path  # the int8 file
    comparison: object  # Comparison
    quantization: dict | None  # the int8 file's `quantization` metadata
    missing: str | None  # why test accuracy was not measured (None when it was)


def quantize_and_compare(
    float_path: str | Path,
    out: str | Path | None,
    reviews: ReviewsToScore,
    *,
    on_line: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Int8Comparison:
    """Write the int8 copy of float_path (at out, default beside it), then measure both files on reviews.

    on_line gets what was quantized as soon as the file is written; on_step says what is being measured.
    """
    result = quantize_file(float_path, out)
    for line in quantized_lines(result.quantized, result.not_quantized):
        if on_line:
            on_line(line)
    split = reviews.split
    measured = "latency and throughput" if split is None else f"latency, throughput, {len(split):,} test reviews"
    if on_step:
        on_step(f"measuring both files: {measured}...")
    comparison = compare_quantized(float_path, result.path, split)
    info = {"quantized": list(result.quantized), "not_quantized": dict(result.not_quantized)}
    return Int8Comparison(result.path, comparison, info, reviews.missing)


def compare_files(
    float_path: str | Path, int8_path: str | Path, reviews: ReviewsToScore, *, single_repeats: int = 100
) -> Int8Comparison:
    """Measure an existing int8 file against its float file on reviews (the Export page's table)."""
    comparison = compare_quantized(float_path, int8_path, reviews.split, single_repeats=single_repeats)
    return Int8Comparison(Path(int8_path), comparison, quantization_info(int8_path), reviews.missing)


def quantize_model(
    model: str | None,
    out: str | None,
    data: str | None,
    *,
    on_line: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Int8Comparison:
    """`python -m core quantize`: the int8 copy of an exported file (default: the shipped model), measured on data
    (default IMDB_DATA; without one, size and speed only). The file is checked and the data read before anything is
    written, so a mistake leaves no file behind."""
    from core import paths
    from core.scoring.predictor import model_path

    path = model_path(model)
    reviews = reviews_to_score(float_metadata(path).vocabulary, data or paths.data_source(), on_note=on_note)
    return quantize_and_compare(path, out, reviews, on_line=on_line, on_step=on_step)


def quantize_export(
    run_dir: str | Path,
    float_path: str | Path,
    *,
    on_line: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Int8Comparison:
    """`export --quantize`: the int8 copy of a run's fresh export, measured on the run's own reviews while they are
    still where it read them, else IMDB_DATA. An unreadable source costs the accuracy rows only: both files are
    written by then."""
    from core.export.model_file import read_model_file
    from core.runs.store import read_run

    source = read_run(run_dir).data_source()
    try:
        vocabulary = read_model_file(float_path)[2].vocabulary
    except ValueError as error:
        reviews = ReviewsToScore(None, f"the test reviews could not be read: {first_line(error)}")
    else:
        reviews = reviews_to_score(vocabulary, source, keep_going=True, on_note=on_note)
    return quantize_and_compare(float_path, None, reviews, on_line=on_line, on_step=on_step)


@dataclass(frozen=True)
class Comparison:
    """A float file beside its int8 copy, measured in one run with the same inputs."""

    float_bytes: int
    int8_bytes: int
    float_single_ms: float  # median latency of one full-length review
    int8_single_ms: float
    float_batch_per_s: float  # reviews a second over a batch of full-length reviews
    int8_batch_per_s: float
    sequence_length: int  # ids in each timed review
    batch_size: int
    single_repeats: int
    test_n: int = 0  # test reviews scored; 0 when no test data was given
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    flips: int | None = None  # test reviews whose label differs between the two files
    max_score_change: float | None = None  # largest |int8 score - float score| over the test reviews
    mean_score_change: float | None = None

    @property
    def accuracy_change(self) -> float | None:
        if self.float_accuracy is None or self.int8_accuracy is None:
            return None
        return self.int8_accuracy - self.float_accuracy

    @property
    def flip_share(self) -> float | None:
        return None if self.flips is None or not self.test_n else self.flips / self.test_n

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_change": self.accuracy_change, "flip_share": self.flip_share}

    def rows(self) -> list[dict[str, str]]:
        """The comparison as a table for people: measure, float32, int8, change."""

        def ratio(new: float, old: float) -> str:
            return f"{new / old:.2f}x" if old else "-"

        rows = [
            {
                "measure": "file size",
                "float32": f"{self.float_bytes / 1024:,.1f} KiB",
                "int8": f"{self.int8_bytes / 1024:,.1f} KiB",
                "change": ratio(self.int8_bytes, self.float_bytes),
            },
            {
                "measure": f"one review of {self.sequence_length} ids (ms, median of {self.single_repeats})",
                "float32": f"{self.float_single_ms:.3f}",
                "int8": f"{self.int8_single_ms:.3f}",
                "change": ratio(self.int8_single_ms, self.float_single_ms),
            },
            {
                "measure": f"batch of {self.batch_size:,} (reviews/s)",
                "float32": f"{self.float_batch_per_s:,.0f}",
                "int8": f"{self.int8_batch_per_s:,.0f}",
                "change": ratio(self.int8_batch_per_s, self.float_batch_per_s),
            },
        ]
        if self.test_n and self.accuracy_change is not None:
            rows += [
                {
                    "measure": f"test accuracy ({self.test_n:,} reviews)",
                    "float32": f"{self.float_accuracy:.4f}",
                    "int8": f"{self.int8_accuracy:.4f}",
                    "change": f"{self.accuracy_change:+.4f}",
                },
                {
                    "measure": "test labels that flip",
                    "float32": "",
                    "int8": f"{self.flips:,} of {self.test_n:,}",
                    "change": f"{self.flip_share:.2%}",
                },
                {
                    "measure": "largest score change",
                    "float32": "",
                    "int8": f"{self.max_score_change:.4f}",
                    "change": f"mean {self.mean_score_change:.5f}",
                },
            ]
        return rows

    def table(self) -> str:
        """rows() as aligned text."""
        header = {"measure": "", "float32": "float32", "int8": "int8", "change": "change"}
        rows = [header, *self.rows()]
        widths = {name: max(len(row[name]) for row in rows) for name in header}
        lines = [
            f"{row['measure']:<{widths['measure']}}  {row['float32']:>{widths['float32']}}  "
            f"{row['int8']:>{widths['int8']}}  {row['change']:>{widths['change']}}".rstrip()
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)


def _interleaved_medians(calls: tuple[Callable, Callable], repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds of two calls timed turn about, so that a busy moment of the machine hits both alike."""
    for _ in range(warmup):
        for call in calls:
            call()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for call, measured in zip(calls, times):
            started = time.perf_counter()
            call()
            measured.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def compare_quantized(
    float_path: str | Path,
    int8_path: str | Path,
    test_split=None,
    *,
    single_repeats: int = 200,
    batch_size: int = 1024,
    batch_repeats: int = 3,
) -> Comparison:
    """Size, single-review latency, batch throughput, and (with a Split encoded with the model's vocabulary) test
    accuracy of both files, their change and the labels that flip, all from the same run."""
    from core.scoring.predictor import Predictor

    float_model, int8_model = Predictor.from_file(float_path), Predictor.from_file(int8_path)
    metadata, int8_metadata = float_model.metadata, int8_model.metadata
    if (metadata.vocabulary, metadata.sequence_length) != (int8_metadata.vocabulary, int8_metadata.sequence_length):
        raise QuantizeError(f"{int8_path} was not made from {float_path}: their vocabularies or lengths differ")
    length = metadata.sequence_length
    generator = np.random.default_rng(0)
    batch = generator.integers(
        metadata.vocabulary.index_from, metadata.vocabulary.num_words, size=(batch_size, length), dtype=np.int32
    )
    batch[:, 0] = metadata.vocabulary.start_id
    single = batch[:1]
    single_s = _interleaved_medians(
        (lambda: float_model.probabilities(single), lambda: int8_model.probabilities(single)), single_repeats, warmup=5
    )
    batch_s = _interleaved_medians(
        (lambda: float_model.probabilities(batch), lambda: int8_model.probabilities(batch)), batch_repeats, warmup=1
    )
    measured = {}
    if test_split is not None and len(test_split):
        ids = test_split.padded(length, metadata.padding, metadata.truncating)
        truth = test_split.labels == 1
        float_scores, int8_scores = float_model.probabilities(ids), int8_model.probabilities(ids)
        float_labels = positive(float_scores, metadata.threshold)
        int8_labels = positive(int8_scores, int8_model.metadata.threshold)
        change = np.abs(int8_scores.astype(np.float64) - float_scores)
        measured = {
            "test_n": len(test_split),
            "float_accuracy": float(np.mean(float_labels == truth)),
            "int8_accuracy": float(np.mean(int8_labels == truth)),
            "flips": int(np.count_nonzero(float_labels != int8_labels)),
            "max_score_change": float(change.max()),
            "mean_score_change": float(change.mean()),
        }
    return Comparison(
        float_bytes=Path(float_path).stat().st_size,
        int8_bytes=Path(int8_path).stat().st_size,
        float_single_ms=1000 * single_s[0],
        int8_single_ms=1000 * single_s[1],
        float_batch_per_s=batch_size / batch_s[0],
        int8_batch_per_s=batch_size / batch_s[1],
        sequence_length=length,
        batch_size=batch_size,
        single_repeats=single_repeats,
        **measured,
    )
