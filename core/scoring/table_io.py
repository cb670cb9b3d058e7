"""Reviews in and scores out as CSV or Parquet files, chosen by extension, streamed chunk by chunk in bounded memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.atomic import atomic_path
from core.scoring.files import (
    OUTPUT_COLUMNS,
    CsvPrediction,
    ScoredCsv,
    find_text_column,
    predict_csv,
    predict_rows,
    scored_table,
)
from core.errors import one_line

if TYPE_CHECKING:
    import pyarrow as pa

    from core.scoring.predictor import Predictor

# The files reviews are read from, by extension.
INPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# The files scores are written to: the same, and JSON lines (what predict prints).
OUTPUT_FORMATS = {**INPUT_FORMATS, ".jsonl": "jsonl"}
# Rows scored in one predict call: enough for the Predictor's length-sorted batches and its tokenizing pipeline.
CHUNK_ROWS = 4096
# Rows a written Parquet row group holds: readers stream a file by row groups, so each one stays a few megabytes.
ROW_GROUP_ROWS = 65_536


def file_format(path: str | Path, role: str = "input") -> str:
    """"csv", "parquet" (or "jsonl" for an output) from the path's extension; ValueError for any other."""
    formats = INPUT_FORMATS if role == "input" else OUTPUT_FORMATS
    suffix = Path(path).suffix.lower()
    if suffix in formats:
        return formats[suffix]
    known = ", ".join(list(formats)[:-1]) + f" or {list(formats)[-1]}"
    raise ValueError(f"{path}: unknown {role} format {suffix or '(no extension)'}; name a {known} file")


def output_schema() -> pa.Schema:
    """The Parquet columns of a scored row: OUTPUT_COLUMNS, typed; label is categorical, missing where error is set."""
    import pyarrow as pa

    return pa.schema(
        [
            ("row", pa.int64()),
            ("label", pa.dictionary(pa.int32(), pa.string())),
            ("score", pa.float64()),
            ("tokens", pa.int64()),
            ("unknown_tokens", pa.int64()),
            ("truncated", pa.bool_()),
            ("error", pa.string()),
        ]
    )


def records_batch(records: list[dict], labels: Iterable[str]) -> pa.RecordBatch:
    """Output records (CsvPrediction.to_dict) as one typed batch of output_schema; labels are the model's labels."""
    import pyarrow as pa

    labels = list(labels)
    codes = {label: code for code, label in enumerate(labels)}
    label = pa.DictionaryArray.from_arrays(
        pa.array([codes.get(record["label"]) for record in records], pa.int32()), pa.array(labels, pa.string())
    )
    columns = {name: [record.get(name) for record in records] for name in OUTPUT_COLUMNS if name != "label"}
    schema = output_schema()
    arrays = [label if name == "label" else pa.array(columns[name], schema.field(name).type) for name in OUTPUT_COLUMNS]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _check_text_type(field, path: Path) -> None:
    import pyarrow as pa

    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise ValueError(
            f"{path}: column {field.name!r} holds {field.type}, not text: name the review column with --text-column"
        )


def parquet_text_column(schema: pa.Schema, text_column: str | None, path: Path) -> str:
    """The name of a Parquet schema's review column (the CSV rule: text, then review, or the one named), checked to
    hold strings; ValueError otherwise."""
    name = schema.names[find_text_column(schema.names, text_column, path)]
    _check_text_type(schema.field(name), path)
    return name


def _unreadable(path: Path, error: BaseException) -> ValueError:
    return ValueError(f"{path} is not a readable Parquet file (corrupt or truncated?): {one_line(error)}")


def predict_parquet(
    predictor: Predictor,
    path: str | Path,
    *,
    text_column: str | None = None,
    chunk_size: int = CHUNK_ROWS,
    progress: Callable[[float, int], None] | None = None,
) -> Iterator[CsvPrediction]:
    """Classify a Parquet file's reviews batch by batch (one row group in memory at a time), yielding rows in order
    with 1-based row numbers; a missing (null) text is an empty review. progress(fraction_of_rows, rows_done)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a Parquet file" if path.is_dir() else f"no Parquet file at {path}")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(path, error) from None
    with parquet:
        name = parquet_text_column(parquet.schema_arrow, text_column, path)
        total = max(parquet.metadata.num_rows, 1)
        batches = parquet.iter_batches(batch_size=chunk_size, columns=[name])
        done = 0
        while True:
            # Only the reading is guarded: a corrupt page surfaces here, in the middle of the file.
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as error:
                raise _unreadable(path, error) from None
            if batch is None:
                break
            texts = batch.column(0).to_pylist()
            yield from predict_rows(predictor, [(done + index, text or "") for index, text in enumerate(texts, 1)])
            done += len(texts)
            if progress:
                progress(min(done / total, 1.0), done)
        if progress:
            progress(1.0, done)


def predict_table(
    predictor: Predictor,
    path: str | Path,
    *,
    text_column: str | None = None,
    chunk_size: int = CHUNK_ROWS,
    progress: Callable[[float, int], None] | None = None,
) -> Iterator[CsvPrediction]:
    """A CSV's or a Parquet file's reviews classified chunk by chunk, in order, by the path's extension."""
    reader = predict_parquet if file_format(path) == "parquet" else predict_csv
    return reader(predictor, path, text_column=text_column, chunk_size=chunk_size, progress=progress)


def score_table(
    predictor: Predictor,
    path: str | Path,
    text_column: str | None = None,
    progress: Callable[[float, int], None] | None = None,
    preview_rows: int = 5_000,
    max_rows: int | None = None,
) -> ScoredCsv:
    """score_csv for a CSV or a Parquet file, by extension: every row's record in typed columns, max_rows at most."""
    results = predict_table(predictor, path, text_column=text_column, progress=progress)
    return scored_table(predictor, results, preview_rows, max_rows)


def parquet_bytes(scored: ScoredCsv) -> bytes:
    """A scored table as a Parquet file's bytes, in output_schema (the same file `predict --out X.parquet` writes)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def categories(codes: np.ndarray, names) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32), mask=codes < 0), pa.array(list(names), pa.string())
        )

    has_score = scored.label_codes >= 0
    table = pa.table(
        {
            "row": scored.rows,
            "label": categories(scored.label_codes, scored.labels),
            "score": pa.array(scored.scores, mask=~has_score),
            "tokens": scored.tokens,
            "unknown_tokens": scored.unknown_tokens,
            "truncated": scored.truncated,
            "error": categories(scored.error_codes, scored.errors).cast(pa.string()),
        },
        schema=output_schema(),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=ROW_GROUP_ROWS)
    return buffer.getvalue()


def json_line(record: dict) -> str:
    """One scored row as a line of JSON lines, the format `python -m core predict` prints and writes to a .jsonl file
    (every writer of it goes through here)."""
    return json.dumps(record) + "\n"


class _JsonLines:
    def __init__(self, path: Path, labels) -> None:
        self.stream = open(path, "w", encoding="utf-8")

    def write(self, records: list[dict]) -> None:
        self.stream.writelines(map(json_line, records))

    def close(self) -> None:
        self.stream.close()


class _Csv:
    # The same text as the Classify page's download (pandas to_csv): missing values are empty, floats as repr.
    def __init__(self, path: Path, labels) -> None:
        self.stream = open(path, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.stream)
        self.writer.writerow(OUTPUT_COLUMNS)

    def write(self, records: list[dict]) -> None:
        self.writer.writerows(
            ["" if record.get(name) is None else record[name] for name in OUTPUT_COLUMNS] for record in records
        )

    def close(self) -> None:
        self.stream.close()


class _Parquet:
    # Chunks become typed batches at once (tens of bytes a row), written as a row group every ROW_GROUP_ROWS rows.
    def __init__(self, path: Path, labels) -> None:
        import pyarrow.parquet as pq

        self.labels = list(labels)
        self.writer = pq.ParquetWriter(path, output_schema())
        self.pending: list = []
        self.rows = 0

    def write(self, records: list[dict]) -> None:
        self.pending.append(records_batch(records, self.labels))
        self.rows += len(records)
        if self.rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending), row_group_size=ROW_GROUP_ROWS)
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()


WRITERS = {"jsonl": _JsonLines, "csv": _Csv, "parquet": _Parquet}


@dataclass(frozen=True)
class Written:
    """What write_predictions wrote: rows, and how many of them had no review text."""

    rows: int
    failed: int


def write_predictions(
    results: Iterable[CsvPrediction],
    out: str | Path,
    labels: Iterable[str],
    source: str | Path = "the input",
    chunk_size: int = CHUNK_ROWS,
) -> Written:
    """Write scored rows to out as CSV, Parquet or JSON lines by its extension, chunk by chunk, to a temporary file
    renamed into place at the end: an error (bad input found half-way, no rows at all) leaves no file."""
    out = Path(out)
    kind = file_format(out, "output")
    if out.is_dir():
        raise ValueError(f"{out} is a folder: give the path of the file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = failed = 0
    with atomic_path(out) as temporary:
        writer = WRITERS[kind](temporary, labels)
        try:
            chunk: list[dict] = []
            for result in results:
                chunk.append(result.to_dict())
                failed += result.prediction is None
                if len(chunk) >= chunk_size:
                    writer.write(chunk)
                    rows += len(chunk)
                    chunk = []
            if chunk:
                writer.write(chunk)
                rows += len(chunk)
        finally:
            writer.close()
        if rows == 0:
            raise ValueError(f"{source} has a header but no rows to classify")
    return Written(rows, failed)
