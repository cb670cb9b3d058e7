"""What a comparison is: one row a model, the table people read, and its compare.json file (written by core.evaluation.compare)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from core.atomic import write_bytes
from core.runs.table import text_table

COMPARISON_FILE = "compare.json"


@dataclass(frozen=True)
class ComparisonRow:
    """One model of a comparison, with what its run folder and its exported file measure."""

    name: str  # the preset the run's model is, else its cells (lstm-gru)
    run_id: str
    run_dir: str
    status: str  # finished or cancelled
    parameters: int
    epochs_run: int
    # The peak validation accuracy (core.history.peak_val_accuracy): the highest of any epoch, which need not be the
    # best epoch (lowest val loss). The key keeps its name in compare.json.
    best_val_accuracy: float | None
    best_val_epoch: int | None  # the epoch of that peak, from 1 (not the best epoch)
    test_accuracy: float | None  # after the last epoch (or the restored best one), on the whole test split
    test_n: int
    seconds_per_epoch: float | None  # median of epoch_seconds when measured, else fit time / epochs
    epoch_seconds: tuple[float, ...]  # each epoch's wall time, when compare trained the run itself
    latency_ms: float | None  # median time of one review of sequence_length ids through the exported file
    file_bytes: int | None  # size of the exported .onnx file
    onnx_path: str | None
    history: dict  # {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}
    problem: str | None = None  # why a measure is missing (the export failed, ...)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["epoch_seconds"] = list(self.epoch_seconds)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ComparisonRow":
        known = {item.name for item in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["epoch_seconds"] = tuple(values.get("epoch_seconds") or ())
        return cls(**values)


@dataclass(frozen=True)
class Comparison:
    """Models side by side, in the order asked for; notes say where their data or budget differ."""

    rows: tuple[ComparisonRow, ...]
    created: str  # ISO 8601, UTC
    notes: tuple[str, ...] = ()
    latency_input: str = ""  # what one timed review is, for people

    def to_dict(self) -> dict:
        return {
            "created": self.created,
            "latency_input": self.latency_input,
            "notes": list(self.notes),
            "rows": [row.to_dict() for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        return cls(
            rows=tuple(ComparisonRow.from_dict(row) for row in data["rows"]),
            created=data["created"],
            notes=tuple(data.get("notes") or ()),
            latency_input=data.get("latency_input", ""),
        )

    def table(self) -> str:
        """The side-by-side table, for people."""
        header = ("Model", "Params", "Epochs", "Peak val acc", "Test acc", "s/epoch", "Latency ms", "Size KiB", "Run")
        lines = [header]
        for row in self.rows:
            peak = "-" if row.best_val_accuracy is None else f"{row.best_val_accuracy:.4f} (epoch {row.best_val_epoch})"
            lines.append(
                (
                    row.name,
                    f"{row.parameters:,}",
                    str(row.epochs_run),
                    peak,
                    _number(row.test_accuracy, "{:.4f}"),
                    _number(row.seconds_per_epoch, "{:.1f}"),
                    _number(row.latency_ms, "{:.3f}"),
                    _number(None if row.file_bytes is None else row.file_bytes / 1024, "{:,.0f}"),
                    row.run_id,
                )
            )
        text = [text_table(lines)]
        if self.latency_input:
            text.append(f"latency: {self.latency_input}")
        text += [f"note: {row.name}: {row.problem}" for row in self.rows if row.problem]
        text += [f"note: {note}" for note in self.notes]
        return "\n".join(text)


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def comparison_path(folder: str | Path) -> Path:
    return Path(folder) / COMPARISON_FILE


def save_comparison(comparison: Comparison, folder: str | Path) -> Path:
    """Write folder/compare.json atomically; returns its path."""
    path = comparison_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, json.dumps(comparison.to_dict(), indent=2).encode("utf-8"))
    return path


def load_comparison(folder: str | Path) -> Comparison | None:
    """The comparison saved in folder, or None when there is none or it cannot be read."""
    try:
        data = json.loads(comparison_path(folder).read_text(encoding="utf-8"))
        return Comparison.from_dict(data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None
