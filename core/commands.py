"""One function per CLI command: takes the parsed arguments, calls into core, prints, returns the exit status.

Each function is thin (flags in, one call into core, lines out); the module is long because there are many commands
and each prints its own table or JSON, not because a command decides anything: the decisions live in core's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from core.config import ExperimentConfig, preset


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines hidden: they ignore TF_CPP_MIN_LOG_LEVEL and would bury ours."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def experiment_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The config a command's --preset or --config names; the seed when neither is given."""
    if getattr(args, "config", None):
        experiment = ExperimentConfig.from_file(args.config)
    else:
        experiment = preset(args.preset or "seed")
    distribution = getattr(args, "distribution", None)  # train's --distribution overrides the config's
    if distribution:
        experiment = replace(experiment, train=replace(experiment.train, distribution=distribution))
    return experiment


def summary(args: argparse.Namespace) -> int:
    from core.model import describe
    from core.runs import text_table

    description = describe(experiment_from_args(args).model)
    if args.json:
        print(json.dumps(description.to_dict()))
        return 0
    rows = [("Layer (type)", "Output shape", "Params", "Formula")]
    rows += [
        (f"{layer.name} ({layer.type})", str(layer.output_shape), f"{layer.params:,}", layer.formula)
        for layer in description.layers
    ]
    print(text_table(rows))
    print(f"Total params: {description.total_params:,} ({description.size_bytes / 1024:,.1f} KiB as float32)")
    return 0


class _ProgressLine:
    """The progress bar long commands draw on stderr (rich's: the share done, time spent and time left), only on a
    terminal: logs, CI and the dashboard's child process get the plain lines alone. One bar at a time; a bar of another
    kind (the next epoch, loading, rows) replaces it, and clear() erases it before a line is printed."""

    def __init__(self, stream, epochs: int) -> None:
        self.stream = stream
        self.epochs = epochs
        self.enabled = stream.isatty()
        self._progress = None  # rich.progress.Progress while a bar is shown
        self._task = None
        self._kind = None

    def _show(self, kind: str, description: str, completed: float, total: float | None) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
            from rich.progress import TimeRemainingColumn

            columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
            # Nothing redirected: with stdout piped to a file, rich would move what is printed meanwhile to stderr.
            self._progress = Progress(
                *columns,
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        if self._kind != kind:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(description, total=total)
            self._kind = kind
        self._progress.update(self._task, description=description, completed=completed, total=total)

    def batch(self, epoch: int, fraction: float) -> None:
        self._show(f"epoch {epoch}", f"epoch {epoch}/{self.epochs}", fraction, 1.0)

    def preparing(self) -> None:
        """Before the first batch: TensorFlow traces the step and, for a long training, compiles it (seconds)."""
        self._show("preparing", "tracing and compiling the step", 0, None)

    def loading(self, fraction: float, message: str) -> None:
        self._show("loading", f"loading data: {message}", fraction, 1.0)

    def rows(self, fraction: float, rows: int) -> None:
        self._show("rows", f"{rows:,} rows scored", fraction, 1.0)

    def clear(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = self._kind = None


def _training_callbacks(progress: _ProgressLine, epochs: list[int], fitting, cancel):
    """The callbacks of a CLI training: epoch lines on stdout, a progress bar on a terminal, progress.json in the
    run folder for a parent that follows it (the dashboard), and SIGTERM turned into Stop."""
    import time

    from core.training import ProgressFile, TrainingCallbacks

    progress_file = ProgressFile()
    epoch_started = [time.perf_counter()]

    def on_run_created(run_dir) -> None:
        print(f"run folder: {run_dir}", file=sys.stderr, flush=True)
        progress_file.run_created(run_dir)
        progress.preparing()
        fitting.set()
        epoch_started[0] = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict) -> None:
        progress.clear()
        progress_file.epoch_end(epoch)
        now = time.perf_counter()
        measured = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
        print(f"epoch {epoch}/{epochs[0]}  {measured}  {now - epoch_started[0]:.1f} s", flush=True)
        epoch_started[0] = now

    def on_batch_end(epoch: int, fraction: float) -> None:
        progress.batch(epoch, fraction)
        progress_file.batch(epoch, fraction)

    return TrainingCallbacks(
        on_run_created=on_run_created, on_epoch_end=on_epoch_end, on_batch_end=on_batch_end, cancel=cancel
    )


def _resume(args: argparse.Namespace, progress: _ProgressLine, fitting, cancel) -> object:
    from core.training import resume
    from core.runs import read_run

    settings = ("preset", "config", "data", "epochs", "limit", "runs")
    given = [flag for flag in settings if getattr(args, flag) is not None]
    if given:
        raise ValueError(
            f"--resume goes on with the run's own config and data; drop --{', --'.join(given)}"
        )
    epochs = [0]
    callbacks = _training_callbacks(progress, epochs, fitting, cancel)
    run = read_run(args.resume) if Path(args.resume).is_dir() else None
    epochs[0] = progress.epochs = (run.epochs_planned or 0) if run else 0
    _import_tensorflow_quietly()
    def data_line(line: str) -> None:
        progress.clear()
        print(line)

    return resume(args.resume, callbacks, on_loading=progress.loading, on_data=data_line)


def train(args: argparse.Namespace) -> int:
    import threading

    from core.training import outcome_lines, prepare_training, stop_on_terminate, train as train_model

    progress = _ProgressLine(sys.stderr, 0)
    fitting = threading.Event()  # set once the run folder exists: SIGTERM then stops it instead of interrupting
    cancel = threading.Event()
    with stop_on_terminate(cancel, fitting):
        if args.resume:
            run = _resume(args, progress, fitting, cancel)
        else:
            setup = prepare_training(
                experiment_from_args(args),
                epochs=args.epochs,
                limit=args.limit,
                data=args.data,
                runs_folder=args.runs,
                on_loading=progress.loading,
                before_tensorflow=_import_tensorflow_quietly,
            )
            epochs = [setup.train_config.epochs]
            progress.epochs = epochs[0]
            callbacks = _training_callbacks(progress, epochs, fitting, cancel)
            progress.clear()
            _import_tensorflow_quietly()
            print(setup.data_line)
            run = train_model(
                setup.model_config, setup.train_config, setup.dataset, callbacks, store=setup.store, limit=setup.limit
            )
    progress.clear()
    for line in outcome_lines(run):
        print(line)
    if run.partial:
        print(run.partial)
    print(f"status: {run.status}")
    print(run.path)
    return 0


def _print_evaluation(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        print(f"accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}  on {result['n']:,} test reviews")


def _optional(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _print_report(report, scored_with: str, as_json: bool, threshold_given: bool) -> None:
    """The full report: one JSON object, or the counts, the curves' summaries and a table of metrics by threshold."""
    from core.evaluation import thresholds_by_role

    if as_json:
        print(json.dumps({**report.to_dict(), "scored_with": scored_with}))
        return
    print(f"scored with {scored_with}")
    print(
        f"{report.n:,} test reviews: {report.positives:,} positive, {report.negatives:,} negative; "
        f"loss {report.loss:.4f}"
    )
    print(f"ROC AUC {_optional(report.roc_auc)}  average precision {_optional(report.average_precision)}")
    rows = [("threshold", "accuracy", "precision", "recall", "F1", "TP", "FP", "TN", "FN")]
    for metrics, names in thresholds_by_role(report, threshold_given):
        rows.append(
            (
                f"{metrics.threshold:g} ({', '.join(names)})",
                *(f"{value:.4f}" for value in (metrics.accuracy, metrics.precision, metrics.recall, metrics.f1)),
                *(f"{value:,}" for value in (metrics.tp, metrics.fp, metrics.tn, metrics.fn)),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for index, row in enumerate(rows):
        line = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        print("  ".join(line))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import EvaluationCallbacks, evaluate as evaluate_model

    result = evaluate_model(
        args.run_dir,
        args.model,
        data=args.data,
        threshold=args.threshold,
        write_threshold=args.write_threshold,
        report=args.report,
        callbacks=EvaluationCallbacks(on_note=_note, before_tensorflow=_import_tensorflow_quietly),
    )
    if result.summary is None:
        print(json.dumps(result.written.to_dict()) if args.json else result.written.message)
    elif args.report:
        _print_report(result.report, result.scored_with, args.json, args.threshold is not None)
    else:
        _print_evaluation(result.summary, args.json)
    return 0


def _note(text: str) -> None:
    """A line for people beside the output (a note, a step): standard error, so standard output stays parseable."""
    print(text, file=sys.stderr, flush=True)


def runs(args: argparse.Namespace) -> int:
    from core.runs import listed_runs, run_record, runs_table

    root, found = listed_runs(args.runs)
    if args.json:
        for run in found:
            print(json.dumps(run_record(run)))
    elif not found:
        print(f"no runs in {root}")
    else:
        print(runs_table(found))
    return 0


def export(args: argparse.Namespace) -> int:
    from core.export import export_run

    if args.web:
        from core.export import check_web_folder, runtime_folder

        runtime_folder()  # a missing runtime or a folder in use says so now, not after the export
        check_web_folder(Path(args.web))
    if Path(args.run_dir).is_dir():
        _import_tensorflow_quietly()
    # Each stage on stderr as it starts: loading TensorFlow, reading reviews and the parity check take seconds each.
    result = export_run(
        args.run_dir, args.out, trajectory=args.trajectory, on_stage=lambda text: _note(f"export: {text}...")
    )
    native = ", ".join(f"{count} {op}" for op, count in result.recurrent_layers.items())
    print(f"recurrent ops: {native}; nodes: {sum(result.op_counts.values())}")
    print(f"parity: max |Keras - onnxruntime| = {result.parity_max_abs_diff:.2e} on {result.parity_inputs}")
    if result.trajectory_max_abs_diff is not None:
        print(f"step_probability parity: {result.trajectory_max_abs_diff:.2e}")
    print(f"size: {result.size_bytes / 1024:,.1f} KiB; took {result.seconds:.1f} s")
    if result.text_path is not None:
        print(
            f"text file (raw reviews in): {result.text_path}, {result.text_size_bytes / 1024:,.1f} KiB, "
            f"max |text - ids file| = {result.text_max_abs_diff:.2e}"
        )
    quantized = None
    if args.quantize:
        from core.evaluation import quantize_export

        quantized = _print_int8(quantize_export(args.run_dir, result.path, on_line=print, on_step=_note, on_note=_note))
    if args.web:
        _print_web_page(result.path, args.web)
    print(result.path)
    if quantized is not None:
        print(quantized)
    return 0


def _print_int8(measured) -> Path:
    """The comparison table of a float file and its int8 copy (what was quantized is printed as it happens)."""
    print(measured.comparison.table())
    if measured.missing:
        print(f"test accuracy not measured: {measured.missing}")
    return measured.path


def text_file(args: argparse.Namespace) -> int:
    from core.export import write_text_file
    from core.scoring import model_path

    result = write_text_file(model_path(args.model), args.out)
    print(
        f"checked on {result.checked} reviews: ids as core.data.text makes them, max |text - ids file| = "
        f"{result.max_abs_diff:.2e}; size: {result.size_bytes / 1024:,.1f} KiB; took {result.seconds:.1f} s"
    )
    print(result.path)
    return 0


def _print_web_page(model: Path, out: str) -> Path:
    from core.export import write_web_page

    page = write_web_page(model, out)
    print(
        f"web page: {page.folder}, {page.size_bytes / 2**20:,.1f} MiB ({page.model_bytes / 2**20:,.1f} MiB model, "
        f"onnxruntime-web {page.runtime_version}); serve the folder (python -m http.server -d {page.folder}) and "
        "open it"
    )
    return page.folder


def web_page(args: argparse.Namespace) -> int:
    from core.scoring import model_path

    print(_print_web_page(model_path(args.model), args.out))
    return 0


def quantize(args: argparse.Namespace) -> int:
    from core.evaluation import quantize_model

    measured = quantize_model(args.model, args.out, args.data, on_line=print, on_step=_note, on_note=_note)
    print(_print_int8(measured))
    return 0


def _predict_table(args: argparse.Namespace) -> int:
    """predict --input FILE [--out FILE] [--engine ray]: a CSV or Parquet file in, scores out by --out's extension."""
    from core.scoring import Predictor, Written, file_format, json_line, model_path, predict_table, write_predictions

    if args.engine == "ray":
        from core.scoring import score_on_ray

        if args.out is None:
            raise ValueError("--engine ray writes a Parquet file: give it with --out FILE.parquet")
        import contextlib

        # Ray prints its own system messages (a worker that died and was replaced) on the driver's stdout, where the
        # command prints only the output's path: they go to stderr with the other notes.
        with contextlib.redirect_stdout(sys.stderr):
            written = score_on_ray(
                model_path(args.model), args.input, args.out, text_column=args.text_column, address=args.address
            )
    else:
        source = Path(args.input)
        if source.is_dir():
            raise ValueError(f"{source} is a folder: the local engine reads one file (--engine ray reads folders)")
        file_format(source)
        if not source.is_file():
            raise ValueError(f"no input file at {source}")
        if args.out is not None:
            file_format(args.out, "output")
        predictor = Predictor.from_file(model_path(args.model))
        # Rows done on a terminal's stderr, the bar erased before the last lines: stdout holds the records alone.
        progress = _ProgressLine(sys.stderr, 0)
        progress.enabled = progress.enabled and (args.out is not None or not sys.stdout.isatty())  # else lines show it
        results = predict_table(predictor, source, text_column=args.text_column, progress=progress.rows)
        try:
            if args.out is not None:
                written = write_predictions(results, args.out, predictor.metadata.labels, source)
            else:
                rows = failed = 0
                for result in results:
                    rows, failed = rows + 1, failed + (result.prediction is None)
                    sys.stdout.write(json_line(result.to_dict()))
                if rows == 0:
                    raise ValueError(f"{source} has a header but no rows to classify")
                written = Written(rows, failed)
        finally:
            progress.clear()
    if written.failed:
        print(f"{written.failed:,} of {written.rows:,} rows had no review text (an error each)", file=sys.stderr)
    if args.out is not None:
        print(args.out)
    return 0


def predict(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from core.atomic import atomic_path
    from core.scoring import Predictor, json_line, model_path, predict_csv

    if args.input and (args.csv or args.texts):
        raise ValueError("give review texts, --csv FILE or --input FILE, one of them")
    if args.engine != "local" and not args.input:
        raise ValueError("--engine ray scores a file or folder: give it with --input")
    if args.address and args.engine != "ray":
        raise ValueError("--address only applies with --engine ray")
    if args.input:
        return _predict_table(args)
    if args.csv and args.texts:
        raise ValueError("give review texts or --csv FILE, not both")
    if not args.csv and not args.texts:
        raise ValueError("give at least one review to classify, --csv FILE or --input FILE")
    if args.text_column and not args.csv:
        raise ValueError("--text-column only applies with --csv FILE or --input FILE")
    if args.csv and Path(args.csv).is_dir():
        raise ValueError(f"{args.csv} is a folder, not a CSV file")
    if args.csv and not Path(args.csv).is_file():
        raise ValueError(f"no CSV file at {args.csv}")
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise ValueError(f"{out} is a folder: give the path of the file to write, such as {out / 'predictions.jsonl'}")
    predictor = Predictor.from_file(model_path(args.model))
    # Text arguments are classified before --out is opened, so an empty review leaves no file behind.
    lines = [json_line(item.to_dict()) for item in predictor.predict(args.texts)] if args.texts else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    failed = rows = 0
    # --out is written to a temporary file renamed into place at the end: a failure leaves no half-written file.
    with atomic_path(out) if out is not None else nullcontext() as temporary:
        stream = open(temporary, "w", encoding="utf-8") if temporary is not None else sys.stdout
        try:
            if lines is not None:
                stream.writelines(lines)
            else:
                for result in predict_csv(predictor, args.csv, text_column=args.text_column):
                    rows += 1
                    if result.prediction is None:
                        failed += 1
                    stream.write(json_line(result.to_dict()))
                if rows == 0:
                    raise ValueError(f"{args.csv} has a header but no rows to classify")
        finally:
            if temporary is not None:
                stream.close()
    if failed:
        print(f"{failed:,} of {rows:,} rows had no review text (an \"error\" line each)", file=sys.stderr)
    if out is not None:
        print(out)
    return 0


def bench(args: argparse.Namespace) -> int:
    from core.evaluation import run_bench
    from core.scoring import model_path

    path = model_path(args.model)
    if path.is_file():
        _import_tensorflow_quietly()
    result = run_bench(path, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(result.to_dict()) if args.json else result.table())
    return 0


def _serve_in_its_environment(args: argparse.Namespace, python: Path) -> None:
    """Become the same command run by the API's own environment's Python (MLServer is not in this one): exec, so that
    signals (Ctrl+C, a container's stop) and the exit status are the server's own."""
    from core.paths import PROJECT_ROOT

    argv = [str(python), "-m", "core", "serve", *([args.model] if args.model else [])]
    argv += ["--host", args.host, "--port", str(args.port), *(["--name", args.name] if args.name else [])]
    argv += ["--max-rows", str(args.max_rows)] if args.max_rows else []
    argv += ["--max-batch-size", str(args.max_batch_size), "--max-batch-time", str(args.max_batch_time)]
    root = str(PROJECT_ROOT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # noqa: S606 - our own environment's Python and the user's own arguments


def serve(args: argparse.Namespace) -> int:
    from core.scoring import model_path
    from core.serving import Limits, ServeOptions, model_name, serving_python
    from core.serving import serve as serve_file

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be from 1 to 65535, got {args.port}")
    if args.max_rows is not None and args.max_rows < 1:
        raise ValueError(f"--max-rows must be at least 1, got {args.max_rows}")
    if args.max_batch_size < 0 or args.max_batch_time < 0:
        raise ValueError("--max-batch-size and --max-batch-time cannot be negative")
    path = model_path(args.model)
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    name = model_name(path, args.name or "")
    python = serving_python()
    if python is not None:
        _serve_in_its_environment(args, python)
    limits = Limits(**({"rows": args.max_rows} if args.max_rows else {}))
    options = ServeOptions(args.host, args.port, name, limits, args.max_batch_size, args.max_batch_time)
    serve_file(path, options, started=lambda url: print(
        f"serving {path} at {url} (Open Inference Protocol; Ctrl+C stops)", file=sys.stderr, flush=True
    ))
    return 0


def compare(args: argparse.Namespace) -> int:
    import logging
    import time

    from core.evaluation import CompareCallbacks, plan_comparison
    from core.training import TrainingCallbacks

    plan = plan_comparison(
        args.presets, args.run, data=args.data, epochs=args.epochs, limit=args.limit, runs_folder=args.runs
    )
    epochs = plan.epochs_each
    progress = _ProgressLine(sys.stderr, epochs)
    epoch_started = [time.perf_counter()]

    def on_step(message: str) -> None:
        progress.clear()
        print(message, file=sys.stderr, flush=True)

    def on_run_created(run_dir) -> None:
        print(f"  run folder: {run_dir}", file=sys.stderr, flush=True)
        epoch_started[0] = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict) -> None:
        progress.clear()
        now = time.perf_counter()
        measured = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
        print(f"  epoch {epoch}/{epochs}  {measured}  {now - epoch_started[0]:.1f} s", file=sys.stderr, flush=True)
        epoch_started[0] = now

    training = TrainingCallbacks(on_run_created=on_run_created, on_epoch_end=on_epoch_end, on_batch_end=progress.batch)
    _import_tensorflow_quietly()  # training and export need it
    # Each export's parity check makes a new Keras predict function, and TensorFlow warns about the retracing each time.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    comparison = plan.run(CompareCallbacks(on_step=on_step, training=training))
    progress.clear()
    if args.json:
        print(json.dumps(comparison.to_dict()))
        print(f"saved: {plan.folder / 'compare.json'}", file=sys.stderr)
        return 0
    print(comparison.table())
    print(plan.folder / "compare.json")
    return 0
