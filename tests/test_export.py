"""ONNX export: native RNN/GRU/LSTM ops and no Loop, Keras parity, dynamic shapes, metadata, trajectory, run folders."""

import json
import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from core import cells
from core.export import convert as export
from core.export import parity
from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, TrainConfig, preset
from core.data.examples import EXAMPLE_REVIEWS
from core.export.convert import ExportError, export_model, export_run
from core.scoring.predictor import METADATA_KEYS, Predictor
from core.scoring.explanation import trajectory
from core.model.build import build_model, model_layers, sequence_copy
from core.export.passes.batched_rnn import steps_always
from core.export.model_file import STEPS_SWITCH_NAME, has_steps_switch
from core.export.passes.native_ops import keras_weights
from core.export.graph import recurrent_nodes_anywhere
from core.data.text import Vocabulary, pad_sequences, tokenize
from tests.float_checks import assert_close

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-5

pytestmark = pytest.mark.slow  # every test here converts real Keras models (a second or more each)


def _config(*cells, hidden=0, dropout=0.0, **changes) -> ModelConfig:
    layers = tuple(RecurrentLayerConfig(cell, 8, dropout=dropout, recurrent_dropout=dropout) for cell in cells)
    values = dict(vocabulary_size=200, sequence_length=40, embedding_dim=8, recurrent_layers=layers)
    values.update(changes)
    return ModelConfig(hidden_dense_units=hidden, **values)


# name -> (model config, trajectory output): every cell, a stack, dropout, the hidden Dense layer.
CASES = {
    "simple_rnn": (_config("simple_rnn"), True),
    "lstm_hidden": (_config("lstm", hidden=4), False),
    "gru_dropout": (_config("gru", dropout=0.3), False),
    "stacked_simple_rnn": (_config("simple_rnn", "simple_rnn", hidden=4), True),
    "stacked_gru_lstm": (_config("gru", "lstm", padding="post", truncating="post"), True),
}


def _vocabulary(num_words: int) -> Vocabulary:
    return Vocabulary.build([tokenize(f"{title} {text}") for title, text in EXAMPLE_REVIEWS], num_words)


def _randomized(model, seed: int = 1):
    """Non-zero biases and larger weights than Keras's initializers give, as training would leave them; drawn here
    alone, so that they do not depend on the global random state other tests leave behind."""
    generator = np.random.default_rng(seed)
    model.set_weights([generator.normal(0, 0.4, weight.shape).astype("float32") for weight in model.get_weights()])
    return model


def _keras_steps(model, config: ModelConfig, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras's probability and its probability after every step, by calling the model's own layers eagerly."""
    embedding, recurrent, head = model_layers(model, config)
    values = embedding(ids)
    for layer in recurrent[:-1]:
        values = layer(values, training=False)
    steps = sequence_copy(recurrent[-1])(values, training=False)
    final = recurrent[-1](values, training=False)
    for layer in head:
        steps, final = layer(steps), layer(final)
    return np.asarray(final)[:, 0], np.asarray(steps)[..., 0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case converted once: (config, keras model, ExportResult)."""
    folder = tmp_path_factory.mktemp("exports")
    results = {}
    for name, (config, trajectory) in CASES.items():
        model = _randomized(build_model(config))
        result = export_model(
            model,
            ExperimentConfig(config),
            _vocabulary(config.vocabulary_size),
            {"test_accuracy": 0.5, "test_loss": 0.69},
            folder / f"{name}.onnx",
            trajectory=trajectory,
        )
        results[name] = (config, model, result)
    return results


def _session(path: Path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", CASES)
def test_one_native_op_per_recurrent_layer_and_no_loop(exported, name):
    config, _, result = exported[name]
    model = onnx.load(result.path)
    assert export.op_counts(model) == result.op_counts
    # A file with step_probability holds two paths (the steps switch): count the whole one.
    assert has_steps_switch(model) == steps_always(model) == CASES[name][1]
    counts = export.op_counts(model)
    for cell in cells.CELLS.values():
        assert counts.get(cell.onnx_op, 0) == sum(layer.cell == cell.name for layer in config.recurrent_layers), counts
    assert "Loop" not in counts
    # A SimpleRNN layer is one If: its RNN node for small batches, a Scan of Gemm + Tanh for big ones.
    simple = sum(layer.cell == "simple_rnn" for layer in config.recurrent_layers)
    assert counts.get("Scan", 0) == counts.get("If", 0) == simple
    branches = [node for node in model.graph.node if node.op_type == "If"]
    for node in branches:
        kinds = {attribute.name: [n.op_type for n in attribute.g.node] for attribute in node.attribute}
        assert kinds["else_branch"] == ["RNN"] and "Scan" in kinds["then_branch"]
    recurrent = recurrent_nodes_anywhere(model.graph)
    gru = [node for node in recurrent if node.op_type == "GRU"]
    assert all(any(a.name == "linear_before_reset" and a.i == 1 for a in node.attribute) for node in gru)


@pytest.mark.parametrize("name", CASES)
def test_onnxruntime_matches_keras_on_fresh_random_ids(exported, name):
    config, model, result = exported[name]
    assert 0 <= result.parity_max_abs_diff <= TOLERANCE
    ids = parity.random_ids(config, 32, seed=7)
    expected = model.predict(ids, verbose=0)
    (got, *_) = _session(result.path).run(["probability"], {"input_ids": ids})
    assert got.shape == (32, 1)
    assert np.max(np.abs(got - expected)) <= TOLERANCE


@pytest.mark.parametrize("name", ["simple_rnn", "stacked_gru_lstm"])
def test_batch_and_sequence_length_are_dynamic(exported, name):
    config, model, result = exported[name]
    session = _session(result.path)
    graph_input = onnx.load(result.path).graph.input[0]
    assert graph_input.name == "input_ids" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert [dim.HasField("dim_value") for dim in graph_input.type.tensor_type.shape.dim] == [False, False]
    skips = export.skips_padding(config)
    generator = np.random.default_rng(5)
    for batch, length in ((1, 3), (5, 17), (2, config.sequence_length + 25), (40, 9)):
        ids = generator.integers(1, config.vocabulary_size, size=(batch, length), dtype=np.int32)
        # A file that skips padding reads a short row as the review padded to sequence_length; others run it as is.
        full = pad_sequences(ids, config.sequence_length, config.padding, config.truncating) if skips else ids
        expected, _ = _keras_steps(model, config, full)
        (got, *_) = session.run(["probability"], {"input_ids": ids})
        assert got.shape == (batch, 1)
        assert np.max(np.abs(got[:, 0] - expected)) <= TOLERANCE


@pytest.mark.parametrize("name", [name for name, (_, trajectory) in CASES.items() if trajectory])
def test_trajectory_output_matches_keras_step_by_step(exported, name):
    config, model, result = exported[name]
    ids = parity.random_ids(config, 16, seed=9)
    expected_final, expected_steps = _keras_steps(model, config, ids)
    # step_probability is computed when asked for with the steps switch (issue 12).
    probability, steps = _session(result.path).run(
        ["probability", "step_probability"], {"input_ids": ids, STEPS_SWITCH_NAME: np.array(True)}
    )
    assert steps.shape == ids.shape
    assert np.max(np.abs(steps - expected_steps)) <= TOLERANCE
    assert np.max(np.abs(steps[:, -1] - probability[:, 0])) <= 1e-6
    assert np.max(np.abs(probability[:, 0] - expected_final)) <= TOLERANCE


@pytest.mark.parametrize("name", [name for name, (_, trajectory) in CASES.items() if trajectory])
def test_a_plain_run_skips_the_steps_that_with_steps_computes(exported, name):
    config, model, result = exported[name]
    ids = parity.random_ids(config, 24, seed=11)
    session = _session(result.path)
    assert [item.name for item in session.get_inputs()] == ["input_ids"]
    probability, steps = session.run(None, {"input_ids": ids})
    assert steps.shape == (24, 0)
    requested, requested_steps = session.run(None, {"input_ids": ids, STEPS_SWITCH_NAME: np.array(True)})
    assert_close(probability, requested)  # the If's two branches are two graphs: equal within float32 rounding
    assert np.max(np.abs(probability[:, 0] - model.predict(ids, verbose=0)[:, 0])) <= TOLERANCE
    assert requested_steps.shape == ids.shape


def test_an_export_without_the_switch_computes_steps_on_every_run_and_scores_the_same(exported, tmp_path):
    config, model, result = exported["stacked_simple_rnn"]
    old = export_model(
        model, ExperimentConfig(config), _vocabulary(config.vocabulary_size), {}, tmp_path / "old.onnx",
        trajectory=True, steps_switch=False,
    )
    assert not has_steps_switch(onnx.load(old.path)) and has_steps_switch(onnx.load(result.path))
    ids = parity.random_ids(config, 40, seed=12)
    probability, steps = _session(old.path).run(None, {"input_ids": ids})
    assert steps.shape == ids.shape
    before, after = Predictor.from_file(old.path), Predictor.from_file(result.path)
    np.testing.assert_allclose(before.probabilities(ids), after.probabilities(ids), atol=1e-6)
    np.testing.assert_allclose(after.probabilities(ids), probability[:, 0], atol=1e-6)
    text = EXAMPLE_REVIEWS[0][1]
    np.testing.assert_allclose(trajectory(before, text)[1], trajectory(after, text)[1], atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_export_writes_a_text_file_that_scores_raw_reviews_as_the_ids_file(exported, name):
    config, _, result = exported[name]
    assert result.text_path == result.path.with_name(f"{name}.text.onnx") and result.text_path.is_file()
    assert result.text_size_bytes == result.text_path.stat().st_size and result.text_max_abs_diff <= TOLERANCE
    onnx.checker.check_model(onnx.load(result.text_path), full_check=True)
    texts = [f"{title}. {text}" for title, text in EXAMPLE_REVIEWS] + ["Don\u2019t<br />GO", "🙂"]
    session = _session(result.text_path)  # plain onnxruntime: strings in
    assert [value.name for value in session.get_inputs()] == ["review"]
    outputs = session.run(["probability", "tokens"], {"review": np.array(texts, dtype=object)})
    vocabulary = _vocabulary(config.vocabulary_size)
    encoded = [vocabulary.encode(text) for text in texts]
    assert outputs[1].tolist() == [item.tokens for item in encoded]
    ids = pad_sequences([item.ids for item in encoded], config.sequence_length, config.padding, config.truncating)
    (expected,) = _session(result.path).run(["probability"], {"input_ids": ids})
    assert_close(outputs[0], expected)  # two graphs: the text file's rows are as wide as the longest review
    metadata = {prop.key: prop.value for prop in onnx.load(result.text_path).metadata_props}
    assert set(METADATA_KEYS) <= set(metadata) and "C.UTF-8" in json.loads(metadata["text_input"])["needs"]


def test_files_without_trajectory_have_one_output(exported):
    _, _, result = exported["lstm_hidden"]
    assert [output.name for output in onnx.load(result.path).graph.output] == ["probability"]


def test_the_file_passes_the_full_checker_and_carries_every_metadata_key(exported):
    config, _, result = exported["simple_rnn"]
    model = onnx.load(result.path)
    onnx.checker.check_model(model, full_check=True)
    assert max(opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")) >= 17
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert set(METADATA_KEYS) <= set(props)
    assert float(props["parity_max_abs_diff"]) == pytest.approx(result.parity_max_abs_diff)
    assert result.size_bytes == result.path.stat().st_size
    umask = os.umask(0o022)
    os.umask(umask)
    assert result.path.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, not mkstemp's 0600


def test_metadata_round_trip_through_the_predictor(exported):
    config, _, result = exported["stacked_gru_lstm"]
    predictor = Predictor.from_file(result.path)
    metadata = predictor.metadata
    assert metadata.vocabulary == _vocabulary(config.vocabulary_size)
    assert metadata.config == ExperimentConfig(config)
    assert metadata.metrics == {"test_accuracy": 0.5, "test_loss": 0.69}
    assert (metadata.sequence_length, metadata.padding, metadata.truncating) == (40, "post", "post")
    assert metadata.labels == ("negative", "positive") and metadata.threshold == 0.5
    assert metadata.parity_max_abs_diff == pytest.approx(result.parity_max_abs_diff)
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"} <= set(metadata.versions)
    assert datetime.fromisoformat(metadata.created).tzinfo is not None
    assert predictor.has_trajectory


@pytest.mark.parametrize("name", ["simple_rnn", "stacked_gru_lstm"])
def test_predictor_scores_and_trajectory_equal_keras_on_example_reviews(exported, name):
    config, model, result = exported[name]
    predictor = Predictor.from_file(result.path)
    texts = [text for _, text in EXAMPLE_REVIEWS]
    ids = predictor.pad([predictor.metadata.vocabulary.encode(text).ids for text in texts])
    expected = model.predict(ids, verbose=0)[:, 0]
    scores = np.array([prediction.score for prediction in predictor.predict(texts)])
    assert np.max(np.abs(scores - expected)) <= TOLERANCE
    short = "A gripping opening, then a lazy and confusing final act."
    words, probabilities = trajectory(predictor, short)
    assert words == tokenize(short) and len(probabilities) == len(words)
    if config.padding == "pre":  # post-padded reviews go on reading pad ids after their last word
        assert probabilities[-1] == pytest.approx(predictor.predict(short)[0].score, abs=1e-6)


def test_the_readme_standalone_script_agrees_with_the_predictor(exported):
    _, _, result = exported["simple_rnn"]
    texts = [text for _, text in EXAMPLE_REVIEWS[:4]] + ["Don\u2019t <br /> watch: BAD, bad-ish film!!"]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "classify_standalone.py"), str(result.path), *texts],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""},
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    predictions = Predictor.from_file(result.path).predict(texts)
    assert [line["label"] for line in lines] == [prediction.label for prediction in predictions]
    assert np.allclose([line["score"] for line in lines], [p.score for p in predictions], atol=1e-5)


def test_weights_read_back_from_the_file_equal_the_models(exported):
    for name in ("lstm_hidden", "gru_dropout", "stacked_simple_rnn", "stacked_gru_lstm"):
        config, model, result = exported[name]
        recovered = keras_weights(onnx.load(result.path), config)
        assert [weight.shape for weight in recovered] == [weight.shape for weight in model.get_weights()]
        assert max(float(np.max(np.abs(a - b))) for a, b in zip(recovered, model.get_weights())) <= 1e-6


def test_a_parity_failure_writes_no_file(monkeypatch, tmp_path):
    config = _config("simple_rnn")
    monkeypatch.setattr(parity, "keras_differences", lambda *args, **kwargs: {"probability": 3e-4})
    with pytest.raises(ExportError, match=r"differs from Keras by 0.0003 .*not written"):
        export_model(build_model(config), ExperimentConfig(config), _vocabulary(200), {}, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "config, message",
    [
        (preset("seed-rnn").model, "only classifiers"),
    ],
)
def test_models_the_exporter_cannot_represent_are_refused(config, message, tmp_path):
    with pytest.raises(ExportError, match=message):
        export.convert(build_model(config), config)


def test_a_vocabulary_from_another_run_is_refused(tmp_path):
    config = _config("simple_rnn")
    with pytest.raises(ExportError, match="different runs"):
        export_model(build_model(config), ExperimentConfig(config), _vocabulary(300), {}, tmp_path / "x.onnx")


# Run folders, as core.runs.store writes them.


def make_run(folder: Path, config: ModelConfig, status: str = "finished", data: dict | None = None) -> Path:
    """A finished run of a few training steps on random ids: config, vocabulary, model, metrics, history, status."""
    folder.mkdir(parents=True)
    experiment = ExperimentConfig(config, TrainConfig(epochs=1, batch_size=16))
    model = build_model(config)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    generator = np.random.default_rng(0)
    ids = generator.integers(1, config.vocabulary_size, size=(64, config.sequence_length), dtype=np.int32)
    history = model.fit(ids, generator.integers(0, 2, 64), epochs=1, batch_size=16, verbose=0)
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(experiment.to_json())
    (folder / "vocab.json").write_text(json.dumps(_vocabulary(config.vocabulary_size).to_dict()))
    curves = {key: [float(value) for value in values] for key, values in history.history.items()}
    data = data or {"source": "synthetic", "kind": "csv", "limit": None, "path": None}
    (folder / "history.json").write_text(json.dumps(curves))
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.61, "test_loss": 0.66, "test_n": 64}))
    (folder / "run.json").write_text(json.dumps({"status": status, "data": data}))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run-1", _config("simple_rnn"))


def test_export_run_writes_model_onnx_in_the_run_by_default(run_dir, monkeypatch):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    result = export_run(run_dir, trajectory=True)
    assert result.path == run_dir / "model.onnx" and result.path.is_file()
    assert result.parity_max_abs_diff <= TOLERANCE
    assert "example reviews" in result.parity_inputs and "random" in result.parity_inputs
    predictor = Predictor.from_run(run_dir)
    assert predictor.metadata.metrics["test_accuracy"] == 0.61 and predictor.has_trajectory
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]


def test_export_run_checks_parity_on_given_reviews_and_writes_where_told(run_dir, tmp_path):
    out = tmp_path / "nested" / "given.onnx"
    result = export_run(run_dir, out, parity_reviews=["good film", "bad plot", "  "])
    assert result.path == out and out.is_file()
    assert result.parity_inputs.startswith("2 given reviews")
    with pytest.raises(ExportError, match="no non-empty review"):
        export_run(run_dir, out, parity_reviews=[" "])
    with pytest.raises(ExportError, match="is a folder"):
        export_run(run_dir, tmp_path)


def test_export_run_refuses_unfinished_or_incomplete_runs(run_dir, tmp_path):
    with pytest.raises(ExportError, match="no run folder"):
        export_run(tmp_path / "missing")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text(ExperimentConfig(_config("simple_rnn")).to_json())
    with pytest.raises(ExportError, match="no vocab.json"):
        export_run(incomplete)
    running = tmp_path / "running"
    running.mkdir()
    for name in ("config.json", "vocab.json", "model.keras", "metrics.json"):
        (running / name).write_bytes((run_dir / name).read_bytes())
    record = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(), "data": {}}
    (running / "run.json").write_text(json.dumps(record))
    with pytest.raises(ExportError, match="still training"):
        export_run(running)


@pytest.mark.data
def test_export_run_checks_parity_on_real_test_reviews(imdb_archive, tmp_path):
    # vocabulary_size 10,000 shares the tokenized-archive cache with the other real-data tests.
    config = _config("simple_rnn", vocabulary_size=10_000, sequence_length=80)
    run = make_run(tmp_path / "real", config, data={"source": "archive", "kind": "stanford", "path": str(imdb_archive)})
    result = export_run(run)
    assert result.parity_inputs.startswith(f"{export.PARITY_REVIEWS} test reviews of")
    assert result.parity_max_abs_diff <= TOLERANCE
