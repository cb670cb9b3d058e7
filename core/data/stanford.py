"""Stanford's aclImdb layout, {train,test}/{pos,neg}/<id>_<rating>.txt: a folder, or the .tar.gz read in place."""

from __future__ import annotations

import gzip
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.errors import one_line
from core.data.reviews import SOURCE_HELP, SPLITS, DataError, Progress, Review, check_review_size, decode_text

# Review files under any prefix (aclImdb/, ./aclImdb/, none).
_REVIEW_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+\.txt)$")
# A review's name as Split.names and read_reviews use it: relative, so it can never point outside the data.
REVIEW_NAME = re.compile(r"(train|test)/(pos|neg)/([^/]+\.txt)")
_RATING = re.compile(r"^(\d+)_(\d+)\.txt$")
LABEL_FOLDERS = (("neg", 0), ("pos", 1))


def stanford_root(folder: Path) -> Path:
    """The aclImdb folder itself, given it or its parent; every split and label folder must be there."""
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        root = folder
    elif (folder / "aclImdb").is_dir():
        root = folder / "aclImdb"
    else:
        raise DataError(
            f"{folder} is not a known data layout: it holds no aclImdb, train or test folder; {SOURCE_HELP}"
        )
    for split in SPLITS:
        for label_folder, _ in LABEL_FOLDERS:
            if not (root / split / label_folder).is_dir():
                raise DataError(
                    f"aclImdb folder {root} has no {split}/{label_folder} folder: both splits need pos and neg "
                    "folders; extract the whole aclImdb_v1.tar.gz again or pass the archive itself"
                )
    return root


def folder_fingerprint(root: Path) -> dict:
    """What changes when a review file is added, removed or edited: count, total size, newest time."""
    files = size = newest = 0
    for split in SPLITS:
        for label_folder, _ in LABEL_FOLDERS:
            with os.scandir(root / split / label_folder) as entries:
                for entry in entries:
                    stat = entry.stat()
                    files += 1
                    size += stat.st_size
                    newest = max(newest, stat.st_mtime_ns)
    return {"path": str(root), "files": files, "size": size, "mtime_ns": newest}


def _rating(file_name: str) -> int | None:
    match = _RATING.match(file_name)
    return int(match.group(2)) if match else None


def _canonical_order(review: Review) -> tuple:
    # Numeric ids first, so the canonical order reads neg/0_3, neg/1_1, ..., neg/10_2 like the files' own numbering.
    file_name = review.name.rsplit("/", 1)[-1]
    match = _RATING.match(file_name)
    return (review.label, int(match.group(1)) if match else -1, file_name)


def _folder_reviews(root: Path, splits: Sequence[str], report: Progress) -> Iterator[Review]:
    folders = [(split, folder, label) for split in splits for folder, label in LABEL_FOLDERS]
    for step, (split, label_folder, label) in enumerate(folders):
        report(step / len(folders), f"reading {root / split / label_folder}")
        with os.scandir(root / split / label_folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".txt") or not entry.is_file():
                    continue
                name = f"{split}/{label_folder}/{entry.name}"
                check_review_size(entry.stat().st_size, name, root)
                with open(entry.path, "rb") as file:
                    text = decode_text(file.read())
                yield Review(name, text, label, _rating(entry.name))


def _archive_reviews(
    path: Path, splits: Sequence[str], report: Progress, wanted: set[str] | None = None
) -> Iterator[Review]:
    """Stream the review members of a tar archive without extracting; stops early once every wanted name is found."""
    size = max(path.stat().st_size, 1)
    found = 0
    with open(path, "rb") as raw:
        try:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            # Our own GzipFile, read to its end below, checks the CRC and length trailer: tarfile's stream mode
            # would take a truncated .tar.gz that ends between members for a complete one.
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*") as archive:
                for member in archive:
                    match = _REVIEW_MEMBER.search(member.name)
                    if match is None or not member.isfile() or match.group(1) not in splits:
                        continue
                    split, label_folder, file_name = match.groups()
                    name = f"{split}/{label_folder}/{file_name}"
                    if wanted is not None and name not in wanted:
                        continue
                    check_review_size(member.size, name, path)
                    text = decode_text(archive.extractfile(member).read())
                    report(raw.tell() / size, f"reading {path.name}")
                    yield Review(name, text, 1 if label_folder == "pos" else 0, _rating(file_name))
                    found += 1
                    if wanted is not None and found == len(wanted):
                        return
            if gzipped:
                while stream.read(1 << 20):
                    pass
        except DataError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            # zlib.error is not an OSError; it surfaces here as tarfile.ReadError or gzip's BadGzipFile.
            raise DataError(
                f"archive {path} is truncated or corrupt ({one_line(error)}): download aclImdb_v1.tar.gz again"
            ) from None


def stanford_reviews(layout: str, path: Path, splits: Sequence[str], report: Progress) -> dict[str, list[Review]]:
    """Every review of the splits from a folder (layout "folder") or an archive, each split in canonical order."""
    if layout == "folder":
        reviews = _folder_reviews(path, splits, report)
    else:
        reviews = _archive_reviews(path, splits, report)
    by_split: dict[str, list[Review]] = {split: [] for split in splits}
    for review in reviews:
        by_split[review.name.split("/", 1)[0]].append(review)
    if not any(by_split.values()):
        raise DataError(
            f"no reviews found in {path}: expected aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt "
            "files; is this Stanford's aclImdb_v1.tar.gz?"
        )
    for split in splits:
        for label_folder, label in LABEL_FOLDERS:
            if not any(review.label == label for review in by_split[split]):
                raise DataError(
                    f"no reviews in {split}/{label_folder} of {path}: both splits need positive and "
                    "negative reviews; use a complete copy of aclImdb_v1.tar.gz"
                )
    for split in splits:
        by_split[split].sort(key=_canonical_order)
    return by_split


def reviews_by_name(layout: str, path: Path, split: str, names: Sequence[str]) -> dict[str, Review]:
    """The reviews of split with the given names, by name; names that are not review files of split are left out."""
    wanted = {name for name in names if (match := REVIEW_NAME.fullmatch(name)) and match.group(1) == split}
    if layout == "archive":
        reviews = _archive_reviews(path, (split,), lambda fraction, message: None, wanted) if wanted else []
        return {review.name: review for review in reviews}
    found = {}
    for name in wanted:
        file = path / name
        if file.is_file():
            check_review_size(file.stat().st_size, name, path)
            match = REVIEW_NAME.fullmatch(name)
            label = 1 if match.group(2) == "pos" else 0
            found[name] = Review(name, decode_text(file.read_bytes()), label, _rating(match.group(3)))
    return found
