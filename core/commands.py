"""One function per CLI command: takes the parsed arguments, calls into core, prints, returns the exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.config import ExperimentConfig, preset
from core.errors import first_line

# What evaluate says when the data's ids can only be translated word by word into the model's vocabulary.
MAPPED_NOTE = (
    "note: Keras's imdb.npz has no raw text to encode with the model's vocabulary; its ids are mapped word by word, "
    "so words its own vocabulary lacks count as unknown"
)


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
        return ExperimentConfig.from_file(args.config)
    return preset(args.preset or "seed")


def summary(args: argparse.Namespace) -> int:
    from core.model import describe

    description = describe(experiment_from_args(args).model)
    if args.json:
        print(json.dumps(description.to_dict()))
        return 0
    rows = [("Layer (type)", "Output shape", "Params", "Formula")]
    rows += [
        (f"{layer.name} ({layer.type})", str(layer.output_shape), f"{layer.params:,}", layer.formula)
        for layer in description.layers
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"Total params: {description.total_params:,} ({description.size_bytes / 1024:,.1f} KiB as float32)")
    return 0


class _ProgressLine:
    """The one-line progress bar `train` redraws on stderr (only on a terminal: logs get the epoch lines alone)."""

    def __init__(self, stream, epochs: int) -> None:
        self.stream = stream
        self.epochs = epochs
        self.enabled = stream.isatty()
        self.drawn_at = 0.0

    def draw(self, text: str, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if not self.enabled or (not force and now - self.drawn_at < 0.1):
            return
        self.drawn_at = now
        self.stream.write("\r" + text[:100].ljust(100))
        self.stream.flush()

    def batch(self, epoch: int, fraction: float) -> None:
        filled = int(fraction * 30)
        self.draw(f"epoch {epoch}/{self.epochs} [{'=' * filled}{'.' * (30 - filled)}] {fraction:4.0%}")

    def loading(self, fraction: float, message: str) -> None:
        self.draw(f"loading data {fraction:4.0%} {message}")

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def train(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from core.data import load_dataset
    from core.paths import data_source
    from core.runs import RunStore
    from core.train import TrainingCallbacks
    from core.train import train as train_model

    experiment = experiment_from_args(args)
    train_config = experiment.train
    if args.epochs is not None:
        # TrainConfig validates it again: --epochs 0 fails with the field's own message.
        train_config = dataclasses.replace(train_config, epochs=args.epochs)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of reviews, got {args.limit}")
    if not experiment.model.is_classifier:
        raise ValueError("this model has no classifier on top (a seed-rnn or seed-stacked cell); it cannot be trained")
    store = RunStore(args.runs)
    # Both before the data, which can take half a minute to load the first time; train() takes the lock for real.
    with store.training_lock():
        pass
    progress = _ProgressLine(sys.stderr, train_config.epochs)
    source = args.data or data_source()
    if source is None:
        _import_tensorflow_quietly()  # Keras's imdb.npz is read through Keras
    dataset = load_dataset(source, num_words=experiment.model.vocabulary_size, progress=progress.loading)
    progress.clear()
    _import_tensorflow_quietly()
    used = ""
    if args.limit is not None and args.limit < len(dataset.train):
        used = f" (--limit: the first {args.limit:,} used)"
    print(f"data: {dataset.source}: {len(dataset.train):,} training{used} and {len(dataset.test):,} test reviews")
    epoch_started = [time.perf_counter()]

    def on_run_created(run_dir) -> None:
        print(f"run folder: {run_dir}", file=sys.stderr)
        epoch_started[0] = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict) -> None:
        progress.clear()
        now = time.perf_counter()
        measured = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
        print(f"epoch {epoch}/{train_config.epochs}  {measured}  {now - epoch_started[0]:.1f} s", flush=True)
        epoch_started[0] = now

    callbacks = TrainingCallbacks(on_run_created=on_run_created, on_epoch_end=on_epoch_end, on_batch_end=progress.batch)
    run = train_model(experiment.model, train_config, dataset, callbacks, store=store, limit=args.limit)
    progress.clear()
    metrics = run.metrics or {}
    if metrics.get("best_epoch"):
        print(
            f"best epoch {metrics['best_epoch']}: val_loss {metrics['best_val_loss']:.4f}, "
            f"val_accuracy {metrics['best_val_accuracy']:.4f}"
        )
    if metrics.get("test_accuracy") is not None:
        print(
            f"test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
            f"on {metrics['test_n']:,} reviews; fit took {metrics['train_seconds']:.0f} s"
        )
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
    if as_json:
        print(json.dumps({**report.to_dict(), "scored_with": scored_with}))
        return
    print(f"scored with {scored_with}")
    print(
        f"{report.n:,} test reviews: {report.positives:,} positive, {report.negatives:,} negative; "
        f"loss {report.loss:.4f}"
    )
    print(f"ROC AUC {_optional(report.roc_auc)}  average precision {_optional(report.average_precision)}")
    # One row a distinct threshold, named by every role it plays.
    named: dict[float, list[str]] = {}
    roles = [(report.at_file_threshold, "the file's"), (report.at_default_threshold, "default")]
    if threshold_given:
        roles.insert(0, (report.at_threshold, "--threshold"))
    metrics_by_threshold = {}
    for metrics, role in roles:
        named.setdefault(metrics.threshold, []).append(role)
        metrics_by_threshold[metrics.threshold] = metrics
    rows = [("threshold", "accuracy", "precision", "recall", "F1", "TP", "FP", "TN", "FN")]
    for threshold, names in named.items():
        metrics = metrics_by_threshold[threshold]
        rows.append(
            (
                f"{threshold:g} ({', '.join(names)})",
                *(f"{value:.4f}" for value in (metrics.accuracy, metrics.precision, metrics.recall, metrics.f1)),
                *(f"{value:,}" for value in (metrics.tp, metrics.fp, metrics.tn, metrics.fn)),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _keras_scores(run, split):
    """The positive probability of every review of split through the run's Keras model."""
    _import_tensorflow_quietly()
    from core.train import load_run_model, training_arrays

    model = load_run_model(run)
    ids, _ = training_arrays(run.config.model, split)
    return model.predict(ids, batch_size=run.config.train.batch_size, verbose=0).reshape(-1)


def evaluate(args: argparse.Namespace) -> int:
    from core.data import load_dataset, split_for_vocabulary
    from core.paths import data_source

    if args.model and args.run_dir:
        raise ValueError("give a run folder or --model FILE.onnx, not both")
    if args.threshold is not None and args.write_threshold is not None:
        raise ValueError("give --threshold or --write-threshold, not both: a written threshold is the one evaluated")
    if args.write_threshold is not None and not (args.model or args.run_dir):
        raise ValueError(
            "--write-threshold needs the file to change: --model FILE.onnx or a run folder with a model.onnx "
            "(the shipped model is not changed in place)"
        )
    # Scores are needed for the report and for any threshold but the model's own.
    scored = args.report or args.threshold is not None
    run = onnx_file = None
    if args.run_dir:
        from core.runs import RunStore

        if args.run_dir.endswith(".onnx") and Path(args.run_dir).is_file():
            raise ValueError(f"{args.run_dir} is an exported model, not a run folder: use --model {args.run_dir}")
        run = RunStore().load(args.run_dir)
        exported = run.path / "model.onnx"
        if args.write_threshold is not None and not exported.is_file():
            raise ValueError(
                f"run {run.run_id} has no model.onnx to write the threshold into: "
                f"export it first with python -m core export {args.run_dir}"
            )
        # A report uses the run's exported file when there is one; plain accuracy and loss stay Keras's, as trained.
        if exported.is_file() and (scored or args.write_threshold is not None):
            onnx_file = exported
    else:
        # Neither a run nor --model: the model shipped with the project.
        from core.inference import model_path

        onnx_file = model_path(args.model)
    if args.write_threshold is not None:
        from core.model_file import write_threshold

        previous = write_threshold(onnx_file, args.write_threshold)
        message = f"threshold {args.write_threshold:g} (was {previous:g}) written to {onnx_file}"
        if not args.report:
            written = {"path": str(onnx_file), "threshold": args.write_threshold, "previous_threshold": previous}
            print(json.dumps(written) if args.json else message)
            return 0
        # The report follows on standard output, evaluated at the threshold just written.
        print(message, file=sys.stderr)
    if onnx_file is not None:
        from core.inference import Predictor

        predictor = Predictor.from_file(onnx_file)
        vocabulary = predictor.vocabulary
    else:
        from core.runs import read_vocabulary

        if run.config is None or not run.has_model:
            raise ValueError(f"run {run.run_id} cannot be evaluated: {run.broken or 'it has no model.keras'}")
        vocabulary = read_vocabulary(run.path)
    # The run remembers where its reviews came from; --data overrides it, IMDB_DATA stands in when it has none.
    source = args.data or (run.data.get("path") if run is not None else None) or data_source()
    if source is None:
        _import_tensorflow_quietly()  # Keras's imdb.npz is read through Keras
    dataset = load_dataset(source, num_words=vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, vocabulary)
    if not exact:
        print(MAPPED_NOTE, file=sys.stderr)
    if not scored:
        if onnx_file is not None:
            result = predictor.evaluate(split)
        else:
            _import_tensorflow_quietly()
            from core.train import evaluate_split

            result = evaluate_split(run.path, split)
        _print_evaluation(result, args.json)
        return 0
    from core.metrics import DEFAULT_THRESHOLD, evaluation_report, score_split

    if onnx_file is not None:
        scores, file_threshold = score_split(predictor, split), predictor.threshold
        scored_with = f"{onnx_file} (onnxruntime)"
    else:
        scores, file_threshold = _keras_scores(run, split), DEFAULT_THRESHOLD
        scored_with = f"{run.model_path} (Keras; the run has no model.onnx)"
    report = evaluation_report(split.labels, scores, args.threshold, file_threshold)
    if args.report:
        _print_report(report, scored_with, args.json, args.threshold is not None)
    else:
        _print_evaluation({"accuracy": report.accuracy, "loss": report.loss, "n": report.n}, args.json)
    return 0


def runs(args: argparse.Namespace) -> int:
    from core.runs import RunStore

    store = RunStore(args.runs)
    if store.root.exists() and not store.root.is_dir():
        raise ValueError(f"{store.root} is a file, not a runs folder")
    found = store.list()
    if args.json:
        for run in found:
            print(
                json.dumps(
                    {
                        "run_id": run.run_id,
                        "path": str(run.path),
                        "status": run.status,
                        "epochs_done": run.epochs_done,
                        "epochs_planned": run.epochs_planned,
                        "created": run.created,
                        "finished": run.finished,
                        "data": run.data,
                        "metrics": run.metrics,
                        "history": run.history,
                        "config": run.config.to_dict() if run.config else None,
                        "error": run.error,
                        "broken": run.broken,
                    }
                )
            )
        return 0
    if not found:
        print(f"no runs in {store.root}")
        return 0
    rows = [("Run", "Status", "Epochs", "Best val acc", "Test acc", "Note")]
    for run in found:
        validation = run.history.get("val_accuracy") or []
        test = (run.metrics or {}).get("test_accuracy")
        rows.append(
            (
                run.run_id,
                run.status,
                f"{run.epochs_done}/{run.epochs_planned or '?'}",
                f"{max(validation):.4f}" if validation else "-",
                f"{test:.4f}" if isinstance(test, (int, float)) else "-",
                (f"broken: {run.broken}" if run.broken else run.error or "")[:80],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    return 0


def export(args: argparse.Namespace) -> int:
    from core.export import export_run

    if Path(args.run_dir).is_dir():
        _import_tensorflow_quietly()
    result = export_run(args.run_dir, args.out, trajectory=args.trajectory)
    native = ", ".join(f"{count} {op}" for op, count in result.op_counts.items() if op in ("RNN", "GRU", "LSTM"))
    print(f"recurrent ops: {native}; nodes: {sum(result.op_counts.values())}")
    print(f"parity: max |Keras - onnxruntime| = {result.parity_max_abs_diff:.2e} on {result.parity_inputs}")
    if result.trajectory_max_abs_diff is not None:
        print(f"step_probability parity: {result.trajectory_max_abs_diff:.2e}")
    print(f"size: {result.size_bytes / 1024:,.1f} KiB; took {result.seconds:.1f} s")
    quantized = None
    if args.quantize:
        from core.model_file import read_model_file
        from core.paths import data_source
        from core.runs import read_run

        # The run's own reviews when they are still where it read them, else IMDB_DATA; an unreadable source costs
        # the accuracy rows only: both files are written by then.
        recorded = read_run(args.run_dir).data.get("path")
        source = recorded if recorded and Path(recorded).exists() else data_source()
        try:
            split = _quantize_test_split(read_model_file(result.path)[2].vocabulary, source)
        except ValueError as error:
            split = f"the test reviews could not be read: {first_line(error)}"
        quantized = _quantize_and_compare(result.path, None, split)
    print(result.path)
    if quantized is not None:
        print(quantized)
    return 0


def _quantize_test_split(vocabulary, source: str | None):
    """The test split of source in the model's ids, or why there is none (a string) when no source is set."""
    from core.data import load_dataset, split_for_vocabulary

    if source is None:
        # Keras's imdb.npz would need the network and TensorFlow; the comparison goes on without accuracy.
        return "no test data (give --data or set IMDB_DATA)"
    dataset = load_dataset(source, num_words=vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, vocabulary)
    if not exact:
        print(MAPPED_NOTE, file=sys.stderr)
    return split


def _quantize_and_compare(float_path: Path, out: str | None, split) -> Path:
    """Write the int8 copy of float_path, say what was quantized, print the comparison table; the int8 path."""
    from core.quantize import compare_quantized, quantize_file

    result = quantize_file(float_path, out)
    for entry in result.quantized:
        shape = " x ".join(f"{size:,}" for size in entry["shape"])
        print(f"quantized: {entry['op']} table {entry['initializer']} [{shape}] to {entry['dtype']}")
    for op, reason in result.not_quantized.items():
        print(f"float32: {op}: {reason}")
    measured = "latency and throughput" if isinstance(split, str) else f"latency, throughput, {len(split):,} test reviews"
    print(f"measuring both files: {measured}...", file=sys.stderr, flush=True)
    comparison = compare_quantized(float_path, result.path, None if isinstance(split, str) else split)
    print(comparison.table())
    if isinstance(split, str):
        print(f"test accuracy not measured: {split}")
    return result.path


def quantize(args: argparse.Namespace) -> int:
    from core.inference import model_path
    from core.paths import data_source
    from core.quantize import float_metadata

    path = model_path(args.model)
    # The file is checked and the data read before anything is written, so a mistake leaves no file behind.
    split = _quantize_test_split(float_metadata(path).vocabulary, args.data or data_source())
    print(_quantize_and_compare(path, args.out, split))
    return 0


def predict(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from core.atomic import atomic_path
    from core.inference import Predictor, model_path

    if args.csv and args.texts:
        raise ValueError("give review texts or --csv FILE, not both")
    if not args.csv and not args.texts:
        raise ValueError("give at least one review to classify, or --csv FILE")
    if args.text_column and not args.csv:
        raise ValueError("--text-column only applies with --csv FILE")
    if args.csv and Path(args.csv).is_dir():
        raise ValueError(f"{args.csv} is a folder, not a CSV file")
    if args.csv and not Path(args.csv).is_file():
        raise ValueError(f"no CSV file at {args.csv}")
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise ValueError(f"{out} is a folder: give the path of the file to write, such as {out / 'predictions.jsonl'}")
    predictor = Predictor.from_file(model_path(args.model))
    # Text arguments are classified before --out is opened, so an empty review leaves no file behind.
    lines = [json.dumps(item.to_dict()) for item in predictor.predict(args.texts)] if args.texts else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    failed = rows = 0
    # --out is written to a temporary file renamed into place at the end: a failure leaves no half-written file.
    with atomic_path(out) if out is not None else nullcontext() as temporary:
        stream = open(temporary, "w", encoding="utf-8") if temporary is not None else sys.stdout
        try:
            if lines is not None:
                stream.writelines(line + "\n" for line in lines)
            else:
                for result in predictor.predict_csv(args.csv, text_column=args.text_column):
                    rows += 1
                    if result.prediction is None:
                        failed += 1
                    stream.write(json.dumps(result.to_dict()) + "\n")
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
    from core.bench import run_bench
    from core.inference import model_path

    path = model_path(args.model)
    if path.is_file():
        _import_tensorflow_quietly()
    result = run_bench(path, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(result.to_dict()) if args.json else result.table())
    return 0


def compare(args: argparse.Namespace) -> int:
    import logging
    import time

    from core.compare import CompareCallbacks, compare_runs, default_folder, parse_presets
    from core.compare import compare as compare_presets
    from core.runs import RunStore
    from core.train import TrainingCallbacks

    store = RunStore(args.runs)
    if args.run:
        for flag in ("epochs", "limit", "data"):
            if getattr(args, flag) is not None:
                raise ValueError(
                    f"--{flag} applies only when training --presets; --run compares finished runs as they are"
                )
        runs = [store.load(run) for run in args.run]
        epochs = 0
    else:
        names = parse_presets(args.presets)
        epochs = args.epochs or preset(names[0]).train.epochs
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
    callbacks = CompareCallbacks(on_step=on_step, training=training)
    _import_tensorflow_quietly()  # training and export need it
    # Each export's parity check makes a new Keras predict function, and TensorFlow warns about the retracing each time.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.run:
        folder = default_folder(runs, store)
        comparison = compare_runs(runs, save_to=folder, callbacks=callbacks)
    else:
        folder = store.root
        comparison = compare_presets(
            names, args.data, epochs=args.epochs, limit=args.limit, runs=store, callbacks=callbacks
        )
    progress.clear()
    if args.json:
        print(json.dumps(comparison.to_dict()))
        print(f"saved: {folder / 'compare.json'}", file=sys.stderr)
        return 0
    print(comparison.table())
    print(folder / "compare.json")
    return 0
