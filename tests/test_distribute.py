"""Distribution strategies: the config field, TF_CONFIG checks, and tiny runs on two devices and two workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser_support import free_port, write_reviews_csv
from core.config import ExperimentConfig, TrainConfig
from core.training.distribute import cluster_task, is_chief

ROOT = Path(__file__).resolve().parent.parent
# Per-epoch training losses of a strategy against one device: the same batches and steps, only float32 sums in
# another order (a gradient summed across replicas). The first epoch's agree to about 1e-7; the rounding then grows
# with every step of this small model learning fast (on an AMD EPYC with AVX-512, batches sorted in pools of 4: 5e-5
# after two epochs, 1.2e-4 after three), so the later epochs get 1e-3.
FIRST_EPOCH_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-3

TINY = {
    "model": {
        "vocabulary_size": 200,
        "sequence_length": 40,
        "embedding_dim": 8,
        "recurrent_layers": [{"cell": "simple_rnn", "units": 8}],
        "mask_padding": True,
    },
    "train": {"epochs": 3, "batch_size": 32, "learning_rate": 0.01},
}


def worker_config(index: int, ports: list[int], kind: str = "worker") -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": kind, "index": index}}
    )


def test_distribution_is_a_validated_field_saved_with_the_config_and_optional_in_old_files():
    assert TrainConfig().distribution == "none"
    assert ExperimentConfig.from_dict({"train": {"seed": 3}}).train.distribution == "none"  # an older config.json
    config = ExperimentConfig(train=TrainConfig(distribution="multi-worker"))
    assert json.loads(config.to_json())["train"]["distribution"] == "multi-worker"
    assert ExperimentConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="train.distribution must be one of none, mirrored, multi-worker"):
        TrainConfig(distribution="tpu")


@pytest.mark.parametrize(
    "value,message",
    [
        (None, "needs TF_CONFIG, which is not set"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ("[1, 2]", "TF_CONFIG needs a cluster and a task"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG needs a cluster and a task"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "must be a list of host:port"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker"}}', "must be a list of host:port"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task.type must be worker or chief"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index must be 0 to 1"),
    ],
)
def test_a_missing_or_broken_tf_config_is_one_line(value, message):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ValueError, match=message) as caught:
        cluster_task("multi-worker", environ)
    assert "\n" not in str(caught.value)


def test_only_multi_worker_reads_tf_config_and_worker_0_is_the_chief(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{broken")
    assert cluster_task("none") is None and cluster_task("mirrored") is None and is_chief("mirrored")
    monkeypatch.setenv("TF_CONFIG", worker_config(0, [1, 2]))
    assert cluster_task("multi-worker") == ("worker", 0, 2) and is_chief("multi-worker")
    monkeypatch.setenv("TF_CONFIG", worker_config(1, [1, 2]))
    assert not is_chief("multi-worker")


def _run_cli(args: list[str], env: dict, tmp_path: Path, prefix: list[str] | None = None, **kwargs):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    command = [sys.executable, *(prefix or ["-m", "core"]), *args]
    return subprocess.Popen(
        command, env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def test_the_cli_refuses_multi_worker_without_tf_config_before_loading_data(tmp_path):
    process = _run_cli(
        ["train", "--data", str(tmp_path / "missing.csv"), "--distribution", "multi-worker", "--runs", "runs"],
        {"IMDB_CACHE": str(tmp_path / "cache"), "TF_CONFIG": ""},
        tmp_path,
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    # The data path does not exist: the TF_CONFIG line comes first, so no data was looked at.
    assert errors == [errors[0]] and "needs TF_CONFIG" in errors[0]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distribute")
    write_reviews_csv(folder / "reviews.csv", reviews=400)
    (folder / "tiny.json").write_text(json.dumps(TINY))
    return folder


def _train_args(folder: Path, runs: str, distribution: str | None = None) -> list[str]:
    args = ["train", "--config", str(folder / "tiny.json"), "--data", str(folder / "reviews.csv"), "--runs", runs]
    return args + (["--distribution", distribution] if distribution else [])


def _finished_runs(runs: Path) -> list[Path]:
    return sorted(path for path in runs.glob("*") if path.is_dir()) if runs.exists() else []


def _losses(run: Path) -> list[float]:
    return json.loads((run / "history.json").read_text())["loss"]


def _assert_same_training(losses: list[float], one_device: list[float]) -> None:
    """The same batches and steps as one device: the first epoch's loss to float rounding, the rest to its growth."""
    assert losses[0] == pytest.approx(one_device[0], abs=FIRST_EPOCH_TOLERANCE)
    assert losses == pytest.approx(one_device, abs=LOSS_TOLERANCE)


@pytest.fixture(scope="module")
def one_device_losses(tiny_data):
    process = _run_cli(_train_args(tiny_data, "single"), {"IMDB_CACHE": str(tiny_data / "cache")}, tiny_data)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    (run,) = _finished_runs(tiny_data / "single")
    return _losses(run)


MIRRORED_ON_TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(tiny_data, one_device_losses):
    script = tiny_data / "mirrored.py"
    script.write_text(MIRRORED_ON_TWO_CPUS)
    environment = {"IMDB_CACHE": str(tiny_data / "cache")}
    process = _run_cli(_train_args(tiny_data, "mirrored", "mirrored"), environment, tiny_data, [str(script)])
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    (run,) = _finished_runs(tiny_data / "mirrored")
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert json.loads((run / "config.json").read_text())["train"]["distribution"] == "mirrored"
    _assert_same_training(_losses(run), one_device_losses)


@pytest.mark.slow
def test_two_local_workers_match_one_device_and_only_the_chief_writes_a_run(tiny_data, one_device_losses):
    ports = [free_port(), free_port()]
    processes = [
        _run_cli(
            _train_args(tiny_data, f"worker{index}", "multi-worker"),
            {"IMDB_CACHE": str(tiny_data / f"cache{index}"), "TF_CONFIG": worker_config(index, ports)},
            tiny_data,
        )
        for index in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    (run,) = _finished_runs(tiny_data / "worker0")
    for name in ("config.json", "vocab.json", "history.json", "metrics.json", "model.keras", "run.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    _assert_same_training(_losses(run), one_device_losses)
    assert _finished_runs(tiny_data / "worker1") == []
    # The worker trained into a temporary folder (its last line) and deleted it on exit.
    worker_folder = Path(outputs[1][0].strip().splitlines()[-1])
    assert worker_folder.name and not worker_folder.exists()
