"""Odd inputs and failures through core and the CLI: odd reviews and files, two trainings, a full disk, load, property
tests, the cache."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import atomic
from core.runs import store as runs
from core.cli import main
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, TrainConfig
from core.data.load import DataError, load_dataset
from core.data.cache import KEEP_PER_KIND, cache_file, prune_cache, read_cache, write_cache
from core.scoring.predictor import Predictor, model_path
from core.runs.store import RunStore
from core.data.splits import Dataset, Split
from core.data.text import RESERVED_WORD, Vocabulary, tokenize
from tests.hand_built_file import SEQUENCE_LENGTH, build_model  # a hand-built .onnx file: no TensorFlow needed

PROJECT = Path(__file__).resolve().parent.parent
ONE_MEGABYTE = 1_000_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def predictor(tiny_model) -> Predictor:
    return Predictor.from_file(tiny_model)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(item) for item in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- reviews: odd text through the Predictor and `python -m core predict` --------------------------------------------

ODD_REVIEWS = {
    "one megabyte": "good movie " * (ONE_MEGABYTE // 11),
    "only unknown words": "zyzzyva quixotry flibbertigibbet",
    "non-English and emoji": "Ce film était magnifique ! 東京物語は素晴らしい \U0001f600\U0001f44d Отличный фильм",
    "HTML and script": "<b>good</b> movie<br /><script>alert('x')</script><img src=x onerror=alert(1)>",
    "control characters": "good\x00movie\x07\x1b[31m bad\r\nplot\x7f\u200b\ufeff",
}


@pytest.mark.parametrize("name", ODD_REVIEWS)
def test_odd_reviews_are_classified_by_the_cli(tiny_model, capsys, name):
    status, out, err = run_cli(capsys, "predict", "--model", tiny_model, ODD_REVIEWS[name])
    assert status == 0, err
    (line,) = out.splitlines()
    result = json.loads(line)
    assert result["label"] in ("negative", "positive") and 0.0 <= result["score"] <= 1.0
    assert result["truncated"] == (result["tokens"] + 1 > SEQUENCE_LENGTH)


def test_odd_reviews_through_the_predictor(predictor):
    started = time.perf_counter()
    huge, unknown, foreign, html, control = predictor.predict(list(ODD_REVIEWS.values()))
    assert time.perf_counter() - started < 5  # a megabyte is tokenized, then cut to the sequence length
    assert huge.truncated and huge.tokens == 2 * (ONE_MEGABYTE // 11)
    assert unknown.tokens == unknown.unknown_tokens == 3
    assert foreign.tokens > 0 and foreign.unknown_tokens == foreign.tokens
    # Markup is text: its words are counted as words, nothing is interpreted.
    assert html.tokens == len(tokenize(ODD_REVIEWS["HTML and script"])) and html.tokens > 5
    assert control.tokens >= 3
    for prediction in (huge, unknown, foreign, html, control):
        assert 0.0 <= prediction.score <= 1.0


@pytest.mark.parametrize("text", ["", " ", "  \t\n  "])
def test_an_empty_review_exits_2_with_one_line(tiny_model, capsys, text):
    status, out, err = run_cli(capsys, "predict", "--model", tiny_model, text)
    assert_one_error_line(status, out, err, "review is empty")


# ---- CSV files -------------------------------------------------------------------------------------------------------

GARBAGE = bytes(np.random.RandomState(0).randint(0, 256, 4000, dtype=np.uint8))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text\ncafé très bien\n".encode("latin-1"), "is not UTF-8 text"),
        (b"title,body\nA,good\n", "has no text or review column"),
        (b"", "is empty"),
        (GARBAGE, "not"),
        (b"text\ngood\x00movie\n", "binary"),
        (b"text\nfine\n" + GARBAGE, "not"),
    ],
    ids=["latin-1", "no text column", "empty", "binary garbage", "NUL byte", "garbage after a good row"],
)
def test_predict_csv_mistakes_exit_2_and_write_nothing(tiny_model, capsys, tmp_path, content, message):
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    out = tmp_path / "out" / "predictions.jsonl"
    status, stdout, err = run_cli(capsys, "predict", "--model", tiny_model, "--csv", path, "--out", out)
    assert_one_error_line(status, stdout, err, message)
    assert not out.exists() and not list(out.parent.glob(".*"))


@pytest.mark.parametrize("label", ["2", "-1", "0.5", "yes", "", "POSITIVE!"])
def test_the_data_loader_refuses_labels_outside_0_1_and_negative_positive(tmp_path, label):
    path = tmp_path / "reviews.csv"
    path.write_text(f"text,label\ngood film,1\nbad film,{label}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'label': .* is not a label; use 0/1"):
        load_dataset(path, num_words=20, cache_dir=tmp_path / "cache")


def _write_one_million_rows(path: Path) -> None:
    words = np.array("good bad great awful movie plot actors boring loved it the a was and film story".split())
    generator = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as out:
        out.write("id,text\n")
        for start in range(0, 1_000_000, 100_000):
            picks = words[generator.integers(0, len(words), size=(100_000, 8))]
            out.writelines(f"{start + row},{' '.join(picks[row])}\n" for row in range(100_000))


# Runs a command as its child and prints that child's peak resident memory, so no other test's process is counted.
PEAK_MEMORY = (
    "import resource, subprocess, sys\n"
    "finished = subprocess.run(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, finished.returncode)\n"
)


@pytest.mark.slow
def test_a_million_row_csv_streams_in_bounded_memory(tmp_path):
    # The shipped model: its graph skips the padding, so eight-word reviews run nine steps, not 500.
    reviews = tmp_path / "million.csv"
    _write_one_million_rows(reviews)
    out = tmp_path / "predictions.jsonl"
    command = [sys.executable, "-m", "core", "predict", "--csv", str(reviews)]
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, *command, "--out", str(out)],
        cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True, text=True, timeout=600,
    )
    seconds = time.perf_counter() - started
    printed_path, measured = finished.stdout.strip().splitlines()[-2:]  # the command prints the --out path last
    peak_kib, status = map(int, measured.split())
    print(f"1,000,000 rows: {seconds:.1f} s, peak memory {peak_kib / 1024:.0f} MiB")
    assert status == 0 and printed_path == str(out), finished.stderr
    assert peak_kib * 1024 < 1_000_000_000
    with open(out, encoding="utf-8") as lines:
        count = 0
        for count, line in enumerate(lines, start=1):
            if count in (1, 1_000_000):
                record = json.loads(line)
                assert record["row"] == count and record["label"] in ("negative", "positive")
    assert count == 1_000_000
    assert seconds < 240


# ---- configs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"recurrent_layers": [{"units": 0}]}, "units"),
        ({"recurrent_layers": [{"units": -8}]}, "units"),
        ({"vocabulary_size": 9}, "vocabulary_size"),
        ({"vocabulary_size": 200_001}, "vocabulary_size"),
        ({"sequence_length": 5_001}, "sequence_length"),
        ({"recurrent_layers": [{"units": 8}] * 9}, "recurrent_layers"),
        ({"recurrent_layers": [{"dropout": 1.0}]}, "dropout"),
        ({"recurrent_layers": [{"recurrent_dropout": -0.1}]}, "recurrent_dropout"),
        ({"embedding_size": 32}, "embedding_size"),
    ],
)
def test_a_bad_config_file_exits_2_naming_the_field(capsys, tmp_path, model, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": model}))
    for command in ("summary", "train"):
        status, out, err = run_cli(capsys, command, "--config", path)
        assert_one_error_line(status, out, err, field)


# ---- model files through the CLI -------------------------------------------------------------------------------------


def test_foreign_and_external_data_onnx_files_exit_2(capsys, tmp_path):
    foreign = tmp_path / "foreign.onnx"
    onnx.save(build_model(metadata=False), foreign)
    status, out, err = run_cli(capsys, "predict", "--model", foreign, "good")
    assert_one_error_line(status, out, err, "not one exported by this project")
    external = tmp_path / "external.onnx"
    onnx.save(build_model(), external, save_as_external_data=True, location="weights.bin", size_threshold=0)
    status, out, err = run_cli(capsys, "predict", "--model", external, "good")
    assert_one_error_line(status, out, err, "external data file")


# ---- faults: two trainings, a full disk ------------------------------------------------------------------------------


def _toy_dataset(reviews: int = 40) -> Dataset:
    generator = np.random.default_rng(0)
    vocabulary = Vocabulary(words=(RESERVED_WORD, *[f"w{i}" for i in range(1, 27)]), num_words=30)

    def split() -> Split:
        labels = generator.integers(0, 2, reviews)
        ids = [[1, *generator.integers(4, 30, 6).tolist(), 4 + int(label)] for label in labels]
        return Split.from_lists(ids, labels)

    return Dataset("toy reviews", "csv", vocabulary, split(), split())


TOY_MODEL = ModelConfig(
    vocabulary_size=30, sequence_length=10, embedding_dim=4, recurrent_layers=(RecurrentLayerConfig(units=4),)
)
TOY_TRAIN = TrainConfig(epochs=2, batch_size=8, learning_rate=0.01)

HOLD_THE_LOCK = (
    "import sys, time\n"
    "from core.runs.store import RunStore\n"
    "with RunStore(sys.argv[1]).training_lock():\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def test_a_second_training_into_the_same_runs_folder_is_refused_and_writes_nothing(capsys, tmp_path):
    from core.training.trainer import train

    root = tmp_path / "runs"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(root)],
        cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(path.name for path in root.iterdir())
        # Another process: the command line says so before it spends time loading data.
        status, out, err = run_cli(capsys, "train", "--runs", root, "--data", tmp_path / "not-read.csv")
        assert_one_error_line(status, out, err, f"another training is running in {root}", "--runs")
        with pytest.raises(ValueError, match="another training is running"):
            train(TOY_MODEL, TOY_TRAIN, _toy_dataset(), store=RunStore(root))
        assert sorted(path.name for path in root.iterdir()) == before == [runs.LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops the lock of a dead process: the folder is free again.
    with RunStore(root).training_lock():
        pass


def test_two_threads_cannot_hold_the_training_lock_at_once(tmp_path):
    store = RunStore(tmp_path)
    refusals = []

    def second_training() -> None:
        try:
            with store.training_lock():
                pass
        except ValueError as error:
            refusals.append(str(error))

    with store.training_lock():
        thread = threading.Thread(target=second_training)
        thread.start()
        thread.join()
    assert len(refusals) == 1 and "another training is running" in refusals[0]
    second_training()  # released: now it is free
    assert len(refusals) == 1


def test_a_full_disk_while_creating_a_run_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(ValueError, match="No space left on device; free some space or choose another --runs"):
        RunStore(tmp_path).create(ExperimentConfig(TOY_MODEL, TOY_TRAIN), _toy_dataset().vocabulary, {})
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_predictions_leaves_no_file(tiny_model, capsys, monkeypatch, tmp_path):
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text\ngood movie\nbad plot\n", encoding="utf-8")
    out = tmp_path / "predictions.jsonl"
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    status, stdout, err = run_cli(capsys, "predict", "--model", tiny_model, "--csv", reviews, "--out", out)
    assert_one_error_line(status, stdout, err, "no space left on device")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reviews.csv"]


@pytest.mark.slow
def test_a_full_disk_in_the_middle_of_training_fails_the_run_cleanly(monkeypatch, tmp_path):
    from core.training.trainer import TrainingCallbacks, train

    real_fsync = os.fsync
    full = threading.Event()
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: no_space() if full.is_set() else real_fsync(fd))

    def fill_the_disk(epoch, logs):  # after epoch 1's history is saved; its checkpoint finds the disk full
        full.set()

    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint/epoch-0001\.weights\.h5: No space left on device"):
        train(TOY_MODEL, replace(TOY_TRAIN, epochs=3), _toy_dataset(), TrainingCallbacks(on_epoch_end=fill_the_disk),
              store=store)
    (run,) = store.list()
    # Even the failed status could not be written: run.json was moved aside, so the run reads as failed, not running.
    assert (run.path / runs.UNWRITABLE_RECORD).exists() and not (run.path / runs.RUN_FILE).exists()
    assert run.status == "failed" and run.error == runs.UNWRITABLE_MESSAGE and run.broken is None
    assert run.epochs_done == 1 and run.data["source"] == "toy reviews"
    assert not [path.name for path in run.path.rglob(".*") if path.name.endswith((".tmp", ".keras", ".h5"))]
    assert run.checkpoint_epoch is None, "no half-written checkpoint is taken for one"
    full.clear()
    with store.training_lock():  # and a new training may start
        pass


# ---- load ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sixteen_threads_share_the_shipped_predictor_for_10_seconds():
    from core.data.examples import EXAMPLE_REVIEWS

    shared = Predictor.from_file(model_path())
    texts = [text for _, text in EXAMPLE_REVIEWS]
    batches = [texts[:1], texts[1:2], texts, texts * 8]
    expected = [shared.predict(batch) for batch in batches]
    errors, calls = [], [0] * 16
    deadline = time.monotonic() + 10  # thousands of calls a thread on these 2 cores

    def work(worker: int) -> None:
        index = worker
        try:
            while time.monotonic() < deadline:
                got = shared.predict(batches[index % len(batches)])
                if got != expected[index % len(batches)]:
                    errors.append(f"thread {worker}: batch {index % len(batches)} differs")
                    return
                calls[worker] += 1
                index += 1
        except Exception as error:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(f"thread {worker}: {error!r}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"16 threads, 10 s: {sum(calls):,} predict calls, fewest in one thread {min(calls)}")
    assert not errors
    assert min(calls) > 0


# ---- property tests --------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text())
def test_predictor_scores_lie_in_0_1_and_repeat_exactly(predictor, text):
    if not text.strip():
        with pytest.raises(ValueError, match="review is empty"):
            predictor.predict(text)
        return
    (first,) = predictor.predict(text)
    (again,) = predictor.predict([text])
    assert 0.0 <= first.score <= 1.0 and first == again


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
LAYER_FIELDS = ("cell", "units", "dropout", "recurrent_dropout")
MODEL_FIELDS = tuple(ModelConfig.__dataclass_fields__)
TRAIN_FIELDS = tuple(TrainConfig.__dataclass_fields__)


def _near(names: tuple[str, ...], values) -> st.SearchStrategy:
    """Objects with the real field names (and now and then an unknown one), so parsing gets past the key check."""
    return st.dictionaries(st.sampled_from(names + ("unknown",)), values, max_size=len(names))


SMALL_VALUES = (
    st.integers(-2, 300) | st.floats(-1, 2) | st.booleans() | st.none()
    | st.sampled_from(["simple_rnn", "lstm", "gru", "pre", "post", "adam", "rmsprop", "sgd", ""])
)
NEAR_CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "model": _near(MODEL_FIELDS, SMALL_VALUES | st.lists(_near(LAYER_FIELDS, SMALL_VALUES), max_size=10)),
        "train": _near(TRAIN_FIELDS, SMALL_VALUES),
    },
)


@settings(max_examples=400, deadline=None)
@given(data=JSON_VALUES | NEAR_CONFIGS)
def test_config_parsing_returns_a_valid_config_or_raises_value_error(data):
    try:
        config = ExperimentConfig.from_dict(data)
    except ValueError:
        return
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config


# ---- the tokenized-data cache ----------------------------------------------------------------------------------------


def test_the_cache_keeps_only_the_most_recently_used_entries_of_each_kind(tmp_path):
    dataset = _toy_dataset()
    files = []
    for number in range(KEEP_PER_KIND + 3):
        key = f"csv source {number}"
        file = cache_file(tmp_path, "csv", key)
        write_cache(file, key, dataset)
        os.utime(file, ns=(number * 10**9, number * 10**9))  # a clear order, whatever the clock's resolution
        files.append((file, key))
    stanford = cache_file(tmp_path, "stanford", "archive")
    write_cache(stanford, "archive", replace(dataset, kind="stanford"))
    kept = sorted(path.name for path in tmp_path.glob("csv-*.npz"))
    assert len(kept) == KEEP_PER_KIND
    assert files[-1][0].name in kept and stanford.exists()
    # A hit touches the file, so the next prune keeps it over newer but unused ones.
    survivor, survivor_key = files[-KEEP_PER_KIND]
    assert read_cache(survivor, survivor_key, 30) is not None
    newest_key = "csv source new"
    write_cache(cache_file(tmp_path, "csv", newest_key), newest_key, dataset)
    kept = {path.name for path in tmp_path.glob("csv-*.npz")}
    assert len(kept) == KEEP_PER_KIND and survivor.name in kept and cache_file(tmp_path, "csv", newest_key).name in kept
    assert prune_cache(tmp_path / "missing", "csv") == []
