"""The on-disk cache of tokenized datasets: one .npz per source and vocabulary setting, read back without pickle."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from core.data.splits import Dataset, Split
from core.data.text import Vocabulary

# Bump when the cached arrays or their meaning change: older cache files are then simply not found.
CACHE_FORMAT = "imdb-cache-1"
# Entries kept per source kind: every new vocabulary size or edited CSV adds one, and the archive's are ~50 MB each.
KEEP_PER_KIND = 4


def cache_file(directory: Path, kind: str, key: str) -> Path:
    """Where the dataset of key is cached: one file per key, named after the source kind and the key's hash."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return directory / f"{kind}-{digest}.npz"


def _split_arrays(split_name: str, split: Split) -> dict[str, np.ndarray]:
    names = split.names if split.names is not None else np.zeros(0, dtype=str)
    return {
        f"{split_name}_values": split.values,
        f"{split_name}_offsets": split.offsets,
        f"{split_name}_labels": split.labels,
        f"{split_name}_names": names,
    }


def write_cache(file: Path, key: str, dataset: Dataset) -> None:
    """Save dataset under key; a disk that refuses (read-only, full) is ignored, as the cache only saves time."""
    arrays = {
        "key": np.array(key),
        "source": np.array(dataset.source),
        "kind": np.array(dataset.kind),
        "location": np.array(dataset.location or ""),
        "vocabulary": np.array(json.dumps(dataset.vocabulary.to_dict())),
        **_split_arrays("train", dataset.train),
        **_split_arrays("test", dataset.test),
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as temporary, open(temporary, "wb") as out:
            np.savez(out, **arrays)
    except OSError:
        return
    prune_cache(file.parent, dataset.kind, keep=file)


def prune_cache(directory: Path, kind: str, keep: Path | None = None, limit: int = KEEP_PER_KIND) -> list[Path]:
    """Delete all but the limit most recently used cache files of one source kind (keep is never deleted).

    A cache hit touches its file, so "recently used" is the modification time. Returns the files deleted.
    """
    try:
        entries = []
        for path in directory.glob(f"{kind}-*.npz"):
            try:
                entries.append((path.stat().st_mtime_ns, path.name, path))
            except OSError:
                continue  # removed meanwhile by another process
    except OSError:
        return []
    entries.sort(reverse=True)
    removed = []
    for _, _, path in entries[limit:]:
        if keep is not None and path == keep:
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass  # a read-only cache folder only costs disk space
    return removed


def _cached_split(archive, split_name: str, num_words: int) -> Split:
    values = archive[f"{split_name}_values"]
    offsets = archive[f"{split_name}_offsets"]
    labels = archive[f"{split_name}_labels"]
    names = archive[f"{split_name}_names"]
    consistent = (
        values.dtype == np.int32
        and offsets.dtype == np.int64
        and labels.dtype == np.int8
        and len(offsets) == len(labels) + 1
        and offsets[0] == 0
        and offsets[-1] == len(values)
        and bool(np.all(np.diff(offsets) >= 1))
        and (len(values) == 0 or (int(values.min()) >= 0 and int(values.max()) < num_words))
        and bool(np.all((labels == 0) | (labels == 1)))
        and len(names) in (0, len(labels))
    )
    if not consistent:
        raise ValueError(f"cached {split_name} arrays are inconsistent")
    return Split(values, offsets, labels, names if len(names) else None)


def read_cache(file: Path, key: str, num_words: int) -> Dataset | None:
    """The dataset cached under key, or None when there is none or the file is damaged or inconsistent."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as archive:
            if str(archive["key"][()]) != key:
                return None
            location = str(archive["location"][()])
            dataset = Dataset(
                source=str(archive["source"][()]),
                kind=str(archive["kind"][()]),
                vocabulary=Vocabulary.from_dict(json.loads(str(archive["vocabulary"][()]))),
                train=_cached_split(archive, "train", num_words),
                test=_cached_split(archive, "test", num_words),
                location=location or None,
            )
    # Any unreadable cache file is a miss: the data is read again and the file rewritten.
    except Exception:  # noqa: BLE001
        return None
    try:
        os.utime(file)  # marks it recently used, so prune_cache keeps it
    except OSError:
        pass
    return dataset
