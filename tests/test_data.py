"""Every data source (aclImdb folders and archives, CSVs, Keras offline), the cache, read_reviews, every DataError."""

import os
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.data import load as data
from core.data.load import DataError, Review, describe_source, load_dataset, read_reviews, split_for_vocabulary
from core.data.text import OOV_ID, START_ID, Vocabulary, tokenize

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ("great", "wonderful", "moving", "brilliant", "superb")
NEGATIVE = ("awful", "boring", "dull", "terrible", "waste")
COMMON = ("the", "film", "was", "and", "plot", "actors", "story")
TEST_ONLY_WORD = "zyzzyvatestonly"


def _review(split: str, label: int, index: int) -> str:
    """A synthetic review: a label's words, common words, and a word only the test split has."""
    random = np.random.RandomState(index * 4 + label * 2 + (split == "test"))
    words = list(random.choice(COMMON, 12)) + list(random.choice(POSITIVE if label else NEGATIVE, 4))
    if split == "test":
        words.append(TEST_ONLY_WORD)
    return f"Review {index}: " + " ".join(words).capitalize() + ".<br /><br />Didn't I say so?"


def _write_aclimdb(parent: Path, per_label: int = 12) -> Path:
    root = parent / "aclImdb"
    for split in ("train", "test"):
        for label_folder, label in (("neg", 0), ("pos", 1)):
            folder = root / split / label_folder
            folder.mkdir(parents=True)
            for index in range(per_label):
                rating = (index % 4 + 1) if label == 0 else (index % 4 + 7)
                (folder / f"{index}_{rating}.txt").write_text(_review(split, label, index), encoding="utf-8")
    return root


def _add_original_extras(root: Path) -> None:
    """The other members of Stanford's aclImdb_v1.tar.gz, which must all be ignored."""
    (root / "train" / "unsup").mkdir()
    for index in range(5):
        (root / "train" / "unsup" / f"{index}_0.txt").write_text("unlabelled unsupword " * 20, encoding="utf-8")
    for split in ("train", "test"):
        (root / split / "labeledBow.feat").write_text("0 9:1 12:2\n", encoding="utf-8")
        (root / split / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0000001/usercomments\n")
        (root / split / "urls_neg.txt").write_text("http://www.imdb.com/title/tt0000002/usercomments\n")
    (root / "train" / "unlabeledBow.feat").write_text("0 1:1\n")
    (root / "train" / "urls_unsup.txt").write_text("http://www.imdb.com/title/tt0000003/usercomments\n")
    (root / "imdbEr.txt").write_text("0.0490\n0.2010\n")
    (root / "imdb.vocab").write_text("the\nand\nunsupword\n")
    (root / "README").write_text("Large Movie Review Dataset v1.0\n")


def _tar(folder: Path, archive: Path, mode: str = "w:gz") -> Path:
    with tarfile.open(archive, mode) as out:
        out.add(folder, arcname=folder.name)
    return archive


@pytest.fixture(scope="module")
def aclimdb(tmp_path_factory) -> Path:
    return _write_aclimdb(tmp_path_factory.mktemp("folder"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, aclimdb) -> Path:
    return _tar(aclimdb, tmp_path_factory.mktemp("archive") / "aclImdb_small.tar.gz")


@pytest.fixture()
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def _assert_same(first, second):
    assert first.vocabulary == second.vocabulary
    for name in ("train", "test"):
        one, other = getattr(first, name), getattr(second, name)
        np.testing.assert_array_equal(one.values, other.values)
        np.testing.assert_array_equal(one.offsets, other.offsets)
        np.testing.assert_array_equal(one.labels, other.labels)
        np.testing.assert_array_equal(one.names, other.names)


# ---- Stanford's layout ----------------------------------------------------------------------------------------------


def test_folder_gives_both_splits_with_a_training_only_vocabulary(aclimdb, cache):
    dataset = load_dataset(aclimdb, num_words=30, cache_dir=cache)
    assert (dataset.kind, dataset.source, dataset.location) == ("stanford", f"Stanford folder {aclimdb}", str(aclimdb))
    assert len(dataset.train) == len(dataset.test) == 24
    assert dataset.train.labels.sum() == dataset.test.labels.sum() == 12
    assert dataset.train.values.dtype == np.int32 and dataset.train.labels.dtype == np.int8
    # The test-only word never reached the vocabulary: it is out-of-vocabulary in every test review.
    assert TEST_ONLY_WORD not in dataset.vocabulary.words
    assert all(OOV_ID in dataset.test.ids(i) for i in range(len(dataset.test)))
    for split in (dataset.train, dataset.test):
        assert split.values.max() < 30
        assert all(split.ids(i)[0] == START_ID for i in range(len(split)))
    expected_names = {f"train/neg/{i}_{i % 4 + 1}.txt" for i in range(12)} | {
        f"train/pos/{i}_{i % 4 + 7}.txt" for i in range(12)
    }
    assert set(dataset.train.names) == expected_names


def test_folder_parent_and_archives_give_the_same_dataset(aclimdb, archive, tmp_path, cache):
    expected = load_dataset(aclimdb, num_words=30, cache_dir=cache)
    _assert_same(load_dataset(aclimdb.parent, num_words=30, cache_dir=cache), expected)
    _assert_same(load_dataset(archive, num_words=30, cache_dir=cache), expected)
    for name, mode in (("small.tgz", "w:gz"), ("small.tar", "w"), ("small.tar.bz2", "w:bz2")):
        _assert_same(load_dataset(_tar(aclimdb, tmp_path / name, mode), num_words=30, cache_dir=cache), expected)


def test_original_stanford_archive_ignores_unsup_feat_urls_and_readme(tmp_path, aclimdb, cache):
    root = _write_aclimdb(tmp_path / "original")
    _add_original_extras(root)
    original = _tar(root, tmp_path / "aclImdb_v1.tar.gz")
    names = tarfile.open(original).getnames()
    assert any("/unsup/" in name for name in names) and any(name.endswith(".feat") for name in names)
    dataset = load_dataset(original, num_words=30, cache_dir=cache)
    assert "unsupword" not in dataset.vocabulary.words and "unlabelled" not in dataset.vocabulary.words
    _assert_same(dataset, load_dataset(aclimdb, num_words=30, cache_dir=cache))
    # The extracted original folder, extras and all, reads the same way.
    _assert_same(load_dataset(root, num_words=30, cache_dir=cache), dataset)


def test_training_order_is_a_fixed_shuffle_and_test_order_is_sorted(aclimdb, cache):
    dataset = load_dataset(aclimdb, num_words=30, cache_dir=cache)
    train_names = list(dataset.train.names)
    canonical = sorted(train_names, key=lambda name: ("pos" in name, int(name.rsplit("/", 1)[1].split("_")[0])))
    order = np.random.RandomState(113).permutation(len(canonical))
    assert train_names == [canonical[i] for i in order]
    # validation_split takes the tail: both labels must be there.
    tail = dataset.train.labels[-len(dataset.train) // 5 :]
    assert 0 < tail.sum() < len(tail)
    test_names = list(dataset.test.names)
    assert test_names[:3] == ["test/neg/0_1.txt", "test/neg/1_2.txt", "test/neg/2_3.txt"]
    assert dataset.test.labels.tolist() == [0] * 12 + [1] * 12
    assert list(load_dataset(aclimdb, num_words=30, cache_dir=cache / "other").train.names) == train_names


def test_read_reviews_matches_the_dataset_order_and_encoding(aclimdb, archive, cache):
    for source in (aclimdb, archive):
        dataset = load_dataset(source, num_words=30, cache_dir=cache)
        for split_name in ("train", "test"):
            split = getattr(dataset, split_name)
            reviews = read_reviews(source, split_name)
            assert [review.name for review in reviews] == list(split.names)
            assert [review.label for review in reviews] == split.labels.tolist()
            for index, review in enumerate(reviews):
                # The raw text encodes to exactly the ids the dataset holds: one code path for both.
                assert dataset.vocabulary.encode(review.text).ids == split.ids(index).tolist()
        picked = [str(dataset.test.names[5]), str(dataset.test.names[2])]
        reviews = read_reviews(source, "test", picked)
        assert [review.name for review in reviews] == picked
        first = reviews[0]
        assert first.text == (aclimdb / first.name).read_text(encoding="utf-8")
        assert first.rating == int(first.name.rsplit("_", 1)[1].removesuffix(".txt"))
        assert isinstance(first, Review)


def test_split_for_vocabulary_encodes_the_raw_text_again_or_maps_ids(aclimdb, cache):
    dataset = load_dataset(aclimdb, num_words=30, cache_dir=cache)
    same, exact = split_for_vocabulary(dataset, dataset.vocabulary)
    assert same is dataset.test and exact
    other = Vocabulary.build([["zyzzyvatestonly", "film", "great"]], num_words=10)
    encoded, exact = split_for_vocabulary(dataset, other)
    reviews = read_reviews(aclimdb, "test")
    assert exact
    assert [encoded.ids(i).tolist() for i in range(len(encoded))] == [other.encode(r.text).ids for r in reviews]
    assert encoded.labels.tolist() == dataset.test.labels.tolist()
    # Without raw text (Keras's imdb.npz), ids go word by word: words the other vocabulary lacks become OOV.
    mapped, exact = split_for_vocabulary(replace(dataset, location=None), other)
    assert not exact and mapped.values.max() < other.num_words
    for index in range(2):
        words = dataset.vocabulary.decode(dataset.test.ids(index))
        expected = [word if word in other.words or word == "<start>" else "<unk>" for word in words]
        assert other.decode(mapped.ids(index)) == expected


@pytest.mark.parametrize(
    "name", ["test/pos/999_9.txt", "train/pos/0_7.txt", "test/pos/../../../etc/passwd.txt", "/test/pos/0_7.txt", "x"]
)
def test_read_reviews_refuses_a_name_not_in_the_split(aclimdb, archive, name):
    for source in (aclimdb, archive):
        with pytest.raises(DataError, match="no review named"):
            read_reviews(source, "test", [name])


def test_read_reviews_of_keras_and_a_bad_split_are_errors(monkeypatch, aclimdb):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    with pytest.raises(DataError, match="no raw review text"):
        read_reviews(None, "train")
    with pytest.raises(ValueError, match="split must be"):
        read_reviews(aclimdb, "validation")


def test_decoding_reads_invalid_utf8_with_replacement(tmp_path, cache):
    root = _write_aclimdb(tmp_path, per_label=2)
    (root / "train" / "pos" / "0_7.txt").write_bytes(b"caf\xe9 great \xff\xfe film")
    dataset = load_dataset(root, num_words=30, cache_dir=cache)
    review = read_reviews(root, "train", ["train/pos/0_7.txt"])[0]
    assert review.text == "caf\ufffd great \ufffd\ufffd film"
    assert tokenize(review.text) == ["caf", "great", "film"]
    assert len(dataset.train) == 4


# ---- Stanford errors ------------------------------------------------------------------------------------------------


def _one_line_error(source, match, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as caught:
        load_dataset(source, num_words=30, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_missing_path_and_unknown_layouts_are_data_errors(tmp_path, cache):
    _one_line_error(tmp_path / "nowhere.tar.gz", "does not exist", cache_dir=cache)
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(tmp_path / "notes.txt", "not a known data layout", cache_dir=cache)
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "not a known data layout", cache_dir=cache)
    (tmp_path / "imdb.npz").write_bytes(b"PK")
    _one_line_error(tmp_path / "imdb.npz", r"\.keras/datasets", cache_dir=cache)
    _one_line_error("   ", "empty", cache_dir=cache)


def test_folder_missing_a_split_or_a_label_folder(tmp_path, cache):
    root = _write_aclimdb(tmp_path / "nosplit", per_label=2)
    for review in (root / "test" / "neg").iterdir():
        review.unlink()
    _one_line_error(root, "no reviews in test/neg", cache_dir=cache)
    (root / "test" / "neg").rmdir()
    _one_line_error(root, "no test/neg folder", cache_dir=cache)
    for folder in (root / "test").rglob("*"):
        if folder.is_file():
            folder.unlink()
    (root / "test" / "pos").rmdir()
    (root / "test").rmdir()
    _one_line_error(root.parent, "no test/neg folder", cache_dir=cache)


def test_truncated_and_corrupt_archives(archive, tmp_path, cache):
    content = archive.read_bytes()
    for cut in (len(content) // 2, len(content) - 10, 100):
        truncated = tmp_path / f"cut{cut}.tar.gz"
        truncated.write_bytes(content[:cut])
        _one_line_error(truncated, "truncated or corrupt", cache_dir=cache)
    corrupt = bytearray(content)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = bytes(64)
    (tmp_path / "corrupt.tar.gz").write_bytes(bytes(corrupt))
    _one_line_error(tmp_path / "corrupt.tar.gz", "truncated or corrupt", cache_dir=cache)
    (tmp_path / "garbage.tgz").write_bytes(os.urandom(5000))
    _one_line_error(tmp_path / "garbage.tgz", "truncated or corrupt", cache_dir=cache)


def test_archive_without_reviews_or_missing_a_label(tmp_path, cache):
    other = tmp_path / "other"
    (other / "docs").mkdir(parents=True)
    (other / "docs" / "a.txt").write_text("not a review")
    _one_line_error(_tar(other, tmp_path / "other.tar.gz"), "no reviews found", cache_dir=cache)
    root = _write_aclimdb(tmp_path / "partial", per_label=2)
    for review in (root / "train" / "pos").iterdir():
        review.unlink()
    _one_line_error(_tar(root, tmp_path / "partial.tar.gz"), "no reviews in train/pos", cache_dir=cache)


def test_num_words_must_leave_room_for_a_word(aclimdb):
    for bad in (0, 4, 10.0, True):
        with pytest.raises(ValueError, match="num_words"):
            load_dataset(aclimdb, num_words=bad)


# ---- CSV ------------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_csv_with_labels_in_every_spelling_and_a_fixed_80_20_split(tmp_path, cache):
    labels = ["positive", "Negative", "POS", "neg", "1", "0", " 1 ", "negative", "Positive", "0"]
    rows = "".join(f'"Review {i}, ""quoted""<br />line two",{label}\n' for i, label in enumerate(labels))
    path = _write_csv(tmp_path / "mine.csv", "review,sentiment\n" + rows + "\n")
    dataset = load_dataset(path, num_words=50, cache_dir=cache)
    assert (dataset.kind, dataset.source) == ("csv", f"CSV {path}")
    assert (len(dataset.train), len(dataset.test)) == (8, 2)
    positive = ("positive", "pos", "1")
    expected = {f"row {i + 1}": int(label.strip().lower() in positive) for i, label in enumerate(labels)}
    for split in (dataset.train, dataset.test):
        assert {str(n): int(l) for n, l in zip(split.names, split.labels)}.items() <= expected.items()
    again = load_dataset(path, num_words=50, cache_dir=cache / "fresh")
    _assert_same(again, dataset)
    reviews = read_reviews(path, "train")
    assert [review.name for review in reviews] == list(dataset.train.names)
    assert reviews[0].text.startswith("Review ") and '"quoted"' in reviews[0].text and reviews[0].rating is None


def test_csv_split_column_bom_long_fields_and_text_column(tmp_path, cache):
    long_review = "superb " * 40_000  # 280 KB, above the csv module's default field limit
    path = _write_csv(
        tmp_path / "split.csv",
        "\ufeffid,body,label,split\n"
        f'1,"{long_review}",1,train\n'
        '2,"multi\nline awful",0,TRAIN\n'
        "3,great,1,test\n"
        "4,dull,0,Test\n",
    )
    dataset = load_dataset(path, num_words=20, cache_dir=cache, text_column="body")
    assert (len(dataset.train), len(dataset.test)) == (2, 2)
    assert sorted(dataset.train.names) == ["row 1", "row 2"]
    assert dataset.test.names.tolist() == ["row 3", "row 4"]
    assert max(dataset.train.lengths()) == 40_001
    assert dataset.vocabulary.words[1] == "superb"
    assert [review.text for review in read_reviews(path, "test", ["row 4"], text_column="body")] == ["dull"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"text,label\n", "no reviews found"),
        (b"text,label\n\"caf\xe9\",1\n", "not UTF-8"),
        (b"body,label\nfine,1\n", "no text column: expected 'text' or 'review', found 'body', 'label'"),
        (b"text,stars\nfine,1\n", "no label column"),
        (b"text,label\ngood,1\nbad,maybe\n", r"row 2 \(line 3\), column 'label': 'maybe' is not a label"),
        (b"text,label,split\ngood,1,train\nbad,0,dev\n", r"row 2 \(line 3\), column 'split': 'dev' is not a split"),
        (b"text,label,split\ngood,1,train\nbad,0,train\n", "no test reviews"),
        (b"text,label\ngood\n", r"row 1 \(line 2\) has 1 fields"),
        (b"text,label\nonly one,1\n", "needs at least two"),
        (b"text,label\nbad\x00byte,1\n", "NUL byte on line 2"),
        (b'text,label\n"never closed,1\n', "cannot be parsed"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, cache, content, match):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    message = _one_line_error(path, match, cache_dir=cache)
    assert str(path) in message


def test_binary_garbage_csv_is_a_data_error(tmp_path, cache):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(np.random.RandomState(0).randint(0, 256, 4000, dtype=np.uint8)))
    _one_line_error(path, "CSV", cache_dir=cache)


# ---- the cache ------------------------------------------------------------------------------------------------------


def test_second_load_hits_the_cache_with_the_same_arrays(archive, cache, monkeypatch):
    before = sorted(p.name for p in archive.parent.iterdir())
    messages = []
    first = load_dataset(archive, num_words=30, cache_dir=cache, progress=lambda f, m: messages.append((f, m)))
    fractions = [fraction for fraction, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    assert sorted(p.name for p in archive.parent.iterdir()) == before  # nothing written beside the data

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(data, "_read_source", no_reading)
    messages.clear()
    second = load_dataset(archive, num_words=30, cache_dir=cache, progress=lambda f, m: messages.append((f, m)))
    assert messages == [(1.0, "loaded from the cache")]
    _assert_same(second, first)
    assert (second.source, second.kind, second.location) == (first.source, first.kind, first.location)
    # The file loads without pickle: every array in it is plain numbers or strings.
    with np.load(files[0], allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)


def test_cache_key_follows_num_words_and_the_data(tmp_path, cache):
    root = _write_aclimdb(tmp_path / "data", per_label=3)
    load_dataset(root, num_words=30, cache_dir=cache)
    load_dataset(root, num_words=40, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    (root / "train" / "pos" / "99_9.txt").write_text("brand new review", encoding="utf-8")
    changed = load_dataset(root, num_words=30, cache_dir=cache)
    assert len(changed.train) == 7
    assert len(list(cache.glob("*.npz"))) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "inconsistent"])
def test_a_corrupt_cache_file_is_rebuilt(archive, cache, damage):
    first = load_dataset(archive, num_words=30, cache_dir=cache)
    (file,) = cache.glob("*.npz")
    if damage == "garbage":
        file.write_bytes(b"not an npz at all")
    elif damage == "truncated":
        file.write_bytes(file.read_bytes()[:1000])
    else:
        with np.load(file, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        arrays["test_offsets"] = arrays["test_offsets"][:-1]
        with open(file, "wb") as out:
            np.savez(out, **arrays)
    rebuilt = load_dataset(archive, num_words=30, cache_dir=cache)
    _assert_same(rebuilt, first)
    with np.load(file, allow_pickle=False) as stored:
        assert len(stored["test_offsets"]) == len(first.test) + 1


def test_default_cache_folder_is_imdb_cache(aclimdb, tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "env-cache"))
    load_dataset(aclimdb, num_words=30)
    assert len(list((tmp_path / "env-cache").glob("stanford-*.npz"))) == 1


def test_an_unwritable_cache_folder_does_not_stop_loading(aclimdb, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    assert len(load_dataset(aclimdb, num_words=30, cache_dir=blocker / "cache").train) == 24


# ---- sources by name ------------------------------------------------------------------------------------------------


def test_imdb_data_is_the_default_source_and_describe_source_reads_nothing(archive, aclimdb, monkeypatch, tmp_path):
    monkeypatch.setenv("IMDB_DATA", str(archive))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    assert load_dataset(num_words=30).source == f"Stanford archive {archive}"
    assert describe_source().startswith(f"Stanford archive {archive} (")
    assert describe_source(aclimdb.parent).startswith(f"Stanford folder {aclimdb}")
    monkeypatch.delenv("IMDB_DATA")
    assert "Keras" in describe_source(None)
    with pytest.raises(DataError, match="does not exist"):
        describe_source(tmp_path / "missing")


def test_subset_keeps_names_and_ids(aclimdb, cache):
    split = load_dataset(aclimdb, num_words=30, cache_dir=cache).train
    part = split.subset(np.array([3, 0]))
    assert part.names.tolist() == [split.names[3], split.names[0]]
    assert part.ids(0).tolist() == split.ids(3).tolist() and part.labels.tolist() == [split.labels[3], split.labels[0]]


def test_keras_source_offline_ends_with_one_clear_line(tmp_path):
    # A fresh process, so that Keras reads KERAS_HOME (an empty folder: no cached imdb.npz) when it is imported.
    environment = {k: v for k, v in os.environ.items() if k != "IMDB_DATA"}
    environment.update(KERAS_HOME=str(tmp_path / "keras"), IMDB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    script = (
        "from core.data.load import DataError, load_dataset\n"
        "try:\n    load_dataset(None)\nexcept DataError as error:\n    print('DataError:', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, cwd=ROOT, timeout=120
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("DataError:")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout + result.stderr
    assert lines[0] == "DataError: " + data.KERAS_OFFLINE_MESSAGE
    assert "IMDB_DATA" in lines[0] and "aclImdb_v1.tar.gz" in lines[0] and "~/.keras/datasets" in lines[0]


# ---- the real archive -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(imdb_archive, tmp_path_factory):
    cache = tmp_path_factory.mktemp("real-cache")
    start = time.perf_counter()
    dataset = load_dataset(imdb_archive, cache_dir=cache)
    first_seconds = time.perf_counter() - start
    return dataset, cache, first_seconds


@pytest.mark.data
def test_real_archive_counts_and_labels(real):
    dataset, _, first_seconds = real
    assert (len(dataset.train), len(dataset.test)) == (24_996, 24_996)
    assert np.bincount(dataset.train.labels).tolist() == [12_498, 12_498]
    assert np.bincount(dataset.test.labels).tolist() == [12_500, 12_496]
    assert first_seconds < 30, f"first load took {first_seconds:.1f} s"
    for split in (dataset.train, dataset.test):
        assert split.values.max() < 10_000 and split.values.min() >= 0
        assert (split.values[split.offsets[:-1]] == START_ID).all()
    tail = dataset.train.labels[-len(dataset.train) // 5 :]
    assert 0.45 < tail.mean() < 0.55


@pytest.mark.data
def test_real_archive_vocabulary_is_built_from_train_only(real, imdb_archive):
    dataset, _, _ = real
    train = read_reviews(imdb_archive, "train")
    assert [review.name for review in train[:100]] == dataset.train.names[:100].tolist()
    assert Vocabulary.build((tokenize(review.text) for review in train), 10_000) == dataset.vocabulary
    assert dataset.vocabulary.words[1:5] == ("the", "and", "a", "of")
    assert dataset.vocabulary.id_of("the") == 4


@pytest.mark.data
def test_real_archive_cached_reload_is_fast_and_identical(real, imdb_archive):
    dataset, cache, _ = real
    start = time.perf_counter()
    again = load_dataset(imdb_archive, cache_dir=cache)
    seconds = time.perf_counter() - start
    _assert_same(again, dataset)
    assert seconds < 2, f"cached load took {seconds:.2f} s"
    picked = read_reviews(imdb_archive, "test", [str(dataset.test.names[7])])[0]
    assert dataset.vocabulary.encode(picked.text).ids == dataset.test.ids(7).tolist()
