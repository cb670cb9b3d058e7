"""A run folder as one zip to download: its files as they are, and its history as a CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from core.runs.store import (
    CONFIG_FILE,
    HISTORY_FILE,
    HISTORY_KEYS,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILE,
    VOCABULARY_FILE,
    read_run,
)

# What the zip holds of the folder, when present: everything downstream is rebuilt from these.
# model.text.onnx is the export's companion that reads raw reviews (core.export.text_file).
ARCHIVED_FILES = (
    CONFIG_FILE, VOCABULARY_FILE, METRICS_FILE, RUN_FILE, HISTORY_FILE, MODEL_FILE, "model.onnx", "model.text.onnx"
)


def history_csv(history: dict) -> str:
    """A history as CSV: one row an epoch (from 1), the usual metrics first, then others; blank where one is short."""
    columns = [name for name in HISTORY_KEYS if history.get(name)]
    columns += sorted(name for name in history if name not in columns and history.get(name))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["epoch", *columns])
    for epoch in range(max((len(history[name]) for name in columns), default=0)):
        writer.writerow([epoch + 1, *(history[name][epoch] if epoch < len(history[name]) else "" for name in columns)])
    return table.getvalue()


def run_zip(run_dir: str | Path) -> bytes:
    """A zip of a run, under a folder of its name: config, vocabulary, metrics, record, history as JSON and CSV,
    model.keras, model.onnx and model.text.onnx when present."""
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ARCHIVED_FILES:
            if (run_dir / name).is_file():
                archive.write(run_dir / name, f"{run_dir.name}/{name}")
        archive.writestr(f"{run_dir.name}/history.csv", history_csv(read_run(run_dir).history))
    return buffer.getvalue()
