"""The run store: one folder per training under runs/, written atomically, listed without ever raising.

Longer than the house's 450 lines on purpose: it is the one module that knows a run folder's files, both how they are
written (atomically, with the status and resume records) and how they are read back; split in two, the folder's format
would live in two places.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import paths
from core.atomic import atomic_path
from core.config import PRESETS, ExperimentConfig, ModelConfig
from core.errors import reason

STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")
# What a run whose process died without recording an end (killed, machine restarted) says about itself.
DIED_MESSAGE = "the training process ended without saving a result (killed, or the machine restarted)"
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocab.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
# Held (flock) by the process that trains into a runs folder; the kernel releases it when that process dies.
LOCK_FILE = ".training.lock"
# Where run.json goes when the disk refuses even the failed status; read_run then reports the run as failed.
UNWRITABLE_RECORD = ".run.json.unwritable"
UNWRITABLE_MESSAGE = "training failed and its status could not be saved (is the disk full?)"


@dataclass(frozen=True)
class RunInfo:
    """What a run folder holds, read back; broken says why a part of it is unusable (None when all is well)."""

    run_id: str  # the folder's name
    path: Path
    status: str  # running, finished, cancelled, failed, or interrupted (its process died: a failure that keeps its epochs)
    config: ExperimentConfig | None  # None when config.json is missing or invalid
    history: dict  # Keras history so far: {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}
    metrics: dict | None  # metrics.json, written when training ends
    data: dict  # {"source", "kind", "limit", "path", "reviews"}: what the model was trained on (path: None for Keras)
    created: str | None  # ISO 8601, UTC
    finished: str | None  # ISO 8601, UTC; None while running or when the process died
    error: str | None  # why a failed run failed
    broken: str | None  # why the folder cannot be fully used: corrupt or missing files

    @property
    def epochs_done(self) -> int:
        """Epochs whose metrics are in history.json."""
        return len(self.history.get("loss", []))

    @property
    def epochs_planned(self) -> int | None:
        return self.config.train.epochs if self.config else None

    @property
    def partial(self) -> str | None:
        """"partial: N of M epochs" for a run that stopped early (killed or stopped); None otherwise."""
        return partial_note(self.epochs_done, self.epochs_planned, self.status)

    @property
    def checkpoint_epoch(self) -> int | None:
        """Epochs the run's checkpoint has finished: where --resume goes on from (None: no checkpoint)."""
        from core.runs.checkpoints import checkpoint_epoch

        return checkpoint_epoch(self.path)

    @property
    def resumable(self) -> bool:
        """True for an interrupted or cancelled run with a checkpoint short of its planned epochs."""
        epoch = self.checkpoint_epoch
        planned = self.epochs_planned
        return self.status in RESUMABLE_STATUSES and epoch is not None and planned is not None and epoch < planned

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def has_model(self) -> bool:
        """True when model.keras is present and readable."""
        return model_problem(self.model_path) is None

    def why_unusable(self, action: str) -> str | None:
        """The one rule for using a run's trained model (export it, look inside it, compare it): why it cannot be used
        to `action`, in one line, or None when its config and weights can be read and no training is writing them."""
        name = f"run {self.run_id}"
        if self.status == "running":
            return f"{name} is still training: wait for it to end before you {action} it"
        if self.broken:
            return f"{name} cannot be used to {action}: {self.broken}; train it again, or delete it"
        if self.config is None or not self.has_model:
            epochs = f"{self.epochs_done} epoch{'' if self.epochs_done == 1 else 's'}"
            curves = "; its curves are kept" if self.epochs_done else ""
            return (
                f"{name} ended ({self.status}) after {epochs} without saving its weights, so there is nothing to "
                f"{action}{curves}"
            )
        return None

    @property
    def recorded_source(self) -> str | None:
        """The data path this run was trained on, as recorded (None: Keras's download, or not recorded)."""
        path = self.data.get("path")
        return path if isinstance(path, str) and path else None

    def data_source(self, default: str | None = None) -> str | None:
        """Where to read this run's reviews again: its recorded path while it still exists, else default (the
        caller's current source; IMDB_DATA when not given). None means Keras's download."""
        recorded = self.recorded_source
        if recorded and Path(recorded).exists():
            return recorded
        return default if default is not None else paths.data_source()


# The runs `--resume` continues: their process ended before the planned epochs (killed, or stopped on purpose).
RESUMABLE_STATUSES = ("interrupted", "cancelled")


def partial_note(epochs_done: int, epochs_planned: int | None, status: str) -> str | None:
    """The mark of a model trained for fewer epochs than planned because its training was stopped or killed."""
    if status in RESUMABLE_STATUSES and epochs_planned and epochs_done < epochs_planned:
        return f"partial: {epochs_done} of {epochs_planned} epochs"
    return None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def model_name(model: ModelConfig) -> str:
    """The preset name of a model config, else its cells joined: the readable part of a run id."""
    for name, experiment in PRESETS.items():
        if experiment.model == model:
            return name
    return "-".join(layer.cell.replace("_", "") for layer in model.recurrent_layers)


def new_run_id(model: ModelConfig) -> str:
    """A sortable, unique folder name: UTC time, what was trained, a short random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model_name(model)}-{secrets.token_hex(3)}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    _write_atomically(path, lambda temporary: temporary.write_text(json.dumps(data, indent=2), encoding="utf-8"))


def save_model(run_dir: Path, model) -> None:
    """Save a Keras model to run_dir/model.keras atomically."""
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    _write_atomically(Path(run_dir) / MODEL_FILE, lambda temporary: model.save(temporary), suffix=".keras")


def _write_atomically(path: Path, write, suffix: str = ".tmp") -> None:
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"cannot write in {path.parent}: the folder is gone")
    try:
        with atomic_path(path, suffix) as temporary:
            write(temporary)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {reason(error)}") from None


def write_history(run_dir: Path, history: dict) -> None:
    write_json(Path(run_dir) / HISTORY_FILE, history)


def write_metrics(run_dir: Path, metrics: dict) -> None:
    write_json(Path(run_dir) / METRICS_FILE, metrics)


def set_status(run_dir: Path, status: str, error: str | None = None) -> None:
    """Record how a run ended (or that it runs); only the training process calls this."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; known: {', '.join(STATUSES)}")
    path = Path(run_dir) / RUN_FILE
    record = read_json(path)
    if not isinstance(record, dict):
        record = {}
    record["status"] = status
    record["error"] = error
    if status != "running":
        record["finished"] = utc_now()
    write_json(path, record)


def mark_resumed(run_dir: Path, from_epoch: int, history: dict) -> None:
    """Take a run up again in this process: history cut to the checkpoint's epochs, status running with this pid.

    metrics.json of the earlier session goes (it described an ended run); run.json keeps when each session resumed.
    """
    run_dir = Path(run_dir)
    record = read_json(run_dir / RUN_FILE)
    if not isinstance(record, dict):
        raise ValueError(f"{run_dir / RUN_FILE} is missing or corrupt; the run cannot be resumed")
    write_history(run_dir, history)
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    # Files exported from the partial model would outlive it and be taken for the resumed run's.
    for exported in run_dir.glob("*.onnx"):
        exported.unlink(missing_ok=True)
    record.update(
        status="running",
        error=None,
        finished=None,
        pid=os.getpid(),
        process_start=_process_start(os.getpid()),
        host=socket.gethostname(),
    )
    record["resumed"] = [*record.get("resumed", []), {"at": utc_now(), "from_epoch": from_epoch}]
    write_json(run_dir / RUN_FILE, record)


def set_failed_status(run_dir: Path, message: str) -> None:
    """Record a failure; when even that write fails (a full disk), move run.json aside so the run reads as failed."""
    try:
        set_status(run_dir, "failed", message)
    except ValueError:
        try:
            # A rename needs no new data blocks; read_run takes a run.json moved aside for a failed run.
            os.replace(Path(run_dir) / RUN_FILE, Path(run_dir) / UNWRITABLE_RECORD)
        except OSError:
            pass  # the original error matters more than this one


def _process_start(pid: int) -> str | None:
    """The start time of process pid (clock ticks since boot), which tells a live run from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses; the fields after its last ')' are plain.
    fields_after_name = stat[stat.rfind(")") + 2 :].split()
    if fields_after_name[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return "zombie"
    return fields_after_name[19]


def _process_alive(record: dict) -> bool:
    if record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's live process
    started = _process_start(pid)
    if started == "zombie":
        return False
    recorded = record.get("process_start")
    return recorded is None or started is None or started == recorded


def live_pid(run_dir: Path) -> int | None:
    """The process id training run_dir, while that process lives on this machine; None otherwise."""
    record = read_json(Path(run_dir) / RUN_FILE)
    if isinstance(record, dict) and record.get("status") == "running" and _process_alive(record):
        return record["pid"]
    return None


def read_json(path: Path) -> Any:
    """The JSON at path, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def model_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{MODEL_FILE} is missing"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return f"{MODEL_FILE} is truncated or corrupt"
    if not {"config.json", "model.weights.h5"} <= names:
        return f"{MODEL_FILE} lacks its config or weights"
    return None


def read_vocabulary(run_dir: str | Path):
    """The Vocabulary a run's model was trained with; ValueError when vocab.json is missing or corrupt."""
    from core.data.text import Vocabulary

    path = Path(run_dir) / VOCABULARY_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is missing or corrupt; the run cannot encode text without it")
    return Vocabulary.from_dict(data)


def _valid_history(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(values, list) and all(isinstance(value, (int, float)) for value in values)
        for values in data.values()
    )


def read_run(run_dir: str | Path) -> RunInfo:
    """Read one run folder; every missing or corrupt part is reported in RunInfo.broken, never raised."""
    run_dir = Path(run_dir)
    problems = []
    record = read_json(run_dir / RUN_FILE)
    unwritable = None
    if record is None and (run_dir / UNWRITABLE_RECORD).is_file():
        unwritable = read_json(run_dir / UNWRITABLE_RECORD)
    if isinstance(unwritable, dict):
        record = {**unwritable, "status": "failed", "error": UNWRITABLE_MESSAGE}
    if not isinstance(record, dict):
        problems.append(f"{RUN_FILE} is missing or corrupt")
        record = {}
    status = record.get("status")
    failure = record.get("error")
    if status not in STATUSES:
        status = "failed"
    if status == "running" and not _process_alive(record):
        # Nothing rewrites run.json: the store tells a dead process from a live one each time it reads the folder.
        status, failure = "interrupted", DIED_MESSAGE

    config = None
    config_data = read_json(run_dir / CONFIG_FILE)
    if config_data is None:
        problems.append(f"{CONFIG_FILE} is missing or corrupt")
    else:
        try:
            config = ExperimentConfig.from_dict(config_data)
        except (ValueError, TypeError) as error:
            problems.append(f"{CONFIG_FILE} is invalid: {error}")

    if not isinstance(read_json(run_dir / VOCABULARY_FILE), dict):
        problems.append(f"{VOCABULARY_FILE} is missing or corrupt")

    history = read_json(run_dir / HISTORY_FILE)
    if not _valid_history(history):
        problems.append(f"{HISTORY_FILE} is missing or corrupt")
        history = {}

    metrics = read_json(run_dir / METRICS_FILE)
    if metrics is not None and not isinstance(metrics, dict):
        problems.append(f"{METRICS_FILE} is corrupt")
        metrics = None
    if status == "finished" and metrics is None:
        problems.append(f"{METRICS_FILE} is missing")

    weights_problem = model_problem(run_dir / MODEL_FILE)
    # A run that ended on its own must have weights; one that died may not have reached its first save.
    if weights_problem and (status in ("finished", "cancelled") or (run_dir / MODEL_FILE).exists()):
        problems.append(weights_problem)

    data = record.get("data")
    return RunInfo(
        run_id=run_dir.name,
        path=run_dir,
        status=status,
        config=config,
        history=history,
        metrics=metrics,
        data=data if isinstance(data, dict) else {},
        created=record.get("created"),
        finished=record.get("finished"),
        error=failure,
        broken="; ".join(problems) or None,
    )


class RunStore:
    """The run folders under one root (IMDB_RUNS, else runs/ in the project)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else paths.runs_dir()

    def check_writable(self) -> None:
        """Create the root if needed; ValueError with one line when runs cannot be written there."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"cannot create the runs folder {self.root}: {reason(error)}; "
                "choose another with --runs or IMDB_RUNS"
            ) from None
        # A real file tells the truth where permission bits do not: root, read-only mounts, a full disk.
        try:
            handle, probe = tempfile.mkstemp(dir=self.root, prefix=".write-check-")
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            raise ValueError(
                f"the runs folder {self.root} is not writable ({reason(error)}); "
                "choose another with --runs or IMDB_RUNS"
            ) from None

    @contextmanager
    def training_lock(self) -> Iterator[None]:
        """Hold the runs folder for one training; ValueError at once when another process or thread holds it.

        Two trainings at once would halve each other's speed and compete for memory on a small machine; the second
        one is refused before it writes anything. The lock is per runs folder, across processes and threads.
        """
        self.check_writable()
        path = self.root / LOCK_FILE
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ValueError(f"cannot open {path}: {reason(error)}; choose another --runs") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                running = [run.run_id for run in self.list() if run.status == "running"]
                which = f" (run {running[0]})" if running else ""
                raise ValueError(
                    f"another training is running in {self.root}{which}; wait for it to end or stop it, "
                    "or train into another folder with --runs"
                ) from None
            yield
        finally:
            os.close(handle)  # closing the descriptor releases the lock

    def create(self, config: ExperimentConfig, vocabulary, data: dict) -> Path:
        """A new run folder with config, vocabulary, empty history and status running; returns its path.

        The folder is written under a hidden name and renamed into place, so a crash never leaves a half-made run.
        """
        self.check_writable()
        run_id = new_run_id(config.model)
        staging = self.root / f".creating-{run_id}"
        record = {
            "status": "running",
            "created": utc_now(),
            "finished": None,
            "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "host": socket.gethostname(),
            "data": data,
            "error": None,
        }
        try:
            staging.mkdir()
            write_json(staging / CONFIG_FILE, config.to_dict())
            write_json(staging / VOCABULARY_FILE, vocabulary.to_dict())
            write_json(staging / HISTORY_FILE, {key: [] for key in HISTORY_KEYS})
            write_json(staging / RUN_FILE, record)
            os.rename(staging, self.root / run_id)
        except (OSError, ValueError) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(
                f"cannot write a run in {self.root}: {reason(error)}; free some space or choose another --runs"
            ) from None
        return self.root / run_id

    def list(self) -> list[RunInfo]:
        """Every run, newest first; corrupt runs are listed with RunInfo.broken set."""
        try:
            folders = [entry for entry in self.root.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
        except OSError:
            return []
        return [read_run(folder) for folder in sorted(folders, key=lambda folder: folder.name, reverse=True)]

    def _locate(self, run: str | Path) -> Path:
        """A run id names a folder under the root; anything with a separator is a path."""
        text = str(run)
        if isinstance(run, Path) or os.sep in text or (os.altsep and os.altsep in text):
            path = Path(run)
        else:
            path = self.root / text
        if not path.is_dir():
            raise ValueError(f"no run folder at {path}; `python -m core runs` lists the runs")
        if not (path / RUN_FILE).exists() and not (path / CONFIG_FILE).exists():
            raise ValueError(f"{path} is not a run folder: it has no {RUN_FILE} or {CONFIG_FILE}")
        return path

    def load(self, run: str | Path) -> RunInfo:
        """One run by id (a folder under the root) or by path (anywhere)."""
        return read_run(self._locate(run))

    def delete(self, run: str | Path) -> None:
        """Remove a run folder; refuses anything outside the root and a run still training."""
        path = self._locate(run)
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved.parent != root or path.is_symlink() or resolved.name.startswith("."):
            raise ValueError(f"refusing to delete {path}: it is not a run folder directly under {self.root}")
        info = read_run(resolved)
        if info.status == "running":
            raise ValueError(f"run {info.run_id} is still training; stop it before deleting it")
        shutil.rmtree(resolved)

