"""The HTTP API's front door (plain ASGI, before MLServer sees a request): bounded bodies, no compressed bodies, no
model repository calls, and one JSON line for every refusal."""

from __future__ import annotations

import json

from core.serving.limits import Limits

REPOSITORY_PATH = "/v2/repository"


async def refuse(send, status: int, message: str) -> None:
    """An error response in MLServer's own form, {"error": message}."""
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Wraps the API's ASGI app. A body is read whole (up to limits.body_bytes) before the app parses it, so a request
    cannot make the server hold more than that; MLServer would otherwise read any length, and inflate any gzip body."""

    def __init__(self, app, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The repository API loads and unloads models on request: this server serves one file, fixed at its start.
        if scope["path"].rstrip("/").startswith(REPOSITORY_PATH):
            await refuse(send, 403, "the model repository API is off: this server serves one file, fixed at its start")
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-encoding", b"identity").strip().lower() not in (b"", b"identity"):
            await refuse(send, 415, "compressed request bodies are not accepted: send plain JSON")
            return
        if b"inference-header-content-length" in headers:
            await refuse(send, 415, "binary tensors are not accepted: send JSON (tritonclient: binary_data=False)")
            return
        limit = self.limits.body_bytes
        length = headers.get(b"content-length")
        too_large = f"the request body is larger than {limit:,} bytes, the limit: send fewer or shorter reviews"
        if length is not None and (not length.strip().isdigit() or int(length) > limit):
            await refuse(send, 413, too_large)
            return
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:  # a body sent without a length (chunked)
                await refuse(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # The protocol's bodies are JSON whatever the client labels them (curl -d says a form): FastAPI parses a body
        # as JSON only when the header says so.
        headers[b"content-type"] = b"application/json"
        scope = {**scope, "headers": list(headers.items())}
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
