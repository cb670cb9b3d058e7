"""The command line, `python -m core ...`: parses flags, calls into core, prints; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line (with the command's name) and exit status 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog.removeprefix('python -m ')}: {message} (see --help)\n")


def _add_model_choice(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", help="a named architecture: seed, seed-rnn, seed-stacked, book-lstm, book-gru, ...")
    group.add_argument("--config", metavar="FILE", help="a JSON config file: {\"model\": {...}, \"train\": {...}}")


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
    train.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz, or a CSV; default: $IMDB_DATA, else Keras's imdb.npz")
    train.add_argument("--epochs", type=int, help="override the config's number of epochs")
    train.add_argument("--limit", type=int, metavar="N", help="train on the first N training reviews after a fixed shuffle")
    train.add_argument("--runs", metavar="DIR", help="where run folders go (default: $IMDB_RUNS, else ./runs)")

    evaluate = commands.add_parser("evaluate", help="accuracy and loss on the test split")
    evaluate.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (or use --model)")
    evaluate.add_argument("--model", metavar="FILE", help="an exported .onnx file instead of a run folder")
    evaluate.add_argument("--data", metavar="PATH", help="where the reviews are (default: the run's source, $IMDB_DATA)")
    evaluate.add_argument("--json", action="store_true", help='print {"accuracy", "loss", "n"}')

    export = commands.add_parser("export", help="export a run to one self-describing .onnx file")
    export.add_argument("run_dir", metavar="RUN_DIR", help="the run folder to export")
    export.add_argument("--out", metavar="FILE", help="where to write the .onnx file (default: RUN_DIR/model.onnx)")
    export.add_argument("--trajectory", action="store_true", help="add a step_probability output for every token")

    predict = commands.add_parser("predict", help="classify reviews with an exported .onnx file (JSON lines out)")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="reviews to classify")
    predict.add_argument("--model", metavar="FILE", help="an exported .onnx file (default: the shipped model)")
    predict.add_argument("--csv", metavar="FILE", help="classify the reviews of a CSV file instead")
    predict.add_argument("--text-column", metavar="NAME", help="the CSV column with the reviews (default: text or review)")
    predict.add_argument("--out", metavar="FILE", help="write the JSON lines here instead of standard output")

    bench = commands.add_parser("bench", help="measure single-review latency and batch throughput")
    bench.add_argument("--model", metavar="FILE", help="an exported .onnx file (default: the shipped model)")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    runs = commands.add_parser("runs", help="list the saved runs")
    runs.add_argument("--runs", metavar="DIR", help="the runs folder (default: $IMDB_RUNS, else ./runs)")
    runs.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core import commands

    try:
        return getattr(commands, args.command.replace("-", "_"))(args) or 0
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours. Point stdout at devnull so exit does not flush into it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
