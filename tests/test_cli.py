"""The summary, train, evaluate and runs commands: exit codes, `error:` lines, the run folder last, a killed run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core import paths
from core.cli import main
from core.config import ExperimentConfig
from core.data.load import load_dataset
from core.runs.store import DIED_MESSAGE, RunStore, read_run
from core.training.trainer import train
from tests.small_inputs import TINY_CONFIG, Terminal, build_archive

PROJECT = Path(__file__).resolve().parent.parent
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny archive and config, a cache of their own, and one CLI training on them run as a real process."""
    folder = tmp_path_factory.mktemp("cli")
    archive = build_archive(folder / "aclImdb_v1.tar.gz", per_class=60)
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "IMDB_CACHE": str(folder / "cache")}
    env["IMDB_RUNS"] = str(folder / "runs")
    finished = subprocess.run(
        [sys.executable, "-m", "core", "train", "--config", str(config), "--data", str(archive), "--epochs", "2"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )
    return {"folder": folder, "archive": archive, "config": config, "env": env, "finished": finished}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


# ---- summary -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "shapes", "total"),
    [
        ("seed-rnn", [[None, 500, 32], [None, 500, 32]], 322_080),
        ("seed-stacked", [[None, 500, 32]] * 4 + [[None, 32]], 328_320),
        ("seed", [[None, 500, 32], [None, 32], [None, 1]], 322_113),
    ],
)
def test_summary_json_has_the_documented_shape(capsys, preset, shapes, total):
    status, out, _ = run_cli(capsys, "summary", "--preset", preset, "--json")
    result = json.loads(out)
    assert status == 0 and result["total_params"] == total
    assert [layer["output_shape"] for layer in result["layers"]] == shapes
    for layer in result["layers"]:
        assert {"name", "type", "output_shape", "params", "formula"} <= set(layer)
        assert layer["formula"].endswith(f"= {layer['params']:,}")


def test_summary_table_shows_formulas_and_the_total(capsys, tmp_path):
    config = tmp_path / "gru.json"
    config.write_text(json.dumps({"model": {"recurrent_layers": [{"cell": "gru", "units": 16}]}}))
    status, out, _ = run_cli(capsys, "summary", "--config", str(config))
    assert status == 0
    assert "gru_1 (GRU)" in out and "3*u*(in+u+2) = 3*16*(32+16+2) = 2,400" in out
    assert out.strip().splitlines()[-1].startswith("Total params: 322,417 ")


# ---- user mistakes: one `error:` line, exit status 2, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", ""],
        ["train", "--data", "  "],
        ["train", "--runs", ""],
        ["summary", "--config", ""],
        ["summary", "--preset", ""],
        ["evaluate", ""],
        ["evaluate", "--model", ""],
        ["export", ""],
        ["predict", "--model", "", "a review"],
        ["predict", "--csv", ""],
        ["runs", "--runs", ""],
    ],
)
def test_an_empty_path_or_name_is_a_mistake_not_the_default(capsys, argv):
    status, out, err = run_cli(capsys, *argv)
    assert_one_error_line(status, err, "is empty")
    assert out == ""


def test_a_folder_where_a_file_belongs(capsys, tmp_path):
    status, _, err = run_cli(capsys, "summary", "--config", str(tmp_path))
    assert_one_error_line(status, err, "is a folder, not a JSON file")
    status, _, err = run_cli(capsys, "train", "--config", str(tmp_path), "--runs", str(tmp_path / "runs"))
    assert_one_error_line(status, err, "is a folder")
    assert not (tmp_path / "runs").exists()


def test_a_config_that_is_not_json_names_the_file(capsys, tmp_path):
    config = tmp_path / "notes.txt"
    config.write_text("hello")
    status, _, err = run_cli(capsys, "summary", "--config", str(config))
    assert_one_error_line(status, err, f"config file {config} is not valid JSON")


def test_help_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    assert "--limit N" in capsys.readouterr().out




def test_bad_preset(capsys, tmp_path):
    status, out, err = run_cli(capsys, "train", "--preset", "seed-xxl", "--runs", str(tmp_path))
    assert_one_error_line(status, err, "unknown preset 'seed-xxl'", "seed-rnn")
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"model": {"units": 3}}', "unknown field(s) units"),
        ('{"model": {"recurrent_layers": [{"cell": "rnn"}]}}', "cell must be one of"),
        ('{"train": {"epochs": -2}}', "train.epochs"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_config_file(capsys, tmp_path, text, fragment):
    config = tmp_path / "config.json"
    config.write_text(text)
    status, _, err = run_cli(capsys, "train", "--config", str(config), "--runs", str(tmp_path / "runs"))
    assert_one_error_line(status, err, fragment)
    assert not (tmp_path / "runs").exists()


def test_missing_config_file(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--config", str(tmp_path / "nope.json"))
    assert_one_error_line(status, err, "does not exist")


def test_missing_data_path(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--data", str(tmp_path / "aclImdb.tar.gz"), "--runs", str(tmp_path / "r"))
    assert_one_error_line(status, err, "aclImdb.tar.gz")


@pytest.mark.parametrize("epochs", ["0", "-3", "1001"])
def test_bad_epochs(capsys, tmp_path, epochs):
    status, _, err = run_cli(capsys, "train", "--epochs", epochs, "--data", str(tmp_path))
    assert_one_error_line(status, err, "train.epochs must be between 1 and 1,000")


def test_epochs_that_are_not_a_number_exit_2(capsys):
    status, _, err = run_cli(capsys, "train", "--epochs", "ten")
    assert_one_error_line(status, err, "argument --epochs: invalid int value: 'ten'")


def test_bad_limit(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--limit", "0", "--data", str(tmp_path))
    assert_one_error_line(status, err, "--limit must be a positive number")


def test_a_model_without_a_classifier_cannot_be_trained(capsys):
    status, _, err = run_cli(capsys, "train", "--preset", "seed-rnn")
    assert_one_error_line(status, err, "cannot be trained")


def test_an_unwritable_runs_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = run_cli(capsys, "train", "--runs", str(blocker / "runs"), "--data", str(tmp_path))
    assert_one_error_line(status, err, "cannot create the runs folder")


def test_evaluate_without_a_run_uses_the_shipped_model(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEFAULT_MODEL", tmp_path / "models" / "imdb_simplernn.onnx")
    status, _, err = run_cli(capsys, "evaluate")
    assert_one_error_line(status, err, "no model at", "python -m core export RUN_DIR")
    status, _, err = run_cli(capsys, "evaluate", str(tmp_path / "no-such-run"))
    assert_one_error_line(status, err, "no run folder at")


def test_evaluate_points_an_onnx_file_at_model(capsys, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    status, _, err = run_cli(capsys, "evaluate", str(model))
    assert_one_error_line(status, err, f"use --model {model}")


def test_runs_refuses_a_file_as_its_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = run_cli(capsys, "runs", "--runs", str(blocker))
    assert_one_error_line(status, err, "is a file, not a runs folder")


def test_runs_on_an_empty_folder(capsys, tmp_path):
    status, out, _ = run_cli(capsys, "runs", "--runs", str(tmp_path))
    assert status == 0 and out.strip() == f"no runs in {tmp_path}"
    status, out, _ = run_cli(capsys, "runs", "--runs", str(tmp_path), "--json")
    assert status == 0 and out == ""


# ---- a real training through the command line ----------------------------------------------------------------------


@pytest.mark.slow
def test_train_prints_epochs_and_the_run_folder_last(tiny):
    finished = tiny["finished"]
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.strip().splitlines()
    run_dir = Path(lines[-1])
    assert run_dir.parent == tiny["folder"] / "runs" and run_dir.is_dir()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "val_accuracy" in finished.stdout and "test accuracy" in finished.stdout
    run = read_run(run_dir)
    assert run.status == "finished" and run.epochs_done == 2 and run.data["path"] == str(tiny["archive"])
    assert run.config.train.epochs == 2  # --epochs overrode the file's 3


@pytest.mark.slow
def test_train_with_limit_says_how_many_training_reviews_it_uses(tiny, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("IMDB_CACHE", tiny["env"]["IMDB_CACHE"])
    argv = ["train", "--config", str(tiny["config"]), "--data", str(tiny["archive"]), "--epochs", "1", "--limit", "50"]
    status, out, _ = run_cli(capsys, *argv, "--runs", str(tmp_path))
    assert status == 0
    (data_line,) = [line for line in out.splitlines() if line.startswith("data: ")]
    assert "120 training (--limit: the first 50 used) and 120 test reviews" in data_line


@pytest.mark.slow
def test_evaluate_json_and_runs_listing(tiny, capsys, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", tiny["env"]["IMDB_CACHE"])
    run_dir = Path(tiny["finished"].stdout.strip().splitlines()[-1])
    status, out, _ = run_cli(capsys, "evaluate", str(run_dir), "--json")
    result = json.loads(out)
    assert status == 0 and set(result) == {"accuracy", "loss", "n"}
    assert result["n"] == 120
    assert result["accuracy"] == pytest.approx(read_run(run_dir).metrics["test_accuracy"], abs=1e-6)
    status, out, _ = run_cli(capsys, "runs", "--runs", str(run_dir.parent), "--json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and listed["run_id"] == run_dir.name and listed["status"] == "finished"
    status, out, _ = run_cli(capsys, "runs", "--runs", str(run_dir.parent))
    assert status == 0 and run_dir.name in out and "finished" in out and "2/2" in out


@pytest.mark.slow
def test_a_training_killed_mid_epoch_is_listed_as_interrupted(tiny, tmp_path):
    runs_root = tmp_path / "runs"
    config = tmp_path / "slow.json"
    # Many small batches make an epoch last long enough to be killed inside it.
    config.write_text(json.dumps({**TINY_CONFIG, "train": {"batch_size": 2, "epochs": 200, "learning_rate": 0.01}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--config", str(config), "--data", str(tiny["archive"])]
        + ["--runs", str(runs_root)],
        cwd=PROJECT, env=tiny["env"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = RunStore(runs_root).list()
            if found and found[0].epochs_done >= 1:
                break
            assert process.poll() is None, "the training ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no epoch finished within 120 s")
        time.sleep(0.2)  # into the next epoch
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (run,) = RunStore(runs_root).list()
    assert run.status == "interrupted" and run.error == DIED_MESSAGE and run.broken is None
    assert 1 <= run.epochs_done < 200 and len(run.history["val_loss"]) == run.epochs_done
    # Nothing rewrote the record: the store tells a dead process from a live one when it reads the folder.
    assert json.loads((run.path / "run.json").read_text())["status"] == "running"

    # The store is still usable: a new training starts and finishes beside the dead one.
    experiment = ExperimentConfig.from_dict(TINY_CONFIG)
    dataset = load_dataset(tiny["archive"], num_words=60, cache_dir=Path(tiny["env"]["IMDB_CACHE"]))
    again = train(experiment.model, replace(experiment.train, epochs=1), dataset, store=RunStore(runs_root))
    assert again.status == "finished"
    assert sorted(run.status for run in RunStore(runs_root).list()) == ["finished", "interrupted"]


def test_runs_help_names_the_project_runs_folder_not_the_working_directory(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("IMDB_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.runs_dir() == PROJECT / "runs"  # what the help must say, wherever the command is run from
    assert main(["runs", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "else runs/ in the project folder" in help_text and "./runs" not in help_text


def test_resume_refuses_a_missing_folder_and_other_settings_in_one_line(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "nowhere"))
    assert_one_error_line(status, err, "no run folder at")
    status, _, err = run_cli(capsys, "train", "--resume", str(tmp_path), "--preset", "seed", "--limit", "5")
    assert_one_error_line(status, err, "drop --preset, --limit")


def test_the_progress_bar_draws_on_a_terminal_only_and_erases_itself():
    from core.commands import _ProgressLine

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = _ProgressLine(stream, 3)
        bar.preparing()
        for step in range(11):
            bar.batch(1, step / 10)
        bar.loading(0.5, "reading reviews")
        bar.batch(2, 0.25)
        bar.clear()
    drawn = terminal.getvalue()
    assert "epoch 1/3" in drawn and "epoch 2/3" in drawn and "loading data: reading reviews" in drawn
    assert "tracing and compiling the step" in drawn
    assert drawn.endswith("\x1b[2K"), "cleared: the last line erased before the epoch line is printed"
    assert log.getvalue() == "", "a log or a pipe gets the epoch lines alone"
