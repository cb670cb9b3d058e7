"""int8 models: the quantized file loads, keeps its metadata, holds a uint8 embedding, and its comparison is honest."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from core import cells
from core.cli import main
from core.config import ExperimentConfig, ModelConfig
from core.scoring.predictor import Predictor
from core.evaluation.metrics import split_summary
from core.export.model_file import ModelFileError
from core.evaluation.int8_comparison import compare_quantized
from core.export.quantize import QUANTIZATION_KEY, QuantizeError, int8_path, quantize_file
from core.data.splits import Split
from core.data.text import RESERVED_WORD, Vocabulary, pad_sequences
from tests.hand_built_file import tiny_metadata

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "imdb_simplernn.onnx"
WORDS = ("good", "bad", "movie", "great", "awful", "plot", "actors", "boring", "loved", "it")
NUM_WORDS, DIM, UNITS, LENGTH = 2000, 16, 8, 20
# Measured on the hand-built SimpleRNN below (weights N(0, 0.5), one scale for the whole table): the largest score
# change over 500 random reviews was 0.023 (the shipped model: 0.102 at most, 0.0022 on average, on real reviews).
SCORE_TOLERANCE = 0.05


def _hand_built(cell: str = "RNN", outlier: float | None = None, seed: int = 0) -> onnx.ModelProto:
    """Gather -> one recurrent op -> Dense(1, sigmoid), the shape of an exported file, written with onnx.helper.

    outlier puts one huge value in the embedding: the table's single int8 scale then gets coarse for every other row.
    """
    generator = np.random.default_rng(seed)

    def normal(*shape):
        return generator.normal(0, 0.5, shape).astype(np.float32)

    entry = cells.by_onnx_op(cell)
    gates = entry.gates
    embedding = normal(NUM_WORDS, DIM)
    if outlier is not None:
        embedding[7, 0] = outlier
    weights = {
        "embedding": embedding,
        "W": normal(1, gates * UNITS, DIM),
        "R": normal(1, gates * UNITS, UNITS),
        "B": normal(1, 2 * gates * UNITS),
        "kernel": normal(UNITS, 1),
        "bias": normal(1),
    }
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([-1, UNITS], np.int64), "state_shape"))
    recurrent_outputs = ["Y", "Y_h"] + (["Y_c"] if entry.has_carry else [])
    attributes = {entry.reset_after_attribute: 1} if entry.reset_after_attribute else {}
    nodes = [
        helper.make_node("Transpose", ["input_ids"], ["time_major"], perm=[1, 0]),
        helper.make_node("Gather", ["embedding", "time_major"], ["vectors"]),
        helper.make_node(cell, ["vectors", "W", "R", "B"], recurrent_outputs, hidden_size=UNITS, **attributes),
        helper.make_node("Reshape", ["Y_h", "state_shape"], ["state"]),
        helper.make_node("MatMul", ["state", "kernel"], ["logit"]),
        helper.make_node("Add", ["logit", "bias"], ["biased"]),
        helper.make_node("Sigmoid", ["biased"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand_built",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "sequence"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    vocabulary = Vocabulary(words=(RESERVED_WORD, *WORDS), num_words=NUM_WORDS)
    metadata = tiny_metadata(
        vocabulary=vocabulary,
        sequence_length=LENGTH,
        config=ExperimentConfig(ModelConfig(vocabulary_size=NUM_WORDS, sequence_length=LENGTH)),
    )
    helper.set_model_props(model, metadata.to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _random_split(reviews: int, seed: int = 3) -> Split:
    """Reviews of random ids and lengths (some longer than LENGTH) with random labels."""
    generator = np.random.default_rng(seed)
    lengths = generator.integers(2, LENGTH + 10, size=reviews)
    values = generator.integers(4, NUM_WORDS, size=int(lengths.sum())).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values[offsets[:-1]] = 1  # every review starts with the start id
    return Split(values, offsets, generator.integers(0, 2, size=reviews).astype(np.int8))


def _scores(path: Path, ids: np.ndarray) -> np.ndarray:
    """Plain onnxruntime, no project code: the reference the comparison is checked against."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probability"], {"input_ids": ids})[0][:, 0]


@pytest.fixture(scope="module")
def rnn_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("quantize")
    float_path = _save(_hand_built("RNN"), folder / "model.onnx")
    return float_path, quantize_file(float_path).path


def test_the_int8_file_goes_beside_the_float_file():
    assert int8_path("runs/a/model.onnx") == Path("runs/a/model.int8.onnx")
    assert int8_path("/tmp/custom.onnx") == Path("/tmp/custom.int8.onnx")


def test_the_quantized_file_loads_keeps_every_metadata_entry_and_says_what_was_quantized(rnn_files):
    float_path, quantized_path = rnn_files
    assert quantized_path == float_path.with_name("model.int8.onnx")
    float_props = {prop.key: prop.value for prop in onnx.load(float_path).metadata_props}
    model = onnx.load(quantized_path)
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert set(props) == set(float_props) | {QUANTIZATION_KEY}
    assert all(props[key] == value for key, value in float_props.items())
    info = json.loads(props[QUANTIZATION_KEY])
    assert info["method"] == "onnxruntime.quantization.quantize_dynamic"
    assert info["weight_type"] == "uint8" and info["per_channel"] is False
    assert [(entry["op"], entry["initializer"], entry["shape"]) for entry in info["quantized"]] == [
        ("Gather", "embedding", [NUM_WORDS, DIM])
    ]
    assert set(info["not_quantized"]) == {"RNN", "MatMul"}
    assert info["float_bytes"] == float_path.stat().st_size
    assert info["int8_bytes"] == quantized_path.stat().st_size
    onnx.checker.check_model(model, full_check=True)
    # Both runtimes load it: plain onnxruntime and the project's Predictor, with the float file's metadata.
    onnxruntime.InferenceSession(str(quantized_path), providers=["CPUExecutionProvider"])
    assert Predictor.from_file(quantized_path).metadata == Predictor.from_file(float_path).metadata


def test_the_embedding_really_is_uint8_and_the_file_smaller(rnn_files):
    float_path, quantized_path = rnn_files
    initializers = {tensor.name: tensor for tensor in onnx.load(quantized_path).graph.initializer}
    assert "embedding" not in initializers, "the float32 table is gone"
    table = initializers["embedding_quantized"]
    assert table.data_type == TensorProto.UINT8 and list(table.dims) == [NUM_WORDS, DIM]
    # Everything else stays float32: the recurrent weights and the Dense kernel.
    assert all(initializers[name].data_type == TensorProto.FLOAT for name in ("W", "R", "B", "kernel"))
    saved = NUM_WORDS * DIM * 3  # four bytes a weight become one
    assert quantized_path.stat().st_size < float_path.stat().st_size - saved * 0.9
    nodes = onnx.load(quantized_path).graph.node
    assert all(node.domain in ("", "ai.onnx") for node in nodes)
    assert {"Gather", "DequantizeLinear", "RNN"} <= {node.op_type for node in nodes}


def test_int8_scores_are_close_to_float_and_do_not_depend_on_the_batch(rnn_files):
    float_path, quantized_path = rnn_files
    ids = pad_sequences([row for row in np.random.default_rng(4).integers(4, NUM_WORDS, (500, LENGTH))], LENGTH)
    float_scores, int8_scores = _scores(float_path, ids), _scores(quantized_path, ids)
    change = np.abs(int8_scores - float_scores)
    assert 0 < change.max() <= SCORE_TOLERANCE, change.max()
    # Only weights are quantized: no activation gets a scale taken from the whole batch (quantizing the Dense layer
    # would, moving a score by about 5e-4 with its batch); what remains is float rounding.
    alone = np.concatenate([_scores(quantized_path, ids[index : index + 1]) for index in range(5)])
    np.testing.assert_allclose(alone, int8_scores[:5], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", cells.RECURRENT_OPS)
def test_every_recurrent_op_stays_float_and_standard(tmp_path, cell):
    float_path = _save(_hand_built(cell), tmp_path / f"{cell}.onnx")
    result = quantize_file(float_path)
    nodes = onnx.load(result.path).graph.node
    # onnxruntime would turn an LSTM into com.microsoft's DynamicQuantizeLSTM; the file keeps the standard op.
    assert [node.op_type for node in nodes if node.op_type in cells.RECURRENT_OPS] == [cell]
    assert all(node.domain in ("", "ai.onnx") for node in nodes)
    assert cell in result.not_quantized and [entry["initializer"] for entry in result.quantized] == ["embedding"]
    Predictor.from_file(result.path)


def test_the_comparison_reports_the_accuracy_change_and_flips_honestly(tmp_path):
    # An outlier makes the table's one scale coarse, so labels do flip and the accuracy does change.
    float_path = _save(_hand_built("RNN", outlier=40.0, seed=2), tmp_path / "coarse.onnx")
    quantized_path = quantize_file(float_path, tmp_path / "out" / "coarse-int8.onnx").path
    split = _random_split(600)
    comparison = compare_quantized(float_path, quantized_path, split, single_repeats=3, batch_size=32, batch_repeats=1)

    ids = split.padded(LENGTH)
    float_labels, int8_labels = _scores(float_path, ids) >= 0.5, _scores(quantized_path, ids) >= 0.5
    truth = split.labels == 1
    float_accuracy, int8_accuracy = np.mean(float_labels == truth), np.mean(int8_labels == truth)
    flips = int(np.count_nonzero(float_labels != int8_labels))
    assert flips > 0 and float_accuracy != int8_accuracy, "the case must exercise both numbers"
    assert comparison.test_n == 600 and comparison.flips == flips
    assert comparison.flip_share == pytest.approx(flips / 600)
    assert comparison.float_accuracy == pytest.approx(float_accuracy)
    assert comparison.int8_accuracy == pytest.approx(int8_accuracy)
    assert comparison.accuracy_change == pytest.approx(int8_accuracy - float_accuracy)
    assert comparison.float_bytes == float_path.stat().st_size
    assert comparison.int8_bytes == quantized_path.stat().st_size
    assert comparison.float_single_ms > 0 and comparison.int8_batch_per_s > 0
    rows = {row["measure"].split(" (")[0]: row for row in comparison.rows()}
    assert rows["test accuracy"]["change"] == f"{int8_accuracy - float_accuracy:+.4f}"
    assert rows["test labels that flip"]["int8"] == f"{flips} of 600"
    assert "test accuracy" in comparison.table() and json.dumps(comparison.to_dict())


def test_without_test_data_the_comparison_has_size_and_speed_only(rnn_files):
    comparison = compare_quantized(*rnn_files, single_repeats=2, batch_size=8, batch_repeats=1)
    assert comparison.test_n == 0 and comparison.accuracy_change is None and comparison.flips is None
    assert [row["measure"].split(" ")[0] for row in comparison.rows()] == ["file", "one", "batch"]


def test_files_that_cannot_be_quantized_get_one_line(tmp_path, rnn_files):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("hello")
    no_embedding = _hand_built("RNN")
    for tensor in no_embedding.graph.initializer:
        if tensor.name == "embedding":  # a table with fewer rows than the vocabulary: not this project's embedding
            tensor.CopyFrom(numpy_helper.from_array(np.zeros((5, DIM), np.float32), "embedding"))
    cases = [
        (tmp_path / "missing.onnx", "no model file at"),
        (not_onnx, "is not an ONNX file"),
        (_save(no_embedding, tmp_path / "odd.onnx"), "has no embedding to quantize"),
        (rnn_files[1], "is already quantized"),
    ]
    for path, message in cases:
        with pytest.raises(ModelFileError, match=message) as caught:
            quantize_file(path, tmp_path / "out.onnx")
        assert "\n" not in str(caught.value)
    with pytest.raises(QuantizeError, match="is the float file itself"):
        quantize_file(rnn_files[0], rnn_files[0])
    assert not (tmp_path / "out.onnx").exists()


def test_cli_quantize_prints_the_table_and_the_int8_path_last(tmp_path, capsys, monkeypatch):
    from tests.browser_support import write_reviews_csv

    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDB_DATA", raising=False)
    model = _save(_hand_built("RNN"), tmp_path / "model.onnx")
    reviews = write_reviews_csv(tmp_path / "reviews.csv", reviews=200)
    assert main(["quantize", "--model", str(model), "--data", str(reviews)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(tmp_path / "model.int8.onnx") and Path(lines[-1]).is_file()
    assert any(line.startswith("quantized: Gather table embedding [2,000 x 16] to uint8") for line in lines)
    assert any(line.startswith("test accuracy (40 reviews)") for line in lines)  # the CSV's fixed 20% test split
    assert any(line.startswith("test labels that flip") for line in lines)

    out = tmp_path / "elsewhere" / "small.onnx"
    assert main(["quantize", "--model", str(model), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == str(out) and out.is_file()
    assert "test accuracy not measured: no test data" in printed and "file size" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quantize", "--model", "{tmp}/missing.onnx"], "error: no model file at"),
        (["quantize", "--model", "{tmp}/notes.txt"], "is not an ONNX file"),
        (["quantize", "--model", "{tmp}/model.onnx", "--data", "{tmp}/nowhere.csv"], "does not exist"),
        (["quantize", "--model", "{tmp}/model.onnx", "--out", "{tmp}/"], "names a folder"),
        (["export", "{tmp}", "--quantize", "int4"], "invalid choice: 'int4'"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "notes.txt").write_text("not a model")
    _save(_hand_built("RNN"), tmp_path / "model.onnx")
    assert main([part.replace("{tmp}", str(tmp_path)) for part in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("error:") and message in captured.err
    assert not (tmp_path / "model.int8.onnx").exists(), "a mistake leaves no file behind"


@pytest.mark.slow
def test_cli_export_quantize_writes_both_files_and_prints_both_paths(tmp_path, capsys, monkeypatch):
    from tests.small_inputs import write_keras_run

    monkeypatch.delenv("IMDB_DATA", raising=False)  # the run's data is random ids: accuracy cannot be measured
    run_dir = write_keras_run(tmp_path / "run-1")
    assert main(["export", str(run_dir), "--quantize", "int8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == [str(run_dir / "model.onnx"), str(run_dir / "model.int8.onnx")]
    assert any(line.startswith("file size") for line in lines)
    assert "test accuracy not measured: no test data (give --data or set IMDB_DATA)" in lines
    float_model, int8_model = Predictor.from_run(run_dir), Predictor.from_file(run_dir / "model.int8.onnx")
    assert int8_model.metadata == float_model.metadata
    text = "A moving, beautifully acted film."
    assert int8_model.predict(text)[0].score == pytest.approx(float_model.predict(text)[0].score, abs=SCORE_TOLERANCE)


@pytest.mark.slow
def test_export_page_quantizes_shows_the_table_and_offers_both_files(tmp_path_factory, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.browser_support import APP, tiny_exported_run

    run = tiny_exported_run(tmp_path_factory.mktemp("quantize-page"))
    monkeypatch.setenv("IMDB_RUNS", str(run.parent))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    app.switch_page("views/export.py").run()
    assert not app.exception, app.exception
    assert "Download model.int8.onnx" not in [button.proto.label for button in app.get("download_button")]
    app.button(key="export_quantize").click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    table = next(frame.value for frame in app.dataframe if "measure" in frame.value.columns).set_index("measure")
    measures = [name.split(" (")[0] for name in table.index]
    assert measures[:3] == ["file size", "one review of 60 ids", "batch of 1,024"]
    assert "test accuracy" in measures and "test labels that flip" in measures  # the run's own CSV of reviews
    accuracy = table.loc[next(name for name in table.index if name.startswith("test accuracy"))]
    assert accuracy["change"] == f"{float(accuracy['int8']) - float(accuracy['float32']):+.4f}"
    labels = [button.proto.label for button in app.get("download_button")]
    assert "Download model.onnx" in labels and "Download model.int8.onnx" in labels
    assert (run / "model.int8.onnx").is_file()


@pytest.mark.data
def test_the_shipped_model_loses_little_accuracy_on_real_reviews(imdb_archive, tmp_path):
    from core.data.load import load_dataset, split_for_vocabulary

    float_model = Predictor.from_file(SHIPPED)
    dataset = load_dataset(imdb_archive, num_words=float_model.metadata.vocabulary.num_words)
    split, exact = split_for_vocabulary(dataset, float_model.metadata.vocabulary)
    assert exact
    sample = split.subset(np.arange(0, len(split), 8))  # 3,125 reviews, both labels
    quantized = quantize_file(SHIPPED, tmp_path / "shipped.int8.onnx")
    assert quantized.int8_bytes < 0.35 * quantized.float_bytes
    comparison = compare_quantized(SHIPPED, quantized.path, sample, single_repeats=5, batch_size=64, batch_repeats=1)
    int8_model = Predictor.from_file(quantized.path)
    # Honest: the reported change is the difference of the two files' own evaluations on the same reviews.
    expected = split_summary(int8_model, sample)["accuracy"] - split_summary(float_model, sample)["accuracy"]
    assert comparison.accuracy_change == pytest.approx(expected)
    # Measured on all 24,996 test reviews: 0.8447 -> 0.8441 (-0.0006), 50 labels flipped (0.20%), largest score
    # change 0.102, mean 0.0022. The bounds allow a sample of an eighth to land a little worse.
    assert abs(comparison.accuracy_change) <= 0.005
    assert comparison.flip_share <= 0.01
    assert comparison.mean_score_change <= 0.005
    assert comparison.float_accuracy == pytest.approx(split_summary(float_model, sample)["accuracy"])


def test_quantizing_and_comparing_never_load_tensorflow(rnn_files, tmp_path):
    script = (
        "import sys\n"
        "from core.evaluation.int8_comparison import compare_quantized\n"
        "from core.export.quantize import quantize_file\n"
        f"result = quantize_file({str(rnn_files[0])!r}, {str(tmp_path / 'again.onnx')!r})\n"
        f"compare_quantized({str(rnn_files[0])!r}, result.path, single_repeats=1, batch_size=4, batch_repeats=1)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
