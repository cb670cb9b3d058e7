"""What a model file's run may do: take at most RUN_SECONDS, and answer probabilities, one a row, or be refused.

A file may come from anyone (an upload, `predict --model`), and its graph may hold an endless Loop or answer 5512.0.
One watch thread stops runs past their deadline through onnxruntime's RunOptions.terminate, which onnxruntime checks
between nodes and at every Loop iteration; the run then fails, and the caller gets one line. The tensors' memory is
capped for the whole process where the sessions are made (core.export.model_file.MEMORY_LIMIT_BYTES).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

import numpy as np

from core.errors import first_line
from core.export.model_file import MEMORY_LIMIT_BYTES, ModelFileError

# An honest run (at most 512 reviews of 500 ids) takes well under a second here; a hundred times that is a hostile or
# broken graph.
RUN_SECONDS = 10.0
POLL_SECONDS = 0.25  # how late past its deadline a run may be stopped


class RunWatch:
    """Hands out RunOptions whose runs are stopped seconds after they start, by one daemon thread."""

    def __init__(self, seconds: float = RUN_SECONDS) -> None:
        self.seconds = seconds
        self._runs: dict[int, tuple[float, object]] = {}
        self._keys = count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def options(self, seconds: float | None = None) -> Iterator[object]:
        """RunOptions for one run, terminated when it lasts longer than seconds (default: the watch's)."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        options.log_severity_level = 4  # fatal only: a failed run is the caller's to report, on one line
        key = next(self._keys)
        with self._changed:
            self._runs[key] = (time.monotonic() + (self.seconds if seconds is None else seconds), options)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="onnx-run-watch", daemon=True)
                self._thread.start()
            self._changed.notify()
        try:
            yield options
        finally:
            with self._changed:
                del self._runs[key]

    def _watch(self) -> None:
        while True:
            with self._changed:
                while not self._runs:
                    self._changed.wait()
                now = time.monotonic()
                for deadline, options in self._runs.values():
                    if deadline <= now:
                        options.terminate = True
            time.sleep(POLL_SECONDS)


WATCH = RunWatch()


class RunStopped(ModelFileError):
    """A run passed its time limit and was stopped: the file's graph is hostile or broken."""


def guarded_run(session, names: list[str], feed: dict, source: str, seconds: float | None = None) -> list:
    """session.run(names, feed) stopped after seconds (default RUN_SECONDS); RunStopped when it is stopped, and
    ModelFileError when onnxruntime fails on the file's graph, each with one line."""
    with WATCH.options(seconds) as options:
        try:
            return session.run(names, feed, options)
        except Exception as error:  # onnxruntime raises its own types for a graph that fails at run time
            limit = WATCH.seconds if seconds is None else seconds
            if options.terminate:
                raise RunStopped(
                    f"{source}: a run took more than {limit:g} s and was stopped; this file cannot be used"
                ) from None
            if "Available memory of" in str(error):  # the arena's refusal (MEMORY_LIMIT_BYTES)
                raise ModelFileError(
                    f"{source}: a run asked for more than the {MEMORY_LIMIT_BYTES / 2**30:g} GiB its tensors may use; "
                    "this file cannot be used"
                ) from None
            raise ModelFileError(f"onnxruntime cannot run {source}: {first_line(error)}") from None


def checked_probabilities(values: np.ndarray, rows: int, source: str, name: str = "probability") -> np.ndarray:
    """values as a float32 vector of rows probabilities; ModelFileError when the file answers anything else."""
    values = np.asarray(values)
    if values.size != rows:
        raise ModelFileError(f"{source}: its {name} output gave {values.size} values for {rows} reviews, not one each")
    values = values.reshape(-1).astype(np.float32, copy=False)
    outside = ~((values >= 0.0) & (values <= 1.0))  # NaN is outside too
    if outside.any():
        raise ModelFileError(
            f"{source}: its {name} output gave {float(values[np.argmax(outside)])!r}, not a probability between 0 and 1"
        )
    return values
