"""The HTTP API (python -m core serve): a real MLServer on 127.0.0.1, spoken to by Triton's own client and by raw
HTTP; the Predictor in this process is the reference."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.api_speed import ApiServer, text_request
from core.data.load import read_reviews
from core.scoring import Predictor
from core.serving import Limits, model_name

ROOT = Path(__file__).resolve().parents[1]
IDS_FILE = ROOT / "models" / "imdb_simplernn.onnx"
TEXT_FILE = ROOT / "models" / "imdb_simplernn.text.onnx"
NAME = "imdb_simplernn"


@pytest.fixture(scope="module", params=[IDS_FILE, TEXT_FILE], ids=["ids file", "text file"])
def served(request, tmp_path_factory):
    """(server, the Predictor of the same file) for each shipped file, one server a file."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with ApiServer(request.param, log, ["--max-rows", "64"]) as server:
        yield server, Predictor.from_file(request.param)


@pytest.fixture(scope="module")
def test_reviews(imdb_archive):
    """Every 500th review of the real test split: 50 reviews of every length the split has."""
    return [review.text for review in read_reviews(imdb_archive, "test")[::500]]


def _client(server):
    import tritonclient.http as triton

    return triton, triton.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=60.0)


def _post(port: int, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload)


def test_readiness_and_metadata_say_what_the_file_is(served):
    server, predictor = served
    _, client = _client(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert metadata["name"] == NAME and metadata["platform"] == "onnxruntime_onnx"
    assert {tensor["name"]: tensor["datatype"] for tensor in metadata["inputs"]} == {
        "input_ids": "INT32", "review": "BYTES"
    }
    assert [tensor["name"] for tensor in metadata["outputs"]][:2] == ["probability", "label"]
    essentials = metadata["parameters"]
    vocabulary = predictor.metadata.vocabulary
    assert essentials["vocabulary_size"] == vocabulary.num_words == 10_000
    assert essentials["text_rule"] == vocabulary.normalization == "imdb-v1"
    assert essentials["threshold"] == predictor.metadata.threshold
    assert essentials["labels"] == ["negative", "positive"]
    assert essentials["file"] == predictor.path.name
    assert essentials["limits"] == {**Limits().to_dict(), "max_rows": 64}


@pytest.mark.data
def test_real_reviews_as_text_score_as_the_predictor_scores_them(served, test_reviews):
    server, predictor = served
    triton, client = _client(server)
    expected = predictor.predict(test_reviews)
    scores, labels, tokens = [], [], []
    for start in range(0, len(test_reviews), 16):
        chunk = test_reviews[start : start + 16]
        tensor = triton.InferInput("review", [len(chunk)], "BYTES")
        tensor.set_data_from_numpy(np.array(chunk, dtype=object), binary_data=False)
        outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probability", "label", "tokens")]
        result = client.infer(NAME, [tensor], outputs=outputs)
        scores += result.as_numpy("probability").tolist()
        labels += [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
        tokens += result.as_numpy("tokens").tolist()
    assert np.max(np.abs(np.array(scores) - [item.score for item in expected])) <= 1e-6
    assert labels == [item.label for item in expected] and {"positive", "negative"} == set(labels)
    assert tokens == [item.tokens for item in expected]


@pytest.mark.data
def test_real_reviews_as_ids_score_as_the_predictor_scores_them(served, test_reviews):
    """Id rows as a client makes them: the file's vocabulary (from its metadata), pre-padded to a common width."""
    server, predictor = served
    triton, client = _client(server)
    sequences = predictor._encode(test_reviews).sequences()
    ids = predictor.pad(sequences, max(len(sequence) for sequence in sequences))
    assert ids.shape[1] > 400  # long reviews are in: rows longer than the model reads are cut as it was trained
    expected = predictor.sequence_probabilities(sequences)
    scores = []
    for start in range(0, len(ids), 25):
        tensor = triton.InferInput("input_ids", list(ids[start : start + 25].shape), "INT32")
        tensor.set_data_from_numpy(ids[start : start + 25], binary_data=False)
        result = client.infer(NAME, [tensor], outputs=[triton.InferRequestedOutput("probability", binary_data=False)])
        scores += result.as_numpy("probability").tolist()
    assert np.max(np.abs(np.array(scores) - expected)) <= 1e-6


def test_an_answer_keeps_the_request_id_and_what_mlserver_adds(served):
    """The infer routes read and write bodies themselves (core.serving.front.InferFront) but answer through MLServer's
    data plane: the request's id comes back, in the body and in MLServer's CloudEvents headers; a model or version the
    server does not have is MLServer's 404."""
    server, _ = served
    body = {"id": "review-7", "inputs": [{"name": "review", "shape": [1], "datatype": "BYTES", "data": ["Dull."]}]}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", f"/v2/models/{NAME}/infer", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    assert answer["id"] == "review-7" and answer["model_name"] == NAME and response.getheader("ce-id") == "review-7"
    assert [output["name"] for output in answer["outputs"]] == ["probability", "label", "tokens", "unknown_tokens",
                                                               "truncated"]
    got, answer = _post(server.port, f"/v2/models/{NAME}/versions/9/infer", json.dumps(body).encode())
    assert got == 404 and "version 9 not found" in answer["error"]
    got, answer = _post(server.port, "/v2/models/another/infer", json.dumps(body).encode())
    assert got == 404 and "another not found" in answer["error"]
    # Only POST is an inference: anything else goes on to MLServer's app, which has no such route.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", f"/v2/models/{NAME}/infer")
    assert connection.getresponse().status == 405
    connection.close()


BAD_REQUESTS = {
    "malformed JSON": (b'{"inputs": [{', 400, "not valid JSON"),
    "not a V2 request": (b'{"reviews": ["good"]}', 400, "inputs"),
    "unknown datatype": (
        b'{"inputs": [{"name": "review", "shape": [1], "datatype": "TEXT", "data": ["good"]}]}', 400, "datatype"
    ),
    "ids as text": (
        b'{"inputs": [{"name": "input_ids", "shape": [1], "datatype": "BYTES", "data": ["1"]}]}', 400, "INT32"
    ),
    "text as numbers": (
        b'{"inputs": [{"name": "review", "shape": [1], "datatype": "INT32", "data": [1]}]}', 400, "BYTES"
    ),
    "shape and data disagree": (
        b'{"inputs": [{"name": "input_ids", "shape": [2, 3], "datatype": "INT32", "data": [1, 2, 3]}]}', 400, "2 x 3"
    ),
    "id outside the vocabulary": (
        b'{"inputs": [{"name": "input_ids", "shape": [1, 2], "datatype": "INT32", "data": [1, 10000]}]}', 400, "9999"
    ),
    "empty review": (
        b'{"inputs": [{"name": "review", "shape": [1], "datatype": "BYTES", "data": [" "]}]}', 400, "empty"
    ),
    "unknown input": (
        b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}', 400, "review"
    ),
    "too many rows": (text_request(["good"] * 65), 413, "at most 64"),
    "row too wide": (
        json.dumps({"inputs": [{"name": "input_ids", "shape": [1, 2001], "datatype": "INT32", "data": [1] * 2001}]})
        .encode(), 413, "2,000",
    ),
    "body too large": (text_request(["a " * (Limits().body_bytes // 2)]), 413, "4,194,304 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_gets_its_4xx_in_one_line_and_the_next_good_one_works(served, case):
    server, _ = served
    body, status, words = BAD_REQUESTS[case]
    got, answer = _post(server.port, f"/v2/models/{NAME}/infer", body)
    assert got == status and words in answer["error"] and "\n" not in answer["error"], answer
    got, answer = _post(server.port, f"/v2/models/{NAME}/infer", text_request(["a wonderful film"]))
    assert got == 200 and answer["outputs"][1]["data"] == ["positive"]


def test_what_the_api_does_not_take(served):
    """No repository calls (they would unload the model), no compressed bodies (a gzip bomb), no binary tensors (the
    JSON answer says how to ask instead), nothing past the body limit when the body comes without a length."""
    server, _ = served
    for action in ("unload", "load"):
        got, answer = _post(server.port, f"/v2/repository/models/{NAME}/{action}", b"{}")
        assert got == 403 and "repository" in answer["error"]
    got, answer = _post(server.port, f"/v2/models/{NAME}/infer", b"\x1f\x8b", {"Content-Encoding": "gzip"})
    assert got == 415 and "compressed" in answer["error"]
    got, answer = _post(server.port, f"/v2/models/{NAME}/infer", b"{}", {"Inference-Header-Content-Length": "2"})
    assert got == 415 and "binary_data=False" in answer["error"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as chunked:
        chunk = b"x" * 65536
        request = f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        chunked.sendall(request)
        try:
            for _ in range(Limits().body_bytes // len(chunk) + 2):
                chunked.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass  # the server answered and closed before the rest was sent
        assert chunked.recv(4096).startswith(b"HTTP/1.1 413")
    _, client = _client(server)
    assert client.is_model_ready(NAME)


def test_replicas_of_one_file_answer_alike_and_alone(served, tmp_path):
    """Scale-out as the README says: a second server of the same file on its own port answers every request as the
    first does (no state between requests, so a load balancer may send any request anywhere), and the first goes on
    answering when the second stops."""
    server, predictor = served
    reviews = ["a wonderful film", "dull, far too long", "not bad at all", "the worst acting i have seen"]
    with ApiServer(predictor.path, tmp_path / "replica.log", ["--max-rows", "64"]) as replica:
        assert replica.port != server.port
        answers = {}
        for index, review in enumerate(reviews * 2):
            target = (server, replica)[index % 2]
            got, answer = _post(target.port, f"/v2/models/{NAME}/infer", text_request([review]))
            assert got == 200
            answers.setdefault(review, []).append(answer["outputs"][0]["data"])
        assert all(first == second for first, second in answers.values())
        replica_metadata = _client(replica)[1].get_model_metadata(NAME)
        assert replica_metadata == _client(server)[1].get_model_metadata(NAME)
    got, _ = _post(server.port, f"/v2/models/{NAME}/infer", text_request(["still here"]))
    assert got == 200


def test_serve_refuses_what_it_cannot_do_in_one_line(tmp_path):
    """Through the command line of this (the dashboard's) environment, which hands over to .venv-serve."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}

    def serve(*arguments):
        return subprocess.run(
            [sys.executable, "-m", "core", "serve", *arguments], cwd=ROOT, env=environment, capture_output=True,
            text=True, timeout=120,
        )

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = serve(str(IDS_FILE), "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and "cannot listen on 127.0.0.1" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = serve(str(tmp_path / "missing.onnx"))
    assert result.returncode == 2 and "no model file" in result.stderr
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    result = serve(str(tmp_path / "broken.onnx"))
    assert result.returncode == 2 and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1
    result = serve(str(IDS_FILE), "--name", "a/b")
    assert result.returncode == 2 and "cannot name the model in a URL" in result.stderr


def test_model_names_come_from_the_file():
    assert model_name(IDS_FILE) == model_name(TEXT_FILE) == NAME
    assert model_name(Path("runs/x/model.onnx"), "imdb-v2") == "imdb-v2"
    with pytest.raises(ValueError, match="in a URL"):
        model_name(Path("my model.onnx"))


def test_the_commands_the_export_page_shows_serve_the_file(tmp_path):
    """serve_commands' first line started as a user would (make, from the project's folder), its request sent."""
    import shlex

    from bench.streamlit_session import free_port
    from core.serving import serve_commands

    model = tmp_path / "my runs" / "model.onnx"  # a path with a space, outside the project
    model.parent.mkdir()
    model.write_bytes(TEXT_FILE.read_bytes())
    port = free_port()
    serve_line, curl_line = serve_commands(model, "run-1", port).splitlines()
    assert serve_line.startswith("make serve ") and "/v2/models/run-1/infer" in curl_line
    log = (tmp_path / "make.log").open("wb")
    process = subprocess.Popen(
        ["bash", "-c", serve_line], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        arguments = shlex.split(curl_line)
        body = arguments[arguments.index("-d") + 1].encode()
        for _ in range(300):
            try:
                got, answer = _post(port, "/v2/models/run-1/infer", body)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "make.log").read_text()
                time.sleep(0.2)
        assert got == 200 and answer["model_name"] == "run-1" and answer["outputs"][1]["data"] == ["positive"]
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    """SIGINT, as Ctrl+C sends it: a graceful shutdown, exit status 0 and no traceback; SIGTERM (a container's stop)
    shuts down as gracefully and ends by the signal, as a stopped server does."""
    import signal

    for sent, status in ((signal.SIGINT, 0), (signal.SIGTERM, -signal.SIGTERM)):
        server = ApiServer(IDS_FILE, tmp_path / f"{sent.name}.log").__enter__()
        server.process.send_signal(sent)
        assert server.process.wait(timeout=30) == status
        server.stop()
        log = (tmp_path / f"{sent.name}.log").read_text()
        assert "Application shutdown complete" in log and "Traceback" not in log, log[-2000:]


def test_the_guard_bounds_requests_in_flight_and_slow_bodies():
    """What all clients together can make the server hold: at most bytes_in_flight of bodies at once, counted at their
    declared length (503 past it, with Retry-After), each arriving within body_seconds (408), freed when they end."""
    import asyncio

    from core.serving.guard import RequestGuard

    answered = []

    async def app(scope, receive, send):
        answered.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = RequestGuard(app, Limits(bytes_in_flight=5, body_seconds=0.3))
    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": [(b"content-length", b"2")]}

    async def request(receive) -> tuple[int, dict, dict]:
        sent = []

        async def send(message):
            sent.append(message)

        await guard(scope, receive, send)
        start, body = sent
        return start["status"], dict(start["headers"]), json.loads(body["body"])

    async def never():  # a client that sends its headers and then nothing, and leaves after 5 s
        await asyncio.sleep(5)
        return {"type": "http.disconnect"}

    async def whole():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def scenario():
        slow = [asyncio.create_task(request(never)) for _ in range(2)]
        await asyncio.sleep(0.05)
        busy = await request(whole)
        timed_out = await asyncio.gather(*slow)
        return busy, timed_out, await request(whole)

    busy, timed_out, after = asyncio.run(scenario())
    assert busy[0] == 503 and busy[1][b"retry-after"] == b"1" and "holds 4 bytes of requests" in busy[2]["error"]
    assert [status for status, _, _ in timed_out] == [408, 408] and "0.3 s" in timed_out[0][2]["error"]
    assert after[0] == 200 and answered == [b"{}"] and guard.bytes_in_flight == 0


def test_a_response_leaves_in_one_send_and_a_lone_header_block_at_the_next_turn():
    """core.serving.transport: the status line and headers wait for the body and go out with it in one write; with no
    body to follow they go at the event loop's next turn; close sends what waits first; the rest is the transport's."""
    import asyncio

    from core.serving.transport import OneSendTransport

    class Recorder:
        def __init__(self) -> None:
            self.writes, self.closed = [], False

        def write(self, data) -> None:
            self.writes.append(bytes(data))

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name):
            return f"info {name}"

    headers, body = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"{}"

    async def scenario():
        loop = asyncio.get_running_loop()
        sent = Recorder()
        transport = OneSendTransport(sent, loop)
        transport.write(headers)
        assert sent.writes == []
        transport.write(body)
        together = list(sent.writes)
        transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        waiting = list(sent.writes)
        await asyncio.sleep(0)
        alone = list(sent.writes)
        transport.write(headers)
        transport.close()
        await asyncio.sleep(0)
        return sent, together, waiting, alone, transport.get_extra_info("socket")

    sent, together, waiting, alone, info = asyncio.run(scenario())
    assert together == [headers + body] and waiting == together
    assert alone == [headers + body, b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert sent.writes == [*alone, headers] and sent.closed and info == "info socket"
