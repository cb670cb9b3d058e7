"""What a training history says: the best epoch and the peak validation accuracy, each defined once.

Two different questions get two different words everywhere (pages, CLI, files):

- **best epoch**: the epoch with the lowest validation loss, the one early stopping watches and restores;
- **peak validation accuracy**: the highest validation accuracy of any epoch, which may be another epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

BEST_EPOCH_RULE = "lowest validation loss"
PEAK_ACCURACY_RULE = "highest validation accuracy"
# The words people read for each, on every page and in the command line (capitalized at the start of a label).
BEST_EPOCH_LABEL = "best epoch (lowest val loss)"
PEAK_ACCURACY_LABEL = "peak val accuracy"


@dataclass(frozen=True)
class EpochScore:
    """One epoch picked out of a history, with its validation figures."""

    epoch: int  # from 1
    val_loss: float | None
    val_accuracy: float | None


def _at(values: list, index: int) -> float | None:
    return float(values[index]) if index < len(values) and values[index] is not None else None


def best_epoch(history: dict) -> EpochScore | None:
    """The epoch with the lowest val_loss (the first of equal minima, as EarlyStopping keeps); None without one."""
    losses = history.get("val_loss") or []
    if not losses:
        return None
    index = min(range(len(losses)), key=losses.__getitem__)
    return EpochScore(index + 1, float(losses[index]), _at(history.get("val_accuracy") or [], index))


def peak_val_accuracy(history: dict) -> EpochScore | None:
    """The epoch with the highest val_accuracy (the first of equal maxima); None without validation."""
    accuracies = history.get("val_accuracy") or []
    if not accuracies:
        return None
    index = max(range(len(accuracies)), key=accuracies.__getitem__)
    return EpochScore(index + 1, _at(history.get("val_loss") or [], index), float(accuracies[index]))
