"""An exported file beside its int8 copy: the test reviews to measure them on, quantizing, and the comparison to show.

core.export.quantize writes the int8 file and measures both; this module decides which reviews measure them and what is said
about it, for `python -m core quantize`, `export --quantize` and the Export page alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import first_line
from core.evaluation.evaluate import MAPPED_NOTE

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
    comparison: object  # core.export.quantize.Comparison
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
    from core.export.quantize import compare_quantized, quantize_file

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
    from core.export.quantize import compare_quantized, quantization_info

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
    from core.export.quantize import float_metadata

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
