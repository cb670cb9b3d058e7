"""The onnxruntime Predictor on a hand-built file (no TensorFlow): results, batching, threads, CSVs, bad model files."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from core import paths
from core.scoring.predictor import (
    METADATA_KEYS,
    ModelFileError,
    ModelMetadata,
    Prediction,
    Predictor,
    model_path,
    vocabulary_map,
)
from core.data.splits import Split
from core.evaluation.metrics import split_summary
from core.scoring.explanation import trajectory
from core.scoring.files import predict_csv
from core.data.text import RESERVED_WORD, Vocabulary
from tests.float_checks import assert_same_records
from tests.hand_built_file import (
    SEQUENCE_LENGTH,
    VOCABULARY,
    WORDS,
    build_model,
    numpy_steps,
    tiny_metadata,
)

ROOT = Path(__file__).resolve().parent.parent
@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def predictor(model_file) -> Predictor:
    return Predictor.from_file(model_file)


def _padded(text: str) -> np.ndarray:
    """One review pre-padded and pre-truncated, as the file's metadata says."""
    ids = VOCABULARY.encode(text).ids[-SEQUENCE_LENGTH:]
    return np.array([[0] * (SEQUENCE_LENGTH - len(ids)) + ids], dtype=np.int32)


def _expected_score(text: str) -> float:
    return float(numpy_steps(_padded(text))[0, -1])


def test_importing_and_predicting_never_loads_tensorflow(model_file):
    script = (
        "import json, sys\n"
        "from core.scoring.predictor import Predictor\n"
        "from core.scoring.explanation import explain\n"
        "from core.scoring.files import predict_csv\n"
        f"predictor = Predictor.from_file({str(model_file)!r})\n"
        "predictor.predict(['good movie', 'bad plot'])\n"
        "explain(predictor, 'good movie')\n"
        "heavy = sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))\n"
        "print(json.dumps(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_predict_accepts_a_string_or_a_sequence_and_always_returns_a_list(predictor):
    one = predictor.predict("good movie")
    many = predictor.predict(("good movie", "awful boring plot"))
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], Prediction)
    assert len(many) == 2 and many[0] == one[0]
    assert predictor.predict([]) == []


def test_scores_equal_a_numpy_forward_pass_and_labels_follow_the_threshold(predictor):
    texts = ["good movie", "awful boring plot, bad actors", "I loved it!", "zzz unknown words only"]
    for text, prediction in zip(texts, predictor.predict(texts)):
        assert prediction.score == pytest.approx(_expected_score(text), abs=1e-5)
        assert prediction.label == ("positive" if prediction.score >= 0.5 else "negative")


def test_counts_tokens_unknown_words_and_truncation(predictor):
    (short,) = predictor.predict("Good movie, zorblax!")
    assert (short.tokens, short.unknown_tokens, short.truncated) == (3, 1, False)
    (long,) = predictor.predict(" ".join(["good"] * SEQUENCE_LENGTH))
    assert long.tokens == SEQUENCE_LENGTH and long.truncated  # the start id makes it one id too long
    (exact,) = predictor.predict(" ".join(["good"] * (SEQUENCE_LENGTH - 1)))
    assert not exact.truncated
    assert set(short.to_dict()) == {"label", "score", "tokens", "unknown_tokens", "truncated"}


def test_a_review_with_no_words_is_still_classified(predictor):
    (prediction,) = predictor.predict("!!! \U0001f600 ...")
    assert prediction.tokens == 0 and 0.0 <= prediction.score <= 1.0


@pytest.mark.parametrize("texts, message", [("", "review is empty"), ("  \n\t", "review is empty"),
                                             (["good", " "], "review 2 is empty")])
def test_empty_reviews_are_refused(predictor, texts, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(texts)


def test_evaluate_gives_keras_accuracy_and_clipped_cross_entropy(predictor):
    texts = ["good movie", "awful boring plot", "I loved it", "bad actors", "great great great", "boring"]
    labels = [1, 0, 1, 0, 1, 0]
    split = Split.from_lists([VOCABULARY.encode(text).ids for text in texts], labels)
    result = split_summary(predictor, split)
    scores = np.array([_expected_score(text) for text in texts])
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    labels = np.array(labels)
    assert result["n"] == 6
    assert result["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == (labels == 1)))
    cross_entropy = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    assert result["loss"] == pytest.approx(cross_entropy, abs=1e-5)
    with pytest.raises(ValueError, match="no test reviews"):
        split_summary(predictor, Split.from_lists([], []))


def test_big_batches_are_split_across_threads_without_reordering(predictor):
    generator = np.random.default_rng(3)
    ids = generator.integers(0, VOCABULARY.num_words, size=(203, SEQUENCE_LENGTH), dtype=np.int32)
    together = predictor.probabilities(ids, batch_size=16)
    one_by_one = np.concatenate([predictor.probabilities(ids[row : row + 1]) for row in range(len(ids))])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(together, numpy_steps(ids)[:, -1], atol=1e-5)


def test_dynamic_sequence_length_reaches_the_session(predictor):
    ids = np.random.default_rng(4).integers(0, VOCABULARY.num_words, size=(3, 30), dtype=np.int32)
    np.testing.assert_allclose(predictor.probabilities(ids), numpy_steps(ids)[:, -1], atol=1e-5)


def test_sixteen_threads_sharing_one_predictor_get_what_one_thread_gets(predictor):
    texts = [f"{' '.join(WORDS[i % 10 : i % 10 + 3])} review number {i}" for i in range(48)]
    expected = predictor.predict(texts)
    results: dict[int, list] = {}
    errors = []

    def work(worker: int) -> None:
        try:
            for _ in range(5):
                results[worker] = predictor.predict(texts[worker:] + texts[:worker])
        except Exception as error:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for worker, got in results.items():
        assert got == expected[worker:] + expected[:worker]
    assert len(results) == 16


def test_trajectory_gives_one_probability_per_word_ending_at_the_score(predictor):
    text = "Good movie but the plot was boring"
    words, probabilities = trajectory(predictor, text)
    assert words == ["good", "movie", "but", "the", "plot", "was", "boring"]
    assert probabilities.shape == (7,)
    ids = _padded(text)
    np.testing.assert_allclose(probabilities, numpy_steps(ids)[0, -7:], atol=1e-5)
    assert probabilities[-1] == pytest.approx(predictor.predict(text)[0].score, abs=1e-6)


def test_trajectory_of_a_cut_review_keeps_the_words_the_model_read(predictor):
    words = [WORDS[i % len(WORDS)] for i in range(20)]
    kept, probabilities = trajectory(predictor, " ".join(words))
    assert kept == words[-SEQUENCE_LENGTH:] and len(probabilities) == SEQUENCE_LENGTH


def test_trajectory_needs_the_step_output(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(build_model(trajectory=False), path)
    plain = Predictor.from_file(path)
    assert not plain.has_trajectory
    with pytest.raises(ValueError, match="--trajectory"):
        trajectory(plain, "good movie")


def test_metadata_round_trips_through_the_file(predictor):
    written = tiny_metadata()
    assert predictor.metadata == written
    assert ModelMetadata.from_props(written.to_props()) == written
    assert set(written.to_props()) == set(METADATA_KEYS)
    assert predictor.metadata.labels == ("negative", "positive") and predictor.metadata.threshold == 0.5
    assert predictor.metadata.vocabulary.id_of("good") == 4 and predictor.metadata.sequence_length == SEQUENCE_LENGTH
    assert predictor.metadata.metrics["test_accuracy"] == 0.75


def test_post_padding_and_truncation_follow_the_metadata(tmp_path):
    path = tmp_path / "post.onnx"
    onnx.save(build_model(metadata=tiny_metadata(padding="post", truncating="post")), path)
    post = Predictor.from_file(path)
    ids = post.pad([[1, 4, 5], list(range(1, 30))])
    assert ids[0].tolist()[:4] == [1, 4, 5, 0] and ids[1].tolist() == list(range(1, 13))
    words, probabilities = trajectory(post, "good movie")
    assert words == ["good", "movie"] and len(probabilities) == 2


def test_custom_threshold_and_labels_are_used(tmp_path):
    path = tmp_path / "strict.onnx"
    onnx.save(build_model(metadata=tiny_metadata(threshold=1.0, labels=("bad", "good"))), path)
    assert {p.label for p in Predictor.from_file(path).predict(["good movie", "awful plot"])} == {"bad"}


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_predict_csv_streams_rows_in_order_and_reports_empty_ones(predictor, tmp_path):
    rows = [f'"good movie, number {i}"' if i % 7 else '""' for i in range(1, 51)]
    path = _write_csv(tmp_path / "reviews.csv", "id,review\n" + "\n".join(f"{i},{row}" for i, row in enumerate(rows)))
    seen = []
    results = list(predict_csv(predictor, path, chunk_size=8, progress=lambda *report: seen.append(report)))
    assert [result.row for result in results] == list(range(1, 51))
    empty = [result.row for result in results if result.error]
    assert empty == [7, 14, 21, 28, 35, 42, 49]
    assert all(result.prediction is None for result in results if result.error)
    first = results[0]
    assert first.text == "good movie, number 1"
    assert_same_records([first.prediction], predictor.predict(first.text))  # a chunk of 8 against one review
    assert seen[-1] == (1.0, 50) and len(seen) >= 6
    assert [done for _, done in seen] == sorted(done for _, done in seen)


def test_predict_csv_takes_a_named_column_and_long_fields(predictor, tmp_path):
    long_review = "good " * 50_000  # past the csv module's default 128 KiB field limit
    path = _write_csv(tmp_path / "named.csv", f"title,body\nfirst,bad plot\nsecond,{long_review}\n")
    results = list(predict_csv(predictor, path, text_column="body"))
    assert [result.prediction.tokens for result in results] == [2, 50_000]
    assert results[1].prediction.truncated


@pytest.mark.parametrize(
    "content, message",
    [
        ("title,body\na,good\n", "no text or review column"),
        ("", "is empty"),
    ],
)
def test_predict_csv_refuses_unusable_files(predictor, tmp_path, content, message):
    path = _write_csv(tmp_path / "bad.csv", content)
    with pytest.raises(ValueError, match=message):
        list(predict_csv(predictor, path))


def test_predict_csv_refuses_a_missing_column_a_missing_file_and_non_utf8(predictor, tmp_path):
    path = _write_csv(tmp_path / "ok.csv", "text\ngood\n")
    with pytest.raises(ValueError, match="no column 'body'"):
        list(predict_csv(predictor, path, text_column="body"))
    with pytest.raises(ValueError, match="no CSV file"):
        list(predict_csv(predictor, tmp_path / "missing.csv"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\xe9 tr\xe8s bien\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        list(predict_csv(predictor, latin))


def test_vocabulary_map_moves_ids_between_vocabularies():
    other = Vocabulary(words=(RESERVED_WORD, "movie", "good", "unseen"), num_words=40)
    table = vocabulary_map(other, VOCABULARY)
    assert table[other.id_of("movie")] == VOCABULARY.id_of("movie")
    assert table[other.id_of("good")] == VOCABULARY.id_of("good")
    assert table[other.id_of("unseen")] == VOCABULARY.oov_id
    assert table[:3].tolist() == [0, 1, 2]
    assert len(table) == other.num_words


# Bad model files: each one line, each a ModelFileError (a ValueError), before onnxruntime sees anything risky.


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    for name, content in (("text.onnx", b"hello, this is not a model\n" * 20), ("zeros.onnx", bytes(4096))):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelFileError, match="not an ONNX"):
            Predictor.from_file(path)


def test_a_truncated_file_is_refused(tmp_path, model_file):
    path = tmp_path / "cut.onnx"
    content = model_file.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(ModelFileError) as raised:
        Predictor.from_file(path)
    assert "\n" not in str(raised.value)


def test_onnx_without_this_projects_metadata_is_refused(tmp_path):
    path = tmp_path / "foreign.onnx"
    onnx.save(build_model(metadata=False), path)
    with pytest.raises(ModelFileError, match="not one exported by this project"):
        Predictor.from_file(path)


def test_malformed_or_partial_metadata_is_refused(tmp_path):
    model = build_model()
    for prop in model.metadata_props:
        if prop.key == "vocabulary":
            prop.value = "[not json"
    path = tmp_path / "malformed.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelFileError, match="malformed metadata"):
        Predictor.from_file(path)
    model = build_model()
    kept = [prop for prop in model.metadata_props if prop.key != "threshold"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, path)
    with pytest.raises(ModelFileError, match="lacks the metadata threshold"):
        Predictor.from_file(path)


def test_tensors_in_external_files_are_refused_before_onnxruntime_opens_them(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save(build_model(), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    with pytest.raises(ModelFileError, match="external data"):
        Predictor.from_file(path)
    # A crafted file that points its weights at a system file is refused the same way.
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "/etc/passwd"
    onnx.save(model, tmp_path / "crafted.onnx")
    with pytest.raises(ModelFileError, match="external data"):
        Predictor.from_file(tmp_path / "crafted.onnx")


def test_missing_files_folders_and_runs_without_export_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="no model file"):
        Predictor.from_file(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="folder"):
        Predictor.from_file(tmp_path)
    with pytest.raises(ModelFileError, match="python -m core export"):
        Predictor.from_run(tmp_path)


def test_from_run_reads_the_runs_model_onnx(tmp_path, model_file):
    (tmp_path / "model.onnx").write_bytes(model_file.read_bytes())
    assert Predictor.from_run(tmp_path).predict("good")[0].score == pytest.approx(_expected_score("good"), abs=1e-6)


def test_model_path_falls_back_to_the_shipped_default(monkeypatch, tmp_path):
    missing = tmp_path / "models" / "imdb_simplernn.onnx"
    monkeypatch.setattr(paths, "DEFAULT_MODEL", missing)
    with pytest.raises(ModelFileError, match=r"no model at .*python -m core export RUN_DIR"):
        model_path(None)
    assert model_path("chosen.onnx") == Path("chosen.onnx")
    missing.parent.mkdir()
    missing.write_bytes(b"x")
    assert model_path(None) == missing


def test_the_predictor_loads_and_scores_and_nothing_else():
    """Explanations (core.scoring.explanation), CSV files (core.scoring.files) and evaluation
    (core.evaluation.metrics) are their own modules that use a Predictor; the file's facts are its metadata."""
    public = sorted(name for name in vars(Predictor) if not name.startswith("_"))
    assert public == [
        "from_file",
        "from_run",
        "has_trajectory",
        "pad",
        "predict",
        "probabilities",
        "sequence_probabilities",
        "skips_padding",
        "step_probabilities",
    ]
