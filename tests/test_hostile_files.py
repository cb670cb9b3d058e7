"""Model files made to harm: external data anywhere, endless loops, huge tensors, answers that are not probabilities.

Each carries the metadata of a real export (anyone can copy it), so it passes every check of the file's contract and
reaches onnxruntime; what it tries must be refused or bounded, in the library and through the CLI, with one line.
"""

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.export.model_file import MEMORY_LIMIT_BYTES, ModelFileError, read_model_file
from core.scoring import run_guard
from core.scoring.predictor import Predictor
from tests.hand_built_file import ANSWER_CONSTANTS, answer_nodes, endless_loop_model, forged_model

ROOT = Path(__file__).resolve().parent.parent


def _save(model, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _external(tensor_name: str) -> onnx.TensorProto:
    """A tensor whose bytes onnxruntime would read from a file beside the working folder's .streamlit/."""
    tensor = numpy_helper.from_array(np.zeros(4, np.uint8), tensor_name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=".streamlit/secrets.toml")
    return tensor


def _cli(*arguments: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_external_data_is_refused_in_functions_subgraphs_and_sparse_attributes(tmp_path):
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    in_function = onnx.FunctionProto(
        name="Leak", domain="hostile", input=[], output=["leaked"], opset_import=[helper.make_opsetid("", 17)]
    )
    in_function.node.append(helper.make_node("Constant", [], ["leaked"], value=_external("secret")))
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["from_branch"], value=_external("secret_in_branch"))],
        "branch", [], [helper.make_tensor_value_info("from_branch", TensorProto.UINT8, [4])],
    )
    sparse = helper.make_sparse_tensor(_external("values"), numpy_helper.from_array(np.array([0], np.int64), "at"), [4])
    cases = {
        "function": forged_model(
            [helper.make_node("Leak", [], ["leaked"], domain="hostile"), *answer_nodes("half")],
            [half, *ANSWER_CONSTANTS], functions=[in_function],
        ),
        "subgraph": forged_model(
            [
                helper.make_node("Constant", [], ["yes"], value=numpy_helper.from_array(np.array(True), "yes")),
                helper.make_node("If", ["yes"], ["branch_out"], then_branch=branch, else_branch=branch),
                *answer_nodes("half"),
            ],
            [half, *ANSWER_CONSTANTS],
        ),
        "sparse attribute": forged_model(
            [helper.make_node("Constant", [], ["dense"], sparse_value=sparse), *answer_nodes("half")],
            [half, *ANSWER_CONSTANTS],
        ),
    }
    for name, model in cases.items():
        path = _save(model, tmp_path, f"{name.replace(' ', '_')}.onnx")
        with pytest.raises(ModelFileError, match="external data file"):
            read_model_file(path)
        done = _cli("predict", "--model", str(path), "a fine film")
        assert done.returncode == 2 and done.stdout == "", name
        assert done.stderr.startswith("error: ") and "external data file" in done.stderr, name
        assert len(done.stderr.strip().splitlines()) == 1, name


def test_answers_that_are_not_one_probability_a_review_are_refused(tmp_path):
    for value, message in ((np.float32(5512.0), "gave 5512.0, not a probability"), (np.float32(np.nan), "gave nan")):
        model = forged_model(answer_nodes("value"), [numpy_helper.from_array(value, "value"), *ANSWER_CONSTANTS])
        path = _save(model, tmp_path, "x.onnx")
        with pytest.raises(ModelFileError, match=message):
            Predictor.from_file(path).predict(["a fine film", "a dull one"])
    wide = forged_model(
        [
            helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
            helper.make_node("Slice", ["ids_shape", "zero_list", "one_list"], ["batch"]),
            helper.make_node("Concat", ["batch", "seven"], ["answer_shape"], axis=0),
            helper.make_node("Expand", ["half", "answer_shape"], ["probability"]),
        ],
        [
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
            numpy_helper.from_array(np.array([7], np.int64), "seven"),
            *ANSWER_CONSTANTS,
        ],
    )
    with pytest.raises(ModelFileError, match="gave 14 values for 2 reviews"):
        Predictor.from_file(_save(wide, tmp_path, "wide.onnx")).predict(["a fine film", "a dull one"])


def test_an_endless_loop_is_stopped_and_the_predictor_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(run_guard.WATCH, "seconds", 1.0)
    predictor = Predictor.from_file(_save(endless_loop_model(), tmp_path, "loop.onnx"))
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"a run took more than 1 s and was stopped"):
        predictor.predict(["a fine film"] * 40)
    assert time.perf_counter() - started < 1.0 + 2 * run_guard.POLL_SECONDS + 1.0
    # A thousand reviews in many runs: refused at once, not one time limit a run.
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"was stopped"):
        predictor.predict(["a fine film"] * 1000)
    assert time.perf_counter() - started < 0.5


@pytest.mark.slow  # waits out the real time limit
def test_predict_on_a_file_with_an_endless_loop_returns_within_a_minute_with_one_line(tmp_path):
    path = _save(endless_loop_model(), tmp_path, "loop.onnx")
    started = time.perf_counter()
    done = _cli("predict", "--model", str(path), "a fine film", timeout=60)
    assert time.perf_counter() - started < 60
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and f"more than {run_guard.RUN_SECONDS:g} s" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_huge_tensor_fails_its_run_within_the_memory_limit(tmp_path):
    fill = numpy_helper.from_array(np.array([1.0], np.float32), "fill")
    huge = forged_model(
        [
            helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"], value=fill),
            helper.make_node("ReduceMean", ["huge"], ["mean"], keepdims=0),
            *answer_nodes("mean"),
        ],
        [numpy_helper.from_array(np.array([50_000, 100_000], np.int64), "huge_shape"), *ANSWER_CONSTANTS],
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(ModelFileError, match="asked for more than the 2 GiB its tensors may use"):
        Predictor.from_file(_save(huge, tmp_path, "huge.onnx")).predict(["a fine film"])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY_LIMIT_BYTES, f"the process grew by {grown / 2**20:,.0f} MB"
