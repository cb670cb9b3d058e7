"""The infer routes, answered before MLServer's app sees them, and MLServer's data plane without the counters no port
shows: the parts of a request's path through MLServer that cost more than they give this server (bench/api_speed.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mlserver.context import model_context
from mlserver.errors import MLServerError, ModelNotReady
from mlserver.handlers import DataPlane
from mlserver.model import MLModel
from mlserver.types import InferenceRequest
from mlserver.utils import extract_headers
from pydantic import ValidationError

from core.serving.guard import error_body

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


def validation_line(errors: list[dict]) -> str:
    """Pydantic's list of errors for a request body, as one line: the first problem, where it is."""
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid"}
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
    return f"not an inference request of the Open Inference Protocol: {where}: {first.get('msg')}"


class QuietDataPlane(DataPlane):
    """MLServer's data plane (response cache, request ids, CloudEvents headers, model context, as they are) without
    its three Prometheus counters a request: they are read only through a metrics port, which this server does not
    open."""

    def __init__(self, plane: DataPlane) -> None:
        # The parts of the server's own plane (settings, registry, cache, middleware): a second plane made anew would
        # register the same counters again, which prometheus_client refuses.
        self.__dict__.update(plane.__dict__)

    @asynccontextmanager
    async def _infer_contextmanager(self, name: str, version: str | None = None) -> AsyncIterator[MLModel]:
        model = await self._model_registry.get_model(name, version)
        if not model.ready:
            raise ModelNotReady(name, version)
        with model_context(model.settings):
            yield model


class InferFront:
    """MLServer's infer routes answered before its app (FastAPI, Starlette's middleware and router) sees them: each
    request through MLServer's data plane with its types and errors, as its own route sends it, but the body read by
    pydantic-core in one step and the answer written in one, straight to the server. Everything else goes on to the
    app. The request's headers are not copied into its parameters as MLServer's route does: ReviewModel reads none."""

    def __init__(self, app, data_plane: DataPlane) -> None:
        self.app = app
        self.data_plane = data_plane

    async def __call__(self, scope, receive, send) -> None:
        route = INFER_PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        status, body, headers = await self._infer(receive, *route.groups())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _infer(self, receive, name: str, version: str | None) -> tuple[int, bytes, list]:
        """The status, body and extra headers of the answer."""
        chunks = []
        while True:  # RequestGuard has read the body whole: one message
            message = await receive()
            if message["type"] != "http.request":
                return 400, b"", []
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            payload = InferenceRequest.model_validate_json(b"".join(chunks))
        except ValidationError as error:
            return 400, error_body(validation_line(error.errors())), []
        try:
            prediction = await self.data_plane.infer(payload, name, version)
        except MLServerError as error:
            return error.status_code, error_body(str(error)), []
        # What the answer's parameters carry as headers (MLServer's CloudEvents ones) goes out as HTTP headers.
        extra = extract_headers(prediction) or {}
        headers = [(key.lower().encode("latin-1"), str(value).encode("latin-1")) for key, value in extra.items()]
        # MLServer's types leave out unset and None fields when they write themselves, as its route's answers do.
        return 200, prediction.model_dump_json().encode("utf-8"), headers
