"""Evaluate a model on the test reviews: which model and data, Keras or onnxruntime, plain accuracy or the full report.

One call, evaluate(), makes every decision `python -m core evaluate` needs and returns a frozen Evaluation that the
command line (or a page) only has to print.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# What evaluate says when the data's ids can only be translated word by word into the model's vocabulary.
MAPPED_NOTE = (
    "note: Keras's imdb.npz has no raw text to encode with the model's vocabulary; its ids are mapped word by word, "
    "so words its own vocabulary lacks count as unknown"
)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class EvaluationCallbacks:
    """How a caller follows an evaluation; every callable is optional."""

    on_note: Callable[[str], None] | None = None  # a line for people while it works (a threshold written, MAPPED_NOTE)
    # Called just before TensorFlow is first needed (Keras's imdb.npz, a run's model.keras), so that a command line
    # can import it its own way (with its C++ start-up lines hidden).
    before_tensorflow: Callable[[], None] = field(default=_nothing)


@dataclass(frozen=True)
class ThresholdWritten:
    """A threshold stored in an exported file."""

    path: Path
    threshold: float
    previous_threshold: float

    @property
    def message(self) -> str:
        return f"threshold {self.threshold:g} (was {self.previous_threshold:g}) written to {self.path}"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "threshold": self.threshold, "previous_threshold": self.previous_threshold}


@dataclass(frozen=True)
class Evaluation:
    """What evaluate() found: a written threshold, the summary, and the full report when one was asked for."""

    written: ThresholdWritten | None = None  # set when a threshold was written
    summary: dict | None = None  # {"accuracy", "loss", "n"}; None when only a threshold was written
    report: object | None = None  # core.evaluation.metrics.EvaluationReport, when scores were needed (report or a threshold)
    scored_with: str | None = None  # which file and runtime gave the report's scores, for people


def _check_request(run_dir, model, threshold, write_threshold) -> None:
    if model and run_dir:
        raise ValueError("give a run folder or --model FILE.onnx, not both")
    if threshold is not None and write_threshold is not None:
        raise ValueError("give --threshold or --write-threshold, not both: a written threshold is the one evaluated")
    if write_threshold is not None and not (model or run_dir):
        raise ValueError(
            "--write-threshold needs the file to change: --model FILE.onnx or a run folder with a model.onnx "
            "(the shipped model is not changed in place)"
        )


def _target(run_dir: str | None, model: str | None, scored: bool, write_threshold: float | None):
    """The run (or None) and the exported file (or None: the run's Keras model) to evaluate."""
    if not run_dir:
        # Neither a run nor --model: the model shipped with the project.
        from core.scoring.predictor import model_path

        return None, model_path(model)
    from core.runs.store import RunStore

    if run_dir.endswith(".onnx") and Path(run_dir).is_file():
        raise ValueError(f"{run_dir} is an exported model, not a run folder: use --model {run_dir}")
    run = RunStore().load(run_dir)
    exported = run.path / "model.onnx"
    if write_threshold is not None and not exported.is_file():
        raise ValueError(
            f"run {run.run_id} has no model.onnx to write the threshold into: "
            f"export it first with python -m core export {run_dir}"
        )
    # A report uses the run's exported file when there is one; plain accuracy and loss stay Keras's, as trained.
    if exported.is_file() and (scored or write_threshold is not None):
        return run, exported
    return run, None


def keras_scores(run, split):
    """The positive probability of every review of split through the run's Keras model."""
    from core.training.trainer import load_run_model, training_arrays

    model = load_run_model(run)
    ids, _ = training_arrays(run.config.model, split)
    return model.predict(ids, batch_size=run.config.train.batch_size, verbose=0).reshape(-1)


def evaluate(
    run_dir: str | None = None,
    model: str | None = None,
    *,
    data: str | None = None,
    threshold: float | None = None,
    write_threshold: float | None = None,
    report: bool = False,
    callbacks: EvaluationCallbacks | None = None,
) -> Evaluation:
    """Evaluate a run folder, an exported file (model) or the shipped model on the test split.

    data overrides the reviews (default: the run's own data while it exists, else IMDB_DATA). write_threshold is
    stored in the file first; without report nothing else is done. report (or a threshold) scores every review and
    builds core.evaluation.metrics' report; otherwise only accuracy, loss and count are computed (a run without a model.onnx
    through Keras, as trained). ValueError with one line for anything a user can get wrong.
    """
    from core.data.load import load_dataset, split_for_vocabulary

    callbacks = callbacks or EvaluationCallbacks()
    _check_request(run_dir, model, threshold, write_threshold)
    # Scores are needed for the report and for any threshold but the model's own.
    scored = report or threshold is not None
    run, onnx_file = _target(run_dir, model, scored, write_threshold)
    written = None
    if write_threshold is not None:
        from core.export.model_file import write_threshold as store_threshold

        previous = store_threshold(onnx_file, write_threshold)
        written = ThresholdWritten(onnx_file, write_threshold, previous)
        if not report:
            return Evaluation(written=written)
        # The report follows, evaluated at the threshold just written.
        if callbacks.on_note:
            callbacks.on_note(written.message)
    if onnx_file is not None:
        from core.scoring.predictor import Predictor

        predictor = Predictor.from_file(onnx_file)
        vocabulary = predictor.metadata.vocabulary
    else:
        from core.runs.store import read_vocabulary

        problem = run.why_unusable("evaluate")  # the rule every use of a run's model follows
        if problem:
            raise ValueError(problem)
        vocabulary = read_vocabulary(run.path)
    # The run remembers where its reviews came from; data overrides it, IMDB_DATA stands in when it has none.
    from core import paths

    source = data or (run.data_source() if run is not None else paths.data_source())
    if run is not None and run.partial and callbacks.on_note:
        # A killed or stopped run is scored with the model of its best epoch so far.
        callbacks.on_note(f"run {run.run_id} is {run.partial}: scoring its best epoch so far")
    if source is None:
        callbacks.before_tensorflow()  # Keras's imdb.npz is read through Keras
    dataset = load_dataset(source, num_words=vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, vocabulary)
    if not exact and callbacks.on_note:
        callbacks.on_note(MAPPED_NOTE)
    if not scored:
        if onnx_file is not None:
            from core.evaluation.metrics import split_summary

            return Evaluation(written=written, summary=split_summary(predictor, split))
        callbacks.before_tensorflow()
        from core.training.trainer import evaluate_split

        return Evaluation(written=written, summary=evaluate_split(run.path, split))
    from core.evaluation.metrics import DEFAULT_THRESHOLD, evaluation_report, score_split

    if onnx_file is not None:
        scores, file_threshold = score_split(predictor, split), predictor.metadata.threshold
        scored_with = f"{onnx_file} (onnxruntime)"
    else:
        callbacks.before_tensorflow()
        scores, file_threshold = keras_scores(run, split), DEFAULT_THRESHOLD
        scored_with = f"{run.model_path} (Keras; the run has no model.onnx)"
    full = evaluation_report(split.labels, scores, threshold, file_threshold)
    summary = {"accuracy": full.accuracy, "loss": full.loss, "n": full.n}
    return Evaluation(written=written, summary=summary, report=full, scored_with=scored_with)


def thresholds_by_role(report, threshold_given: bool) -> list[tuple[object, list[str]]]:
    """The report's metrics at each distinct threshold, with every role that threshold plays ("--threshold", "the
    file's", "default"), in that order: one row each in the command line's table."""
    roles = [(report.at_file_threshold, "the file's"), (report.at_default_threshold, "default")]
    if threshold_given:
        roles.insert(0, (report.at_threshold, "--threshold"))
    named: dict[float, tuple[object, list[str]]] = {}
    for metrics, role in roles:
        named.setdefault(metrics.threshold, (metrics, []))[1].append(role)
    return list(named.values())
