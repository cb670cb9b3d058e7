"""The shipped default model: native RNN graph, complete metadata, and its stated accuracy on the real test split."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from core import paths
from core.export.passes.batched_rnn import steps_always
from core.export.passes.clean_rows import has_clean_rows_path
from core.data.load import load_dataset
from core.scoring.predictor import METADATA_KEYS, Predictor
from core.export.model_file import has_steps_switch, positive
from core.export.graph import op_counts

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    if not paths.DEFAULT_MODEL.is_file():
        pytest.fail(f"{paths.DEFAULT_MODEL} is missing: rebuild it with make default-model")
    return Predictor.from_file(paths.DEFAULT_MODEL)


def test_the_shipped_file_is_the_masked_seed_with_one_native_rnn_node_and_no_loop():
    model = onnx.load(str(paths.DEFAULT_MODEL))
    # The steps switch (issue 12): a plain run takes the path without step outputs, with_steps=True the whole graph.
    assert has_steps_switch(model) and [i.name for i in model.graph.input] == ["input_ids", "with_steps"]
    # On each path one SimpleRNN layer: an RNN node for single reviews, a Scan for batches, one If choosing between
    # them; one more If chooses the path; on the plain path, one If sends clean batches to their own Scan
    # (core.export.passes.clean_rows).
    assert op_counts(model)["If"] == 4
    assert has_clean_rows_path(model)
    whole = onnx.ModelProto()
    whole.CopyFrom(model)
    assert steps_always(whole)
    counts = op_counts(whole)
    assert (counts.get("RNN"), counts.get("Scan"), counts.get("If")) == (1, 1, 1)
    assert not {"Loop", "GRU", "LSTM"} & set(counts)
    assert [o.name for o in model.graph.output] == ["probability", "step_probability"]
    # The weights, and the clean-rows path's table (the embedding folded into the kernel: 1.3 MB).
    assert paths.DEFAULT_MODEL.stat().st_size < 3_000_000
    props = {p.key: p.value for p in model.metadata_props}
    assert set(METADATA_KEYS) <= set(props)
    config = json.loads(props["config"])
    assert config["model"]["recurrent_layers"] == [
        {"cell": "simple_rnn", "units": 32, "dropout": 0.0, "recurrent_dropout": 0.0}
    ]
    assert (config["model"]["vocabulary_size"], config["model"]["embedding_dim"]) == (10_000, 32)
    assert config["model"]["mask_padding"] is True  # issue 6: the masked seed was the more accurate one
    assert float(props["parity_max_abs_diff"]) <= 1e-5
    assert json.loads(props["padding_skip"])["method"] == "sequence_lens"


@pytest.mark.data
def test_test_split_accuracy_is_at_least_082_and_equals_the_metadata(shipped, imdb_archive):
    metadata = shipped.metadata
    dataset = load_dataset(imdb_archive, num_words=metadata.vocabulary.num_words)
    assert dataset.vocabulary.words == metadata.vocabulary.words, "the model's vocabulary is the archive's training split"
    ids = dataset.test.padded(metadata.sequence_length, "pre", "pre")
    scores = shipped.probabilities(ids)
    accuracy = float(np.mean(positive(scores, metadata.threshold) == (dataset.test.labels == 1)))
    assert len(ids) == 24_996
    assert accuracy >= 0.82
    assert abs(accuracy - metadata.metrics["test_accuracy"]) <= 0.002


def test_the_readme_standalone_script_is_the_tested_file_and_agrees_with_the_predictor(shipped):
    script = (ROOT / "examples" / "classify_standalone.py").read_text()
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert script in blocks, "README's standalone script must be examples/classify_standalone.py verbatim"
    texts = ["A moving, beautifully acted film.", "Dull and far too long; I walked out.", "Don't<br />miss it"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "classify_standalone.py"), str(paths.DEFAULT_MODEL), *texts],
        capture_output=True, text=True, timeout=60, check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line, prediction in zip(lines, shipped.predict(texts), strict=True):
        assert line["label"] == prediction.label
        assert line["score"] == pytest.approx(prediction.score, abs=1e-6)


def test_the_shipped_text_file_is_the_text_file_of_the_shipped_model(tmp_path):
    from core.export.text_file import text_path, write_text_file

    shipped_text = text_path(paths.DEFAULT_MODEL)
    assert shipped_text.name == "imdb_simplernn.text.onnx" and shipped_text.is_file()
    rebuilt = write_text_file(paths.DEFAULT_MODEL, tmp_path / "rebuilt.text.onnx")
    assert rebuilt.path.read_bytes() == shipped_text.read_bytes(), "make the file again: python -m core text-file"


def test_the_readme_text_file_script_is_the_tested_file_and_agrees_with_the_predictor(shipped):
    script = ROOT / "examples" / "classify_text.py"
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert script.read_text() in blocks, "README's text-file script must be examples/classify_text.py verbatim"
    from core.export.model_file import text_path

    texts = ["A moving, beautifully acted film.", "Dull and far too long; I walked out.", "Don\u2019t<br />MISS it", "🙂"]
    by_arguments = subprocess.run(
        [sys.executable, str(script), str(text_path(paths.DEFAULT_MODEL)), *texts],
        capture_output=True, text=True, timeout=60, check=True,
    )
    by_lines = subprocess.run(
        [sys.executable, str(script), str(text_path(paths.DEFAULT_MODEL))],
        input="\n".join(texts[:3]) + "\n", capture_output=True, text=True, timeout=60, check=True,
    )
    lines = [json.loads(line) for line in by_arguments.stdout.splitlines()]
    assert [json.loads(line) for line in by_lines.stdout.splitlines()] == lines[:3]
    assert lines[3] == {"label": None, "score": lines[3]["score"], "tokens": 0}, "no word read: no label"
    for line, prediction in zip(lines[:3], shipped.predict(texts[:3]), strict=True):
        assert (line["label"], line["tokens"]) == (prediction.label, prediction.tokens)
        assert line["score"] == pytest.approx(prediction.score, abs=1e-5)
