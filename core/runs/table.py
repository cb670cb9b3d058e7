"""Runs as people see them: one row a run (for `python -m core runs` and the Runs page), its record for JSON, the
figures both show (test accuracy, training time, best epoch, peak validation accuracy), and the aligned text table
every command line listing prints (runs, summary, compare)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.history import BEST_EPOCH_LABEL, PEAK_ACCURACY_LABEL, EpochScore, best_epoch, peak_val_accuracy
from core.config import ExperimentConfig
from core.runs.store import RunInfo

# The column names people read, one word for each idea (core.history): shared by the command line and the pages.
PEAK_COLUMN = PEAK_ACCURACY_LABEL.capitalize()  # Peak val accuracy: the highest validation accuracy of any epoch
BEST_EPOCH_COLUMN = BEST_EPOCH_LABEL.capitalize()  # Best epoch (lowest val loss): what early stopping restores


def test_accuracy(run: RunInfo) -> float | None:
    """The run's accuracy on the whole test split, or None when it was not tested."""
    value = (run.metrics or {}).get("test_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def training_seconds(run: RunInfo) -> float | None:
    """How long the training took: fit's time when measured, else from start to end; None when unknown."""
    measured = (run.metrics or {}).get("train_seconds")
    if isinstance(measured, (int, float)):
        return float(measured)
    # Runs that never wrote metrics (killed, failed) still have their start and end times.
    if not run.created or not run.finished:
        return None
    try:
        return (datetime.fromisoformat(run.finished) - datetime.fromisoformat(run.created)).total_seconds()
    except ValueError:
        return None


@dataclass(frozen=True)
class RunRow:
    """What the Runs table shows of one run."""

    run_id: str
    status: str  # a broken run says so here, where people look first: "finished, broken"
    epochs: str  # done/planned, or done alone when the plan is unknown
    peak_val_accuracy: float | None  # the highest validation accuracy of any epoch
    best_epoch: EpochScore | None  # the epoch of lowest validation loss, with its figures
    test_accuracy: float | None
    seconds: float | None
    reviews: int | None  # training reviews used (or the --limit asked for)
    problem: str  # why the folder is broken, or why the training failed; empty when neither


def run_row(run: RunInfo) -> RunRow:
    """One run's row of the Runs page."""
    planned = run.epochs_planned
    peak = peak_val_accuracy(run.history)
    return RunRow(
        run_id=run.run_id,
        status=f"{run.status}, broken" if run.broken else run.status,
        epochs=f"{run.epochs_done}/{planned}" if planned else str(run.epochs_done),
        peak_val_accuracy=peak.val_accuracy if peak else None,
        best_epoch=best_epoch(run.history),
        test_accuracy=test_accuracy(run),
        seconds=training_seconds(run),
        reviews=run.data.get("reviews") or run.data.get("limit"),
        problem=run.broken or run.error or "",
    )


def run_record(run: RunInfo) -> dict:
    """A run as one JSON object: `python -m core runs --json` prints one a line."""
    return {
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


def listed_runs(root: str | None = None) -> tuple[Path, list[RunInfo]]:
    """The runs folder (IMDB_RUNS, else runs/ when root is None) and its runs, newest first; ValueError for a file."""
    from core.runs.store import RunStore

    store = RunStore(root)
    if store.root.exists() and not store.root.is_dir():
        raise ValueError(f"{store.root} is a file, not a runs folder")
    return store.root, store.list()


def flat_config(config: ExperimentConfig) -> dict[str, object]:
    """Every field of an experiment under a dotted name (model.recurrent_layers[0].units), for comparing two runs."""
    flat: dict[str, object] = {}
    for section, values in config.to_dict().items():
        for name, value in values.items():
            if name == "recurrent_layers":
                for index, layer in enumerate(value):
                    for layer_field, layer_value in layer.items():
                        flat[f"{section}.recurrent_layers[{index}].{layer_field}"] = layer_value
                flat[f"{section}.recurrent_layers (count)"] = len(value)
            else:
                flat[f"{section}.{name}"] = value
    return flat


def config_differences(first: ExperimentConfig, second: ExperimentConfig) -> list[tuple[str, str, str]]:
    """The fields whose values differ between two experiments, sorted by name: (field, first's, second's), "-" for
    a field one of them lacks (fewer recurrent layers)."""
    one, other = flat_config(first), flat_config(second)
    return [
        (name, str(one.get(name, "-")), str(other.get(name, "-")))
        for name in sorted(set(one) | set(other))
        if one.get(name) != other.get(name)
    ]


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of text as aligned columns, the first row a header underlined with dashes; trailing spaces dropped."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def runs_table(runs: list[RunInfo]) -> str:
    """The command line's table of runs: id, status, epochs, peak val accuracy, test accuracy, a note."""
    rows = [("Run", "Status", "Epochs", "Peak val acc", "Test acc", "Note")]
    for run in runs:
        peak = peak_val_accuracy(run.history)
        test = test_accuracy(run)
        rows.append(
            (
                run.run_id,
                run.status,
                f"{run.epochs_done}/{run.epochs_planned or '?'}",
                f"{peak.val_accuracy:.4f}" if peak else "-",
                f"{test:.4f}" if test is not None else "-",
                (f"broken: {run.broken}" if run.broken else run.error or "")[:80],
            )
        )
    return text_table(rows)
