"""The local engine's scoring as a Ray Data job, one Predictor a worker, written to one Parquet file."""

from __future__ import annotations

import csv
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.atomic import atomic_path
from core.scoring.files import find_text_column, predict_rows
from core.errors import first_line
from core.scoring.table_io import (
    CHUNK_ROWS,
    ROW_GROUP_ROWS,
    Written,
    file_format,
    output_schema,
    parquet_text_column,
    records_batch,
)

if TYPE_CHECKING:
    import pyarrow as pa

# The Ray release this project is tested with (requirements-dev.txt pins the same); Ray is optional for users.
RAY_VERSION = "2.60.0"
AIOHTTP_VERSION = "3.14.5"
INSTALL_RAY = f'pip install "ray[data]=={RAY_VERSION}" "aiohttp=={AIOHTTP_VERSION}"'
# Read tasks reserve no CPU: reading a column of text costs little beside tokenizing and scoring it, and reads that
# waited for a CPU held by a scoring worker would wait for ever. Ray Data's one file-listing task still takes a CPU:
# the default pool of scoring workers leaves it one.
READ_CPUS = 0
# How Ray Data names the file a failed read task was reading, further down its message.
FAILED_FILE = re.compile(r"Failed to read fragment (\S+)")
# The last line of a traceback Ray reports from a worker: "core.export.model_file.ModelFileError: no model file at ...".
REMOTE_ERROR = re.compile(r"^[\w.]*(?:Error|Exception|Exit|Interrupt)\w*: (.+)$")


def import_ray():
    """The ray module, or ValueError saying how to install it: Ray is imported here and only here, when asked for."""
    try:
        import ray
        import aiohttp  # noqa: F401  (without it Ray Data's path checks race on a failing fsspec import)
        import ray.data  # noqa: F401  (ray[data]'s extras: a bare `pip install ray` lacks them)
    except ImportError:
        raise ValueError(f"--engine ray needs Ray and its data extras, not installed here: {INSTALL_RAY}") from None
    return ray


class BatchScorer:
    """map_batches' callable class: each Ray worker loads the model file once, then scores batches of one text column
    into the output columns (row numbers are given on the driver, which alone knows every batch's place)."""

    def __init__(self, model: str) -> None:
        from core.scoring.predictor import Predictor

        self.predictor = Predictor.from_file(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        texts = batch.column(0).to_pylist()
        records = [item.to_dict() for item in predict_rows(self.predictor, [(0, text or "") for text in texts])]
        return pa.Table.from_batches([records_batch(records, self.predictor.metadata.labels)])


def input_files(source: str | Path) -> tuple[str, list[Path]]:
    """The format and files of --input: one CSV or Parquet file, or a folder of them (its files of one known
    extension, in name order, which is the row order); ValueError when there is nothing to read or formats mix."""
    source = Path(source)
    if source.is_file():
        return file_format(source), [source]
    if not source.is_dir():
        raise ValueError(f"no input file or folder at {source}")
    files = sorted(path for path in source.iterdir() if path.is_file() and not path.name.startswith((".", "_")))
    formats = {file_format(path) for path in files}
    if not files:
        raise ValueError(f"{source} is an empty folder: expected CSV or Parquet files")
    if len(formats) > 1:
        raise ValueError(f"{source} mixes CSV and Parquet files: give a folder of one format")
    return formats.pop(), files


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            return next(csv.reader(stream), None) or []
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from None


def _dataset(ray, kind: str, files: list[Path], text_column: str | None):
    """The Ray dataset of the review column alone, as strings, the files' rows in order."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    paths = [str(path.resolve()) for path in files]
    if kind == "parquet":
        # Every footer is read here (Ray Data reads them on the driver too), so a truncated file is named at once.
        schemas = []
        for path in files:
            try:
                schemas.append(pq.read_schema(path))
            except (pa.ArrowException, OSError) as error:
                raise ValueError(f"{path} is not a readable Parquet file (corrupt or truncated?): {first_line(error)}")
        name = parquet_text_column(schemas[0], text_column, files[0])
        for path, schema in zip(files[1:], schemas[1:]):
            parquet_text_column(schema, name, path)
        return ray.data.read_parquet(paths, num_cpus=READ_CPUS).select_columns([name])
    header = _csv_header(files[0])
    if not header:
        raise ValueError(f"{files[0]} is empty: expected a header row with a text or review column")
    name = header[find_text_column(header, text_column, files[0])]
    return ray.data.read_csv(
        paths,
        num_cpus=READ_CPUS,
        # A review may hold newlines inside quotes, and its column is text even when every value looks like a number.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()}),
    )


def _cause(error: BaseException) -> str:
    """One line for a worker's failure under Ray's wrappers: the innermost error with a message, and when that is
    Ray's report of a remote traceback, the traceback's last line ("module.SomeError: message") without its type."""
    seen = {id(error)}
    inner = getattr(error, "cause", None) or error.__cause__
    while isinstance(inner, BaseException) and id(inner) not in seen and str(inner).strip():
        seen.add(id(inner))
        error, inner = inner, getattr(inner, "cause", None) or inner.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = REMOTE_ERROR.match(lines[-1]) if len(lines) > 1 else None
    reason = last.group(1) if last else first_line(error)
    # A failed read names its file further down the message: put it first.
    fragment = FAILED_FILE.search(str(error))
    return f"{fragment.group(1)}: {reason}" if fragment and fragment.group(1) not in reason else reason


def _start(ray, address: str | None) -> bool:
    """Connect to address (or $RAY_ADDRESS), or start a local Ray for this job; True when this call started it."""
    if ray.is_initialized():
        return False
    # Ray's start-up notes and its workers' logs would bury the one line the command prints.
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        # The cluster's workers get this project's core package from the driver; its dependencies (onnxruntime,
        # NumPy, pyarrow) must be installed on them, and the model path must be readable on every worker.
        core = str(Path(__file__).resolve().parents[1])  # the core package (this is core/scoring/ray.py)
        ray.init(address=address, runtime_env={"py_modules": [core]}, **quiet)
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
    return True


def score_on_ray(
    model: str | Path,
    source: str | Path,
    out: str | Path,
    *,
    text_column: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Score --input (a file or folder) on Ray and write one Parquet file at out, rows in the input's order, each
    record as the local engine writes it; the file appears only when every batch is written. workers (default: the
    cluster's CPUs but one) Predictors run at once, one CPU each. A failed worker is one ValueError naming the input
    and the cause."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address and "ray" not in sys.modules:
        # Ray binds a local cluster to the machine's network address unless told it is not a cluster node: this keeps
        # the job's own servers on 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # The paths are checked before Ray is imported or started: a mistake there costs nothing.
    out = Path(out)
    if file_format(out, "output") != "parquet":
        raise ValueError(f"{out}: --engine ray writes Parquet; name a .parquet or .pq file")
    if out.is_dir():
        raise ValueError(f"{out} is a folder: give the path of the Parquet file to write")
    kind, files = input_files(source)
    model = Path(model).resolve()
    ray = import_ray()
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = _start(ray, address)
    try:
        context = ray.data.DataContext.get_current()
        # The output must be in the input's order: Ray Data then hands batches on in order, not as they finish.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # Ray Data logs a failed job's internal traceback itself; the one line the command prints says it instead.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = failed = 0
        try:
            with warnings.catch_warnings():
                # max_restarts is passed the only way this Ray release takes it, which it says is going away.
                warnings.simplefilter("ignore", DeprecationWarning)
                scored = _dataset(ray, kind, files, text_column).map_batches(
                    BatchScorer,
                    fn_constructor_args=(str(model),),
                    batch_size=CHUNK_ROWS,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=pool),
                    num_cpus=1,
                    # A worker that fails (no model file on its machine) fails the job: a restart would fail again.
                    max_restarts=0,
                )
            with (
                warnings.catch_warnings(),
                atomic_path(out) as temporary,
                pq.ParquetWriter(temporary, output_schema()) as writer,
            ):
                # Ray Data warns when a small input leaves some workers idle: not a problem of the job.
                warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
                for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
                    if not batch.num_rows:
                        continue
                    # The row numbers: 1-based over the input's rows in order, given here where the order is known.
                    numbers = pa.array(range(rows + 1, rows + batch.num_rows + 1), pa.int64())
                    batch = batch.set_column(0, "row", numbers).cast(output_schema())
                    writer.write_table(batch, row_group_size=ROW_GROUP_ROWS)
                    rows += batch.num_rows
                    failed += batch.num_rows - batch.column("error").null_count
                    if progress:
                        progress(rows)
                if rows == 0:
                    raise ValueError(f"{source} has no rows to classify")
        except Exception as error:
            # Ray wraps a worker's failure in its own exception types (some also subclass the cause's type).
            if isinstance(error, ValueError) and not isinstance(error, ray.exceptions.RayError):
                raise
            raise ValueError(f"scoring {source} on Ray failed: {_cause(error)}") from None
    finally:
        if started:
            ray.shutdown()
    return Written(rows, failed)
