"""The command line, `python -m core ...`: parses flags, calls into core, prints; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import os
import sys

from core.config import DISTRIBUTIONS, PRESETS
from core.errors import user_message

MODEL_HELP = "an exported .onnx file (default: the shipped model, models/imdb_simplernn.onnx)"
WEB_HELP = (
    "also write the static web page into the folder DIR (new, empty or a page written before): index.html, the text "
    "file and onnxruntime-web, for any static host; needs `make web`"
)
RUNS_HELP = "the runs folder (default: $IMDB_RUNS, else runs/ in the project folder)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line (with the command's name) and exit status 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog.removeprefix('python -m ')}: {message} (see --help)\n")


def _given(value: str) -> str:
    """A path or name the user typed: an empty one is a mistake, not a request for the default."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty")
    return value


def _output_file(value: str) -> str:
    """A file to write: a trailing slash means a folder, which pathlib would silently turn into a file name."""
    value = _given(value)
    if value.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{value} names a folder: give the path of the file to write")
    return value


def _threshold(value: str) -> float:
    """A threshold strictly between 0 and 1."""
    from core.export import check_threshold

    try:
        return check_threshold(value.strip(), "T")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_model_choice(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", type=_given, help=f"a named architecture (default seed): {', '.join(PRESETS)}")
    group.add_argument(
        "--config", type=_given, metavar="FILE", help='a JSON config file: {"model": {...}, "train": {...}}'
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m core",
        description="Train, inspect, export and run the recurrent IMDB sentiment classifier of DLwP 6.2.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    summary = commands.add_parser("summary", help="print a model's layers, shapes and parameter counts")
    _add_model_choice(summary)
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    train = commands.add_parser("train", help="train a model on IMDB reviews and save a run folder")
    _add_model_choice(train)
    train.add_argument(
        "--data", type=_given, metavar="PATH",
        help="aclImdb folder or .tar.gz, or a CSV; default: $IMDB_DATA, else Keras's imdb.npz",
    )
    train.add_argument("--epochs", type=int, metavar="N", help="override the config's number of epochs")
    train.add_argument("--limit", type=int, metavar="N", help="train on the first N training reviews (fixed shuffle)")
    train.add_argument("--runs", type=_given, metavar="DIR", help=RUNS_HELP)
    train.add_argument(
        "--resume", type=_given, metavar="RUN_DIR",
        help="go on with an interrupted or stopped run from its last finished epoch, with its own config and data",
    )
    train.add_argument(
        "--distribution", choices=DISTRIBUTIONS, help="override the config's: mirrored (this machine's devices) or "
        "multi-worker (one process per host, configured by TF_CONFIG); see the README's More than one machine",
    )

    evaluate = commands.add_parser(
        "evaluate", help="accuracy and loss on the test split; --report for precision, recall, F1, ROC and PR"
    )
    evaluate.add_argument(
        "run_dir", nargs="?", type=_given, metavar="RUN_DIR", help="a run folder (default: the model given by --model)"
    )
    evaluate.add_argument(
        "--model", type=_given, metavar="FILE", help=f"{MODEL_HELP} instead of a run folder"
    )
    evaluate.add_argument(
        "--data", type=_given, metavar="PATH", help="the reviews (default: the run's own data, else $IMDB_DATA)"
    )
    evaluate.add_argument(
        "--json", action="store_true", help='print {"accuracy", "loss", "n"}; with --report, the whole report'
    )
    evaluate.add_argument(
        "--report", action="store_true",
        help="also precision, recall, F1, confusion counts, ROC AUC and average precision (a run's model.onnx "
        "when it has one)",
    )
    evaluate.add_argument(
        "--threshold", type=_threshold, metavar="T", help="label positive at score >= T instead of the file's threshold"
    )
    evaluate.add_argument(
        "--write-threshold", type=_threshold, metavar="T",
        help="store T as the threshold of --model FILE or of the run's model.onnx (predict and the dashboard use it)",
    )

    export = commands.add_parser("export", help="export a run to one self-describing .onnx file")
    export.add_argument("run_dir", type=_given, metavar="RUN_DIR", help="the run folder to export")
    export.add_argument(
        "--out", type=_output_file, metavar="FILE", help="where to write the .onnx file (default: RUN_DIR/model.onnx)"
    )
    export.add_argument("--trajectory", action="store_true", help="add a step_probability output for every token")
    export.add_argument(
        "--quantize", choices=["int8"],
        help="also write an int8 copy beside the file (model.int8.onnx) and compare the two",
    )
    export.add_argument("--web", type=_given, metavar="DIR", help=WEB_HELP)

    quantize = commands.add_parser(
        "quantize", help="write an int8 copy of an exported .onnx file and compare it with the float file"
    )
    quantize.add_argument("--model", type=_given, metavar="FILE", help=MODEL_HELP)
    quantize.add_argument(
        "--out", type=_output_file, metavar="FILE", help="where to write the int8 file (default: <model>.int8.onnx)"
    )
    quantize.add_argument(
        "--data", type=_given, metavar="PATH",
        help="the reviews whose test split measures accuracy (default: $IMDB_DATA; without one, size and speed only)",
    )

    text_file = commands.add_parser(
        "text-file", help="write the copy of an exported .onnx file that reads raw reviews (export writes one too)"
    )
    text_file.add_argument("--model", type=_given, metavar="FILE", help=MODEL_HELP)
    text_file.add_argument(
        "--out", type=_output_file, metavar="FILE", help="where to write it (default: <model>.text.onnx, beside it)"
    )

    web_page = commands.add_parser(
        "web-page", help="write a static web page that classifies reviews in the visitor's browser (no server)"
    )
    web_page.add_argument("--model", type=_given, metavar="FILE", help=MODEL_HELP)
    web_page.add_argument("--out", type=_given, metavar="DIR", required=True, help=WEB_HELP)

    predict = commands.add_parser("predict", help="classify reviews with an exported .onnx file (JSON lines out)")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="reviews to classify")
    predict.add_argument("--model", type=_given, metavar="FILE", help=MODEL_HELP)
    predict.add_argument("--csv", type=_given, metavar="FILE", help="classify the reviews of a CSV file instead")
    predict.add_argument(
        "--input", type=_given, metavar="FILE",
        help="classify the reviews of a CSV or Parquet file (.csv, .parquet, .pq; with --engine ray, a folder of them)",
    )
    predict.add_argument(
        "--text-column", type=_given, metavar="NAME",
        help="the column with the reviews (default: text or review)",
    )
    predict.add_argument(
        "--out", type=_output_file, metavar="FILE",
        help="write the JSON lines to this file instead of standard output; with --input, a .csv, .parquet, .pq or "
        ".jsonl file, by its extension",
    )
    predict.add_argument(
        "--engine", choices=["local", "ray"], default="local",
        help='score --input here (local, the default) or as a Ray Data job (ray: pip install "ray[data]"), '
        "written to --out as one Parquet file",
    )
    predict.add_argument(
        "--address", type=_given, metavar="ADDRESS",
        help="with --engine ray, the Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray for the job)",
    )

    bench = commands.add_parser("bench", help="measure single-review latency and batch throughput")
    bench.add_argument("--model", type=_given, metavar="FILE", help=MODEL_HELP)
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    serve = commands.add_parser(
        "serve", help="serve an exported file over HTTP: the Open Inference Protocol (KServe V2), through MLServer"
    )
    serve.add_argument("model", nargs="?", type=_given, metavar="MODEL", help=MODEL_HELP)
    serve.add_argument(
        "--host", type=_given, default="127.0.0.1", help="the address to listen on (default 127.0.0.1, this machine "
        "only; 0.0.0.0 for the network)",
    )
    serve.add_argument("--port", type=int, default=8080, help="the HTTP port (default 8080)")
    serve.add_argument("--name", type=_given, help="the model's name in the URLs (default: the file's name)")
    serve.add_argument("--max-rows", type=int, metavar="N", help="reviews a request may hold (default 256)")
    serve.add_argument(
        "--max-batch-size", type=int, default=0, metavar="N",
        help="server batching: run requests that arrive together as one batch of up to N rows (default 0: off)",
    )
    serve.add_argument(
        "--max-batch-time", type=float, default=0.0, metavar="SECONDS",
        help="server batching: how long a request may wait for others to join its batch (default 0)",
    )

    runs = commands.add_parser("runs", help="list the saved runs")
    runs.add_argument("--runs", type=_given, metavar="DIR", help=RUNS_HELP)
    runs.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    compare = commands.add_parser(
        "compare", help="train presets on the same data and budget (or take finished runs) and compare them"
    )
    chosen = compare.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--presets", type=_given, metavar="NAMES",
        help="comma-separated presets to train one after another, such as seed,book-lstm,book-gru",
    )
    chosen.add_argument(
        "--run", type=_given, action="append", metavar="RUN_DIR", help="a finished run to compare (repeat it); no training"
    )
    compare.add_argument(
        "--data", type=_given, metavar="PATH",
        help="aclImdb folder or .tar.gz, or a CSV; default: $IMDB_DATA, else Keras's imdb.npz",
    )
    compare.add_argument("--epochs", type=int, metavar="N", help="override every preset's number of epochs")
    compare.add_argument("--limit", type=int, metavar="N", help="train on the first N training reviews (fixed shuffle)")
    compare.add_argument("--runs", type=_given, metavar="DIR", help=RUNS_HELP + "; compare.json is written there")
    compare.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ log lines up to errors: its start-up lines are silenced where commands import it, and XLA's
    # compilation cache logs a protobuf parse error at every hit (TensorFlow 2.21 tries each entry as text before
    # reading it as the binary it is), a screenful a training. Failures still reach us as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # a bad flag (2) or --help (0): argparse has printed what to say
        return stop.code if isinstance(stop.code, int) else 2
    from core import commands

    try:
        return getattr(commands, args.command.replace("-", "_"))(args) or 0
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours. Point stdout at devnull so exit does not flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
