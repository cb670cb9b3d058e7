"""Compare architectures on the same data and budget: train presets (or take finished runs), export, time, tabulate."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.evaluation.comparison import (  # noqa: F401 (what a comparison is and its file are part of this module's interface)
    COMPARISON_FILE,
    Comparison,
    ComparisonRow,
    comparison_path,
    load_comparison,
    save_comparison,
)
from core.config import ExperimentConfig, preset
from core.errors import first_line
from core.history import peak_val_accuracy
from core.runs.table import test_accuracy
from core.runs.store import RunInfo, RunStore, model_name, read_run, utc_now
from core.training.trainer import TrainingCallbacks

BOOK_PRESETS = ("seed", "book-lstm", "book-gru")
LATENCY_REPEATS = 50  # timed single-review runs per file, after LATENCY_WARMUP untimed ones
LATENCY_WARMUP = 3
COMPARABLE_STATUSES = ("finished", "cancelled")


@dataclass(frozen=True)
class CompareCallbacks:
    """How a caller follows a comparison; every callable is optional."""

    on_step: Callable[[str], None] | None = None  # one line per step: "training book-lstm (2 of 3)", "exporting ..."
    training: TrainingCallbacks | None = None  # handed to every training; its cancel ends the rest
    on_row: Callable[[ComparisonRow], None] | None = None  # each model's row as soon as it is measured


def parse_presets(text: str) -> list[str]:
    """Comma-separated preset names, checked: each known, trainable and named once; ValueError otherwise."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise ValueError(f"--presets needs comma-separated preset names such as {','.join(BOOK_PRESETS)}, got {text!r}")
    check_presets(names)
    return names


def check_presets(names: Sequence[str]) -> list[ExperimentConfig]:
    """The experiments of names; ValueError for an unknown, untrainable or repeated one."""
    if not names:
        raise ValueError(f"name at least one preset to compare, such as {','.join(BOOK_PRESETS)}")
    experiments = []
    for name in names:
        experiment = preset(name)
        if not experiment.model.is_classifier:
            raise ValueError(f"preset {name} has no classifier on top, so it cannot be trained or compared")
        if names.count(name) > 1:
            raise ValueError(f"preset {name} is named twice; name each preset once")
        experiments.append(experiment)
    return experiments


def latency_ids(sequence_length: int, vocabulary_size: int, start_id: int = 1) -> np.ndarray:
    """One review that fills the whole input: the start id, then fixed pseudo-random word ids, no padding."""
    ids = np.random.default_rng(0).integers(3, vocabulary_size, size=(1, sequence_length), dtype=np.int32)
    ids[0, 0] = start_id
    return ids


def single_review_latency_ms(onnx_path: str | Path, repeats: int = LATENCY_REPEATS) -> float:
    """Median milliseconds for one full-length review through the file's Predictor (onnxruntime, after warm-up)."""
    from core.scoring.predictor import Predictor

    predictor = Predictor.from_file(onnx_path)
    metadata = predictor.metadata
    ids = latency_ids(metadata.sequence_length, metadata.vocabulary.num_words, metadata.vocabulary.start_id)
    for _ in range(LATENCY_WARMUP):
        predictor.probabilities(ids)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.probabilities(ids)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _seconds_per_epoch(run: RunInfo, epoch_seconds: Sequence[float]) -> float | None:
    if epoch_seconds:
        return float(statistics.median(epoch_seconds))
    seconds = (run.metrics or {}).get("train_seconds")
    if isinstance(seconds, (int, float)) and run.epochs_done:
        return float(seconds) / run.epochs_done
    return None


def comparable_problem(run: RunInfo) -> str | None:
    """Why a run cannot be compared (still training, broken, no weights), or None when it can."""
    if run.status not in COMPARABLE_STATUSES:
        reason = run.error or "only finished or stopped runs can be compared"
        return f"run {run.run_id} is {run.status}: {reason}"
    problem = run.why_unusable("compare")  # the rule every use of a run's model follows
    if problem:
        return problem
    if not run.config.model.is_classifier:
        return f"run {run.run_id} has no classifier on top"
    return None


def comparison_row(
    run: RunInfo,
    *,
    export: bool = True,
    latency: Callable[[Path], float] | None = single_review_latency_ms,
    epoch_seconds: Sequence[float] = (),
    on_step: Callable[[str], None] | None = None,
) -> ComparisonRow:
    """One run's row; export=True writes RUN/model.onnx first when it is missing; latency=None skips the timing."""
    from core.model.build import describe

    problem = comparable_problem(run)
    if problem:
        raise ValueError(problem)
    name = model_name(run.config.model)
    onnx_path = run.path / "model.onnx"
    issue = None
    if export and not onnx_path.is_file():
        from core.export.convert import export_run

        if on_step:
            on_step(f"exporting {name} ({run.run_id}) to ONNX")
        try:
            export_run(run.path)
        except ValueError as error:  # ExportError included: the row stays, without the file's measures
            issue = f"export failed: {first_line(error)}"
    measured = None
    if onnx_path.is_file() and latency is not None:
        if on_step:
            on_step(f"timing one review through {name}'s model.onnx")
        try:
            measured = float(latency(onnx_path))
        except ValueError as error:
            issue = f"model.onnx cannot be timed: {first_line(error)}"
    elif not onnx_path.is_file() and issue is None:
        issue = "no model.onnx: export the run to time it"
    peak = peak_val_accuracy(run.history)
    metrics = run.metrics or {}
    return ComparisonRow(
        name=name,
        run_id=run.run_id,
        run_dir=str(run.path),
        status=run.status,
        parameters=describe(run.config.model).total_params,
        epochs_run=run.epochs_done,
        best_val_accuracy=peak.val_accuracy if peak else None,
        best_val_epoch=peak.epoch if peak else None,
        test_accuracy=test_accuracy(run),
        test_n=int(metrics.get("test_n") or 0),
        seconds_per_epoch=_seconds_per_epoch(run, epoch_seconds),
        epoch_seconds=tuple(round(value, 3) for value in epoch_seconds),
        latency_ms=measured,
        file_bytes=onnx_path.stat().st_size if onnx_path.is_file() else None,
        onnx_path=str(onnx_path) if onnx_path.is_file() else None,
        history={key: list(values) for key, values in run.history.items()},
        problem=issue,
    )


def budget_notes(runs: Sequence[RunInfo]) -> list[str]:
    """Where runs were not trained on the same data or with the same training settings, for people."""
    notes = []
    trains = {json.dumps(run.config.train.to_dict(), sort_keys=True) for run in runs if run.config}
    if len(trains) > 1:
        fields = sorted(
            {
                key
                for run in runs
                for key, value in run.config.train.to_dict().items()
                if any(other.config.train.to_dict()[key] != value for other in runs)
            }
        )
        notes.append(f"the runs were trained with different settings ({', '.join(fields)}): not the same budget")
    data = {(run.data.get("source"), run.data.get("limit"), run.data.get("reviews")) for run in runs}
    if len(data) > 1:
        notes.append("the runs were trained on different data (source, --limit or review count differ)")
    epochs = {run.epochs_done for run in runs}
    if len(epochs) > 1:
        notes.append(f"the runs trained for different numbers of epochs ({', '.join(map(str, sorted(epochs)))})")
    return notes


def _latency_input(rows: Sequence[ComparisonRow], runs: Sequence[RunInfo]) -> str:
    lengths = sorted({run.config.model.sequence_length for run in runs if run.config})
    if not any(row.latency_ms is not None for row in rows) or not lengths:
        return ""
    length = " or ".join(str(value) for value in lengths)
    return (
        f"median of {LATENCY_REPEATS} runs of one review of {length} ids (no padding) through onnxruntime, one thread"
    )


def compare_runs(
    runs: Sequence[RunInfo | str | Path],
    *,
    export: bool = True,
    latency: Callable[[Path], float] | None = single_review_latency_ms,
    save_to: str | Path | None = None,
    callbacks: CompareCallbacks | None = None,
    epoch_seconds: dict[str, Sequence[float]] | None = None,
) -> Comparison:
    """Compare finished run folders without training: one row each, in order; saved to save_to/compare.json if given."""
    callbacks = callbacks or CompareCallbacks()
    infos = [run if isinstance(run, RunInfo) else read_run(run) for run in runs]
    if not infos:
        raise ValueError("give at least one run to compare")
    seen = set()
    for info in infos:
        problem = comparable_problem(info)
        if problem:
            raise ValueError(problem)
        if info.path.resolve() in seen:
            raise ValueError(f"run {info.run_id} is named twice; name each run once")
        seen.add(info.path.resolve())
    rows = []
    for info in infos:
        row = comparison_row(
            info,
            export=export,
            latency=latency,
            epoch_seconds=(epoch_seconds or {}).get(info.run_id, ()),
            on_step=callbacks.on_step,
        )
        rows.append(row)
        if callbacks.on_row:
            callbacks.on_row(row)
    comparison = Comparison(tuple(rows), utc_now(), tuple(budget_notes(infos)), _latency_input(rows, infos))
    if save_to is not None:
        save_comparison(comparison, save_to)
    return comparison


def default_selection(comparable: Sequence[RunInfo], saved: Comparison | None) -> list[str]:
    """The runs the Compare page starts on: those of the last saved comparison when they are all still comparable,
    else the newest run of each book preset (comparable is newest first), else the three newest."""
    ids = [run.run_id for run in comparable]
    if saved is not None and saved.rows and all(row.run_id in ids for row in saved.rows):
        return [row.run_id for row in saved.rows]
    newest: dict[str, str] = {}
    for run in comparable:
        name = model_name(run.config.model)
        if name in BOOK_PRESETS and name not in newest:
            newest[name] = run.run_id
    return [newest[name] for name in BOOK_PRESETS if name in newest] or ids[:3]


def default_folder(runs: Sequence[RunInfo], store: RunStore) -> Path:
    """Where a comparison of runs is saved: the folder that holds them all, else the store's root."""
    parents = {run.path.resolve().parent for run in runs}
    return parents.pop() if len(parents) == 1 else store.root


def compare(
    presets: Sequence[str],
    data: str | Path | None = None,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    runs: str | Path | RunStore | None = None,
    callbacks: CompareCallbacks | None = None,
    export: bool = True,
    save: bool = True,
) -> Comparison:
    """Train each preset in order on the same data and budget (epochs and limit override all), then compare the runs.

    Every preset must train with the same TrainConfig, as the book's presets do; the comparison is saved as
    compare.json in the runs folder. A cancel (callbacks.training.cancel) ends the comparison after that run.
    """
    from core.data.load import load_dataset
    from core.paths import data_source
    from core.training.trainer import train

    callbacks = callbacks or CompareCallbacks()
    store = runs if isinstance(runs, RunStore) else RunStore(runs)
    experiments = check_presets(list(presets))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"--limit must be a positive number of reviews, got {limit}")
    if epochs is not None:
        # TrainConfig checks the value again: epochs 0 fails with the field's own message.
        experiments = [
            dataclasses.replace(item, train=dataclasses.replace(item.train, epochs=epochs)) for item in experiments
        ]
    budgets = {json.dumps(item.train.to_dict(), sort_keys=True) for item in experiments}
    if len(budgets) > 1:
        raise ValueError(f"presets {', '.join(presets)} train with different settings: they cannot share one budget")
    # Refused before the data loads when another training holds the folder; each train() takes the lock for real.
    with store.training_lock():
        pass
    source = data if data is not None else data_source()
    datasets: dict[int, object] = {}
    training = callbacks.training or TrainingCallbacks()
    trained: list[RunInfo] = []
    timings: dict[str, list[float]] = {}
    for index, (name, experiment) in enumerate(zip(presets, experiments), start=1):
        words = experiment.model.vocabulary_size
        if words not in datasets:
            if callbacks.on_step:
                callbacks.on_step(f"loading the reviews ({words:,} words)")
            datasets[words] = load_dataset(source, num_words=words)
        if callbacks.on_step:
            callbacks.on_step(f"training {name} ({index} of {len(experiments)})")
        epoch_times: list[float] = []
        clock = [time.perf_counter()]

        def run_created(run_dir, clock=clock) -> None:
            clock[0] = time.perf_counter()
            if training.on_run_created:
                training.on_run_created(run_dir)

        def epoch_end(epoch: int, logs: dict, clock=clock, epoch_times=epoch_times) -> None:
            now = time.perf_counter()
            epoch_times.append(now - clock[0])
            clock[0] = now
            if training.on_epoch_end:
                training.on_epoch_end(epoch, logs)

        own = dataclasses.replace(training, on_run_created=run_created, on_epoch_end=epoch_end)
        run = train(experiment.model, experiment.train, datasets[words], own, store=store, limit=limit)
        trained.append(run)
        timings[run.run_id] = epoch_times
        if training.cancel.is_set():
            break
    usable = [run for run in trained if comparable_problem(run) is None]
    if not usable:
        raise ValueError("no training ended with a model to compare")
    return compare_runs(
        usable,
        export=export,
        save_to=store.root if save else None,
        callbacks=callbacks,
        epoch_seconds=timings,
    )


@dataclass(frozen=True)
class ComparisonPlan:
    """A comparison checked and ready to run: presets to train, or finished runs to take as they are."""

    store: RunStore
    presets: tuple[str, ...]  # empty when comparing runs
    runs: tuple[RunInfo, ...]  # empty when training presets
    data: str | None
    epochs: int | None  # the --epochs override, None for each preset's own
    limit: int | None

    @property
    def epochs_each(self) -> int:
        """How many epochs each training plans (0 when no training is done), for a progress line."""
        if not self.presets:
            return 0
        return self.epochs or preset(self.presets[0]).train.epochs

    @property
    def folder(self) -> Path:
        """Where compare.json goes: the folder holding every run compared, else the runs folder."""
        return default_folder(self.runs, self.store) if self.runs else self.store.root

    def run(self, callbacks: CompareCallbacks | None = None) -> Comparison:
        """Train (presets) or read (runs), export, time and tabulate; saved as compare.json in folder."""
        if self.runs:
            return compare_runs(self.runs, save_to=self.folder, callbacks=callbacks)
        return compare(
            self.presets, self.data, epochs=self.epochs, limit=self.limit, runs=self.store, callbacks=callbacks
        )


def plan_comparison(
    presets: str | None = None,
    run_dirs: Sequence[str] | None = None,
    *,
    data: str | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    runs_folder: str | None = None,
) -> ComparisonPlan:
    """Check what `python -m core compare` was asked: comma-separated presets to train, or run folders (ids or paths)
    to compare as they are; ValueError with one line for a mistake, before anything is trained."""
    store = RunStore(runs_folder)
    if run_dirs:
        for flag, value in (("epochs", epochs), ("limit", limit), ("data", data)):
            if value is not None:
                raise ValueError(
                    f"--{flag} applies only when training --presets; --run compares finished runs as they are"
                )
        return ComparisonPlan(store, (), tuple(store.load(run) for run in run_dirs), None, None, None)
    return ComparisonPlan(store, tuple(parse_presets(presets or "")), (), data, epochs, limit)
