"""Continue an interrupted or cancelled run from its checkpoint: every check first, then the same fit as train()."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.runs import store as runs
from core.runs.checkpoints import ResumePoint, checkpoint_epoch
from core.runs.store import RunInfo, RunStore, read_run
from core.training.trainer import TrainingCallbacks, _check_trainable, fit_run, training_arrays


def resume_problem(run: RunInfo) -> str | None:
    """Why run cannot be resumed, in one line (None when it can); reads files, changes nothing."""
    name = f"run {run.run_id}"
    if run.status == "finished":
        return f"{name} is finished: there is nothing to resume; train a new run instead"
    if run.status == "running":
        return f"{name} is still training; stop it before resuming it"
    if run.status == "failed":
        return f"{name} failed ({run.error or 'no reason recorded'}); only an interrupted or stopped run can be resumed"
    if run.config is None:
        return f"{name} cannot be resumed: {run.broken}"
    epoch = checkpoint_epoch(run.path)
    if epoch is None:
        return (
            f"{name} has no checkpoint to resume from (it ended before its first epoch, or was trained before "
            "checkpoints existed); train a new run instead"
        )
    if epoch >= run.config.train.epochs:
        return f"{name} has already run its {run.config.train.epochs} epochs: there is nothing to resume"
    if epoch > run.epochs_done:
        return (
            f"{name} cannot be resumed: its checkpoint has {epoch} epochs but {runs.HISTORY_FILE} "
            f"only {run.epochs_done}"
        )
    recorded = run.recorded_source
    if recorded and not Path(recorded).exists():
        return f"{name} was trained on {recorded}, which is gone; put the data back there to resume it"
    return None


def _check(run: RunInfo) -> None:
    problem = resume_problem(run)
    if problem:
        raise ValueError(problem)


def _locate(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not path.is_dir() or not (path / runs.RUN_FILE).exists():
        raise ValueError(f"no run folder at {path}; `python -m core runs` lists the runs")
    return path


def resume(
    run_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    *,
    on_loading: Callable[[float, str], None] | None = None,
    on_data: Callable[[str], None] | None = None,
) -> RunInfo:
    """Go on training run_dir from its checkpoint with its own config, data and limit; returns the run as it ends.

    Every refusal (finished, no checkpoint, data gone, another training running) is a ValueError raised before the
    run folder is touched. on_data hears one line saying which reviews are used.
    """
    from core.data.load import load_dataset

    callbacks = callbacks or TrainingCallbacks()
    path = _locate(run_dir)
    # The lock belongs to the runs folder the run lives in: the same one its own training held.
    store = RunStore(path.parent)
    _check(read_run(path))
    with store.training_lock():
        pass  # refuse at once when another training runs, before the data takes its time to load
    run = read_run(path)
    limit = run.data.get("limit")
    dataset = load_dataset(run.recorded_source, num_words=run.config.model.vocabulary_size, progress=on_loading)
    if dataset.vocabulary.to_dict() != runs.read_vocabulary(path).to_dict():
        raise ValueError(
            f"run {run.run_id} cannot be resumed: the reviews at {dataset.source} are not those it was trained on "
            "(their words differ)"
        )
    model_config, train_config = run.config.model, run.config.train
    reviews = min(limit, len(dataset.train)) if limit else len(dataset.train)
    _check_trainable(model_config, train_config, dataset, reviews)
    x, y = training_arrays(model_config, dataset.train, limit)
    if on_data is not None:
        on_data(f"data: {dataset.source}: {len(y):,} training and {len(dataset.test):,} test reviews (as recorded)")
    with store.training_lock():
        run = read_run(path)  # again under the lock: another process may have taken it up meanwhile
        _check(run)
        epoch = checkpoint_epoch(path)
        history = {key: list(values[:epoch]) for key, values in run.history.items()}
        best_weights = None
        if train_config.early_stopping_patience and run.has_model:
            import keras

            # model.keras holds the best epoch's model (the checkpoint's ModelCheckpoint): early stopping's best.
            best_weights = keras.models.load_model(run.model_path, compile=False).get_weights()
        seconds = (run.metrics or {}).get("train_seconds")
        point = ResumePoint(epoch, history, best_weights, float(seconds) if isinstance(seconds, (int, float)) else 0.0)
        runs.mark_resumed(path, epoch, history)
        return fit_run(path, model_config, train_config, dataset, callbacks, x, y, resumed=point)
