"""Where things live by default: the project's own folders, each overridable by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = PROJECT_ROOT / "models" / "imdb_simplernn.onnx"


def data_source() -> str | None:
    """The review data named by IMDB_DATA, or None (then Keras's imdb.npz download is used)."""
    value = os.environ.get("IMDB_DATA", "").strip()
    return value or None


def cache_dir() -> Path:
    """Tokenized-array cache: IMDB_CACHE, else .cache/data in the project (never beside the data)."""
    value = os.environ.get("IMDB_CACHE", "").strip()
    return Path(value) if value else PROJECT_ROOT / ".cache" / "data"


def runs_dir() -> Path:
    """Run folders: IMDB_RUNS, else runs/ in the project."""
    value = os.environ.get("IMDB_RUNS", "").strip()
    return Path(value) if value else PROJECT_ROOT / "runs"
