"""A real dashboard server and its visitors, for the load test (bench/load_test.py) and the tests: `streamlit run` on
a free port with the server's CPU and memory, a session spoken over its websocket with raw messages (no browser: a
load test's visitor or a hostile script), and the Chromium that the browser visitors run in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
# Debian's Chromium, as the browser tests and the load test launch it through playwright (no browser download).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PLACEHOLDER_TOKEN = "placeholder"  # the subprotocol's second entry: an XSRF token, needed only for signed-in users


def process_cpu_seconds(stat: str) -> float:
    """A process's user and system time so far, from the text of its /proc/PID/stat."""
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Ask a server process to stop (SIGTERM), and kill it when it has not within timeout seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_ok(process: subprocess.Popen, url: str, log_path: Path, what: str, timeout: float) -> float:
    """Seconds until url answers 200 while process runs; RuntimeError with the end of its log when it never does."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a server of ours on localhost
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready:\n{log_path.read_text(errors='replace')[-3000:]}")


class StreamlitServer:
    """`streamlit run dashboard/app.py` in a subprocess on a free port, with its own environment and log file."""

    def __init__(
        self,
        environment: dict[str, str],
        log_path: Path,
        address: str | None = "127.0.0.1",
        options: Sequence[str] = (),
    ) -> None:
        """address None leaves the listening address to the repository's .streamlit/config.toml; options are more
        command-line settings (--runner.postScriptGC true, say)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = environment
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(self.port)]
        command += ["--server.headless", "true", "--server.fileWatcherType", "none"]
        if address is not None:
            command += ["--server.address", address]
        command += list(options)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **environment}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Seconds until /_stcore/health answers ok; fails with the server's log when it never does."""
        return wait_until_ok(self.process, f"{self.url}/_stcore/health", self.log_path, "streamlit", timeout)

    def memory_mb(self) -> float:
        """The server's resident memory (Linux: /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise LookupError("no VmRSS")

    def cpu_seconds(self) -> float:
        """The server's user and system time so far (Linux: /proc)."""
        return process_cpu_seconds(Path(f"/proc/{self.process.pid}/stat").read_text())

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


class RawSession:
    """One connection to a real server's /_stcore/stream; resume names an earlier session's id to reattach to."""

    def __init__(self, port: int, resume: str | None = None) -> None:
        protocols = ["streamlit", PLACEHOLDER_TOKEN] + ([resume] if resume else [])
        self.socket = connect(
            f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=protocols, max_size=None, open_timeout=30
        )
        self.session_id: str | None = None
        self.page_script_hash = ""  # the page the server ran, named on every later rerun
        self.elements: list = []  # the last run's elements (protobuf Element messages)
        self.fragment_of: dict[str, str] = {}  # widget id -> the id of the fragment that drew it ("" for none)

    def send(self, message: BackMsg) -> None:
        self.socket.send(message.SerializeToString())

    def run(
        self,
        widgets: dict[str, str] | None = None,
        timeout: float = 60.0,
        triggers: Iterable[str] = (),
        fragment_id: str = "",
    ) -> RawSession:
        """A rerun with these text widget values (id -> value) and these buttons pressed (ids), of the whole page or of
        one fragment (as a browser asks when a widget inside a fragment changes), read until the script finishes."""
        message = BackMsg()
        message.rerun_script.query_string = ""
        message.rerun_script.page_script_hash = self.page_script_hash
        message.rerun_script.fragment_id = fragment_id
        for widget_id, value in (widgets or {}).items():
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            state.string_value = value
        for widget_id in triggers:
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            state.trigger_value = True
        self.send(message)
        self.elements = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = ForwardMsg()
            reply.ParseFromString(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            kind = reply.WhichOneof("type")
            if kind == "new_session":
                self.session_id = reply.new_session.initialize.session_id
                self.page_script_hash = reply.new_session.page_script_hash
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                element = reply.delta.new_element
                self.elements.append(element)
                widget = getattr(element, element.WhichOneof("type") or "", None)
                if isinstance(getattr(widget, "id", None), str) and widget.id:
                    self.fragment_of[widget.id] = reply.delta.fragment_id
            elif kind == "script_finished":
                return self
        raise TimeoutError("the script did not finish")

    def texts(self) -> list[str]:
        """The text of every markdown, caption and alert element of the last run."""
        found = []
        for element in self.elements:
            kind = element.WhichOneof("type")
            if kind == "markdown":
                found.append(element.markdown.body)
            elif kind == "alert":
                found.append(element.alert.body)
        return found

    def metrics(self) -> dict[str, str]:
        """The last run's metrics, label -> shown value."""
        return {e.metric.label: e.metric.body for e in self.elements if e.WhichOneof("type") == "metric"}

    def widget_id(self, label: str, kind: str = "text_input") -> str:
        """The id of the last run's widget of this kind (text_input, text_area, button) with this label."""
        for element in self.elements:
            if element.WhichOneof("type") == kind and getattr(element, kind).label == label:
                return getattr(element, kind).id
        raise LookupError(f"no {kind} labelled {label!r}")

    def clear_caches(self) -> None:
        message = BackMsg()
        message.clear_cache = True
        self.send(message)

    def close(self) -> None:
        self.socket.close()
