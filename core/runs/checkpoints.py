"""Per-epoch checkpoints in a run folder: the state to resume from and the best model so far, each written atomically.

Two Keras callbacks do the work, each wrapped so that a crash in the middle of a write leaves the previous file usable:

- BackupAndRestore keeps the weights *and* the optimizer state (save_weights stores both) and sets fit's starting
  epoch when it loads them. Keras writes its weights file and its epoch file in place, one after the other; here the
  epoch is part of the file name (checkpoint/epoch-0003.weights.h5), the file is written under a hidden temporary name
  and renamed into place, so one rename commits weights and epoch together. Older states are removed after it.
- ModelCheckpoint(save_best_only on val_loss) keeps the best model so far, the project's best epoch (core.history:
  lowest validation loss). Keras writes it in place; here it writes a hidden staging file renamed over model.keras.
  An interrupted run therefore always has the model of its best finished epoch, which can be evaluated and exported.

This module imports Keras only inside its functions: the run store and the pages read checkpoints without TensorFlow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.atomic import atomic_path
from core.errors import reason

CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "epoch-{epoch:04d}.weights.h5"
_STATE_PATTERN = re.compile(r"^epoch-(\d{4,})\.weights\.h5$")
# Where ModelCheckpoint writes before the rename over model.keras; Keras insists on the .keras suffix.
BEST_STAGING = ".model.best-staging.keras"


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run goes on from: its finished epochs, their history, and what early stopping had kept."""

    epoch: int  # epochs finished and checkpointed; fit starts at the next one
    history: dict  # history.json cut to those epochs
    best_weights: list | None = field(default=None, repr=False)  # model.keras's weights (the best epoch's)
    seconds_before: float = 0.0  # fit time of the earlier sessions, when recorded


def latest_state(run_dir: str | Path) -> tuple[int, Path] | None:
    """The newest committed training state: (epochs it has finished, its weights file), or None without one."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    try:
        names = [entry.name for entry in folder.iterdir()]
    except OSError:
        return None
    found = [(int(match.group(1)), folder / name) for name in names if (match := _STATE_PATTERN.match(name))]
    return max(found) if found else None


def checkpoint_epoch(run_dir: str | Path) -> int | None:
    """Epochs the run's checkpoint has finished (None: no checkpoint, the run cannot be resumed)."""
    state = latest_state(run_dir)
    return state[0] if state else None


def _sync_and_replace(source: Path, target: Path) -> None:
    with open(source, "rb+") as written:
        os.fsync(written.fileno())
    os.replace(source, target)


def state_callback(run_dir: str | Path):
    """A BackupAndRestore that saves weights and optimizer state after every epoch, atomically, and restores the
    newest state at the start of fit (fit then starts at the epoch after it)."""
    import keras

    folder = Path(run_dir) / CHECKPOINT_DIR

    class EpochState(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            folder.mkdir(exist_ok=True)
            target = folder / STATE_NAME.format(epoch=self._current_epoch)
            # save_weights needs the .weights.h5 suffix, which the temporary name keeps; a failed write removes it.
            try:
                with atomic_path(target, suffix=".weights.h5") as temporary:
                    self.model.save_weights(temporary, overwrite=True)
            except OSError as error:  # a full disk: one line naming the file, as the run store's own writes say
                raise ValueError(f"cannot write {target}: {reason(error)}") from None
            for entry in folder.iterdir():
                if _STATE_PATTERN.match(entry.name) and entry != target:
                    entry.unlink(missing_ok=True)

        def _load_model(self):
            state = latest_state(run_dir)
            if state is None:
                return
            epoch, path = state
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(path)
            self.model._initial_epoch = epoch  # what BackupAndRestore itself sets: fit starts after that epoch

    # delete_checkpoint=False: a finished run keeps its last state (weights and optimizer state: 2.6 MB for the seed)
    # rather than Keras removing the folder, so that the folder reads the same whichever way the run ended.
    return EpochState(str(folder), delete_checkpoint=False)


def best_model_callback(run_dir: str | Path, model_file: str, monitor: str = "val_loss", best: float | None = None):
    """A ModelCheckpoint that keeps the model of the lowest monitor so far as run_dir/model_file, renamed into place.

    best is the lowest value already reached (a resumed run): only a better epoch replaces the saved model.
    """
    import keras

    run_dir = Path(run_dir)
    staging = run_dir / BEST_STAGING

    class BestModel(keras.callbacks.ModelCheckpoint):
        def on_train_begin(self, logs=None):
            # A process killed while writing leaves its staging file; it must never be taken for a new best.
            staging.unlink(missing_ok=True)

        def on_epoch_end(self, epoch, logs=None):
            target = run_dir / model_file
            try:
                super().on_epoch_end(epoch, logs)
                if staging.exists():
                    _sync_and_replace(staging, target)
            except OSError as error:  # the previous best stays in place; the staging file goes
                staging.unlink(missing_ok=True)
                raise ValueError(f"cannot write {target}: {reason(error)}") from None

    return BestModel(
        str(staging), monitor=monitor, mode="min", save_best_only=True, initial_value_threshold=best
    )


def resumed_early_stopping(patience: int, history: dict, best_weights):
    """EarlyStopping that goes on where the interrupted run's left off: its best val_loss, that epoch's weights and
    the epochs waited since, read from the history instead of starting afresh."""
    import keras

    from core.history import best_epoch

    class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            best = best_epoch(history)
            if best is not None and best_weights is not None:
                self.best = best.val_loss
                self.best_epoch = best.epoch - 1  # Keras counts epochs from 0
                self.best_weights = best_weights
                self.wait = len(history.get("val_loss", [])) - best.epoch

    return ResumedEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)


def fit_callbacks(run_dir: str | Path, model_file: str, train_config, recorder, resumed: ResumePoint | None) -> list:
    """The callbacks of one fit, in the order that keeps the files consistent after a crash at any point: the best
    model, then history.json (the recorder), then the state checkpoint (a resume cuts history back to it), then
    early stopping when the config asks for it."""
    import keras

    from core.history import best_epoch

    history = resumed.history if resumed else {}
    best = best_epoch(history)
    monitor = "val_loss" if train_config.validation_split else "loss"
    best_so_far = best.val_loss if best and monitor == "val_loss" else None
    callbacks = [best_model_callback(run_dir, model_file, monitor, best_so_far), recorder, state_callback(run_dir)]
    patience = train_config.early_stopping_patience
    if patience and resumed is not None:
        callbacks.append(resumed_early_stopping(patience, history, resumed.best_weights))
    elif patience:
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        callbacks.append(early_stopping)
    return callbacks
