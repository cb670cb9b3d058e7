"""The HTTP API against in-process onnxruntime: latency of one review and requests per second, 1 and 8 clients.

    python bench/api_speed.py [--model FILE] [--requests N] [--rounds R] [--batch B]

Starts `python -m core serve` (MLServer, in .venv-serve) on a free port of 127.0.0.1, scores the same reviews through
it (JSON over HTTP, one review a request, a kept-alive connection a client) and with the Predictor in this process,
and prints medians over rounds: median and p95 milliseconds a request, requests per second, and the API's overhead as
a ratio to in-process. Then the same with server batching on, and batches of B reviews of review length (233
words) a request, as a client scoring in bulk sends them. Clients and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.streamlit_session import free_port, stop_process, wait_until_ok  # noqa: E402 - after the path is set

SAMPLE_REVIEWS = (
    "One of the best films I have seen this year: the cast is wonderful and the story moving.",
    "A dull, predictable plot and wooden acting. I wanted my two hours back.",
    "Not bad, not great. The second half drags but the ending almost makes up for it.",
    "I laughed, I cried, and I will watch it again. Brilliant.",
)


class ApiServer:
    """`python -m core serve MODEL` in a subprocess on a free port of 127.0.0.1, its output in log_path."""

    def __init__(self, model: Path, log_path: Path, options=()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "core", "serve", str(model), "--port", str(self.port), *options]
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until /v2/health/ready answers 200; fails with the server's log when it never does."""
        return wait_until_ok(self.process, f"{self.url}/v2/health/ready", self.log_path, "the API", timeout)

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()

    def __enter__(self) -> ApiServer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def text_request(texts: list[str]) -> bytes:
    """A V2 inference request body with the reviews as one BYTES input."""
    tensor = {"name": "review", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
    return json.dumps({"inputs": [tensor]}).encode("utf-8")


def _client(port: int, path: str, bodies: list[bytes], times: list[float]) -> None:
    """One client: a kept-alive connection, each body POSTed once in turn; its times appended (seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
        times.append(time.perf_counter() - started)
    connection.close()


def _seconds(threads: list[threading.Thread]) -> float:
    """Start the threads, wait for them all: the seconds that took."""
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def api_round(port: int, name: str, bodies: list[bytes], clients: int) -> tuple[list[float], float]:
    """Request times (seconds) and requests per second of clients clients sending bodies, spread between them."""
    times: list[float] = []
    shares = [bodies[index::clients] for index in range(clients)]
    path = f"/v2/models/{name}/infer"
    threads = [threading.Thread(target=_client, args=(port, path, share, times)) for share in shares]
    return times, len(bodies) / _seconds(threads)


def local_round(predictor, texts: list, clients: int) -> tuple[list[float], float]:
    """The same requests to the Predictor in this process (clients threads; one call a text, or a list of texts)."""
    times: list[float] = []

    def client(share: list) -> None:
        for text in share:
            started = time.perf_counter()
            predictor.predict(text)
            times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(texts[index::clients],)) for index in range(clients)]
    return times, len(texts) / _seconds(threads)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(rounds: list[tuple[list[float], float]]) -> tuple[float, float, float]:
    """Medians over rounds of: median ms, p95 ms, requests per second."""
    return (
        statistics.median(statistics.median(times) * 1000 for times, _ in rounds),
        statistics.median(_percentile(times, 0.95) * 1000 for times, _ in rounds),
        statistics.median(rate for _, rate in rounds),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "imdb_simplernn.onnx")
    parser.add_argument("--requests", type=int, default=400, help="requests a round (default 400)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="reviews a request in the bulk table (default 64)")
    args = parser.parse_args(argv)

    from core.scoring import Predictor
    from core.serving import model_name

    predictor = Predictor.from_file(args.model)
    texts = [SAMPLE_REVIEWS[index % len(SAMPLE_REVIEWS)] + f" ({index})" for index in range(args.requests)]
    bodies = [text_request([text]) for text in texts]
    name = model_name(args.model)
    batching = ("--max-batch-size", "32", "--max-batch-time", "0.002")
    setups = {"API": (), "API, server batching (32 rows, 2 ms)": batching}
    rows = []
    for clients in (1, 8):
        local = [local_round(predictor, texts, clients) for _ in range(args.rounds)]
        rows.append(("in-process Predictor", clients, *_summary(local)))
    for label, options in setups.items():
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"api_speed_{os.getpid()}.log"
        with ApiServer(args.model, log, options) as server:
            api_round(server.port, name, bodies[:50], 8)  # warm up: connections, onnxruntime's first runs
            for clients in (1, 8):
                measured = [api_round(server.port, name, bodies, clients) for _ in range(args.rounds)]
                rows.append((label, clients, *_summary(measured)))
        log.unlink(missing_ok=True)
    print(f"{args.requests} requests a round (one review each), median of {args.rounds} rounds; {args.model.name}")
    _print(rows, 1)

    # Bulk: batches of review-length texts, 1 and 2 clients (this machine's cores).
    long_texts = [" ".join(SAMPLE_REVIEWS * 4) + f" ({index})" for index in range(args.batch * 20)]
    batches = [long_texts[start : start + args.batch] for start in range(0, len(long_texts), args.batch)]
    rows = []
    for clients in (1, 2):
        local = [local_round(predictor, batches, clients) for _ in range(args.rounds)]
        rows.append(("in-process Predictor", clients, *_summary(local)))
    with ApiServer(args.model, log, ()) as server:
        batch_bodies = [text_request(batch) for batch in batches]
        api_round(server.port, name, batch_bodies[:4], 2)
        for clients in (1, 2):
            measured = [api_round(server.port, name, batch_bodies, clients) for _ in range(args.rounds)]
            rows.append(("API", clients, *_summary(measured)))
    log.unlink(missing_ok=True)
    print(f"\n{len(batches)} requests a round of {args.batch} reviews (233 words each)")
    _print(rows, args.batch)
    return 0


def _print(rows: list[tuple], reviews: int) -> None:
    base = {clients: median for label, clients, median, _, _ in rows if label == "in-process Predictor"}
    header = f"{'scorer':<40} {'clients':>7} {'median ms':>10} {'p95 ms':>8} {'req/s':>8} {'reviews/s':>10}"
    print(f"{header} {'x in-process':>12} {'added x':>8}")
    for label, clients, median, p95, rate in rows:
        # The median against in-process, and the time the API adds to it against in-process.
        ratio, added = median / base[clients], (median - base[clients]) / base[clients]
        line = f"{label:<40} {clients:>7} {median:>10.2f} {p95:>8.2f} {rate:>8.0f} {rate * reviews:>10.0f}"
        print(f"{line} {ratio:>11.1f}x {added:>7.1f}x")


if __name__ == "__main__":
    sys.exit(main())
