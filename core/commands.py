"""One function per CLI command: takes the parsed arguments, calls into core, prints, returns the exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.config import ExperimentConfig, preset

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


def evaluate(args: argparse.Namespace) -> int:
    from core.data import load_dataset, split_for_vocabulary
    from core.paths import data_source

    if args.model and args.run_dir:
        raise ValueError("give a run folder or --model FILE.onnx, not both")
    # Neither: the model shipped with the project.
    onnx_model = not args.run_dir
    if onnx_model:
        from core.inference import Predictor, model_path

        predictor = Predictor.from_file(model_path(args.model))
        vocabulary, source = predictor.vocabulary, args.data or data_source()
    else:
        from core.runs import RunStore, read_vocabulary

        if args.run_dir.endswith(".onnx") and Path(args.run_dir).is_file():
            raise ValueError(f"{args.run_dir} is an exported model, not a run folder: use --model {args.run_dir}")
        run = RunStore().load(args.run_dir)
        if run.config is None or not run.has_model:
            raise ValueError(f"run {run.run_id} cannot be evaluated: {run.broken or 'it has no model.keras'}")
        vocabulary = read_vocabulary(run.path)
        # The run remembers where its reviews came from; --data overrides it, IMDB_DATA stands in when it has none.
        source = args.data or run.data.get("path") or data_source()
    if source is None:
        _import_tensorflow_quietly()  # Keras's imdb.npz is read through Keras
    dataset = load_dataset(source, num_words=vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, vocabulary)
    if not exact:
        print(MAPPED_NOTE, file=sys.stderr)
    if onnx_model:
        result = predictor.evaluate(split)
    else:
        _import_tensorflow_quietly()
        from core.train import evaluate_split

        result = evaluate_split(run.path, split)
    _print_evaluation(result, args.json)
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
    print(f"size: {result.size_bytes / 1024:,.1f} KiB; took {result.seconds:.1f} s")
    print(result.path)
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
                        empty = {"label": None, "score": None, "tokens": 0, "unknown_tokens": 0, "truncated": False}
                        record = {"row": result.row, **empty, "error": result.error}
                    else:
                        record = {"row": result.row, **result.prediction.to_dict()}
                    stream.write(json.dumps(record) + "\n")
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
