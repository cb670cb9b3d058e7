"""core.scoring.ray: a two-worker Ray Data job scores like the local engine, in order; a failing worker fails it."""

import os
import sys

import onnx

# Before anything imports ray: a local Ray then binds 127.0.0.1, as the CLI's own local Ray does.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.cli import main
from core.scoring.predictor import Predictor
from core.scoring.ray import INSTALL_RAY, input_files, score_on_ray
from core.scoring.table_io import output_schema
from tests.float_checks import assert_same_records
from tests.hand_built_file import build_model

# Ray starts a cluster of processes (seconds) for the module; CI installs ray from requirements-dev.txt.
pytestmark = pytest.mark.slow

WORDS = "great awful boring superb film movie plot acting bad good wonderful dull".split()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray-model") / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of three CPUs on 127.0.0.1: two scoring workers, and the one CPU Ray Data's file listing takes."""
    import ray

    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _texts(count: int, seed: int) -> list[str]:
    import random

    chooser = random.Random(seed)
    return [" ".join(chooser.choice(WORDS) for _ in range(chooser.randint(1, 40))) for _ in range(count)]


@pytest.fixture(scope="module")
def reviews_folder(tmp_path_factory):
    """Three Parquet files of 1,000 reviews in small row groups (many batches for two workers), one empty review."""
    folder = tmp_path_factory.mktemp("ray-input")
    texts = []
    for part in range(3):
        chunk = _texts(1000, part)
        if part == 1:
            chunk[10] = "   "
        table = pa.table({"id": range(1000), "text": chunk})
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=200)
        texts += chunk
    return folder, texts


def _same_table(ray_table: pa.Table, local_table: pa.Table) -> None:
    """Ray's workers score other batches in other processes: the same schema and rows, scores within float32
    rounding."""
    assert ray_table.schema == local_table.schema
    assert_same_records(ray_table.to_pylist(), local_table.to_pylist())


def _predict_each(predictor, texts):
    present = iter(predictor.predict([text for text in texts if text.strip()]))
    return [next(present) if text.strip() else None for text in texts]


def test_a_two_worker_job_scores_every_row_like_the_local_engine_in_order(local_ray, model_file, reviews_folder,
                                                                          tmp_path):
    folder, texts = reviews_folder
    written = score_on_ray(model_file, folder, tmp_path / "scores.parquet", workers=2)
    table = pq.read_table(tmp_path / "scores.parquet")
    assert table.schema == output_schema()
    assert (written.rows, written.failed) == (3000, 1)
    assert table.column("row").to_pylist() == list(range(1, 3001))
    predictor = Predictor.from_file(model_file)
    expected = _predict_each(predictor, texts)
    got = table.to_pylist()
    # The workers score other batches in other processes: scores within float32 rounding, the rest exactly.
    assert_same_records(
        [{key: row[key] for key in ("score", "label", "tokens")} for row in got],
        [{"score": None, "label": None, "tokens": 0} if item is None
         else {"score": item.score, "label": item.label, "tokens": item.tokens} for item in expected],
    )
    assert got[1010]["error"] == "review is empty"
    # The same scores the local engine writes for the same file, row for row.
    local = tmp_path / "local.parquet"
    part = str(folder / "part-1.parquet")
    assert main(["predict", "--model", str(model_file), "--input", part, "--out", str(local)]) == 0
    ray_part = tmp_path / "part-1.parquet"
    score_on_ray(model_file, folder / "part-1.parquet", ray_part, workers=2)
    _same_table(pq.read_table(ray_part), pq.read_table(local))


def test_the_cli_runs_on_ray_and_reads_csv(local_ray, model_file, tmp_path, capsys):
    source = tmp_path / "reviews.csv"
    texts = _texts(500, 7) + ["12345"]
    rows = "".join(f'"{text}",{index}\n' for index, text in enumerate(texts))
    source.write_text("text,id\n" + rows, encoding="utf-8")
    out = tmp_path / "scores.parquet"
    arguments = ["predict", "--model", str(model_file), "--input", str(source), "--out", str(out)]
    assert main([*arguments, "--engine", "ray"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    local = tmp_path / "local.parquet"
    assert main([*arguments[:-1], str(local)]) == 0
    _same_table(pq.read_table(out), pq.read_table(local))  # a text column of digits is still text


def test_a_corrupt_file_among_several_fails_the_job_and_leaves_no_output(local_ray, model_file, reviews_folder,
                                                                         tmp_path):
    folder, _ = reviews_folder
    broken = tmp_path / "broken"
    broken.mkdir()
    for part in ("part-0.parquet", "part-1.parquet"):
        (broken / part).write_bytes((folder / part).read_bytes())
    # The footer stays whole, so the driver plans the job; the pages are garbage, so a worker's read fails.
    data = (folder / "part-2.parquet").read_bytes()
    (broken / "part-2.parquet").write_bytes(data[:4] + b"\x07" * (len(data) // 2) + data[4 + len(data) // 2 :])
    out = tmp_path / "scores.parquet"
    with pytest.raises(ValueError) as raised:
        score_on_ray(model_file, broken, out, workers=2)
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"scoring {broken} on Ray failed: "), message
    assert str(broken / "part-2.parquet") in message, "the failing file is named"
    assert not out.exists() and not list(tmp_path.glob(".scores.parquet*")), "no output that looks complete"
    # A truncated file is found on the driver, before any worker starts.
    (broken / "part-2.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="part-2.parquet is not a readable Parquet file"):
        score_on_ray(model_file, broken, out, workers=2)
    assert not out.exists()


def test_a_model_missing_on_the_workers_fails_the_job_in_one_line(local_ray, reviews_folder, tmp_path, capfd):
    folder, _ = reviews_folder
    out = tmp_path / "scores.parquet"
    missing = tmp_path / "nowhere" / "model.onnx"
    code = main(["predict", "--model", str(missing), "--input", str(folder), "--out", str(out), "--engine", "ray"])
    # capfd, not capsys: Ray Data would log its own traceback straight to the process's stderr.
    error = capfd.readouterr().err.strip()
    assert code == 2 and error.startswith("error: scoring") and str(folder) in error and len(error.splitlines()) == 1
    assert "model.onnx" in error, error
    assert not out.exists() and not list(tmp_path.glob(".scores.parquet*"))


def test_input_files_are_one_format_in_name_order(tmp_path):
    for name in ("b.parquet", "a.parquet", ".hidden.parquet", "_SUCCESS.parquet"):
        (tmp_path / name).write_bytes(b"")
    assert input_files(tmp_path) == ("parquet", [tmp_path / "a.parquet", tmp_path / "b.parquet"])
    (tmp_path / "c.csv").write_text("text\n")
    with pytest.raises(ValueError, match="mixes CSV and Parquet"):
        input_files(tmp_path)
    with pytest.raises(ValueError, match="no input file or folder"):
        input_files(tmp_path / "missing")


def test_without_ray_the_engine_says_how_to_install_it(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    source = tmp_path / "reviews.csv"
    source.write_text("text\ngood\n", encoding="utf-8")
    out = tmp_path / "scores.parquet"
    code = main(["predict", "--model", str(model_file), "--input", str(source), "--out", str(out), "--engine", "ray"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and INSTALL_RAY in error
    assert 'pip install "ray[data]==2.60.0"' in error and not out.exists()


def test_the_command_starts_its_own_local_ray_and_prints_only_the_output(model_file, tmp_path):
    import subprocess
    from pathlib import Path

    source = tmp_path / "reviews.parquet"
    pq.write_table(pa.table({"review": _texts(300, 3)}), source)
    out = tmp_path / "scores.parquet"
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    command = [sys.executable, "-m", "core", "predict", "--model", str(model_file), "--input", str(source), "--out"]
    result = subprocess.run([*command, str(out), "--engine", "ray"], capture_output=True, text=True, timeout=300,
                            env=environment)
    assert result.returncode == 0 and result.stdout.strip() == str(out) and result.stderr == "", result.stderr[-2000:]
    local = tmp_path / "local.parquet"
    assert main(["predict", "--model", str(model_file), "--input", str(source), "--out", str(local)]) == 0
    _same_table(pq.read_table(out), pq.read_table(local))
