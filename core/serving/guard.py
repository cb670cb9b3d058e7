"""The HTTP API's front door (plain ASGI, before MLServer sees a request): bounded bodies, no compressed bodies, no
model repository calls, and one JSON line for every refusal."""

from __future__ import annotations

import asyncio
import json

from core.serving.limits import Limits

REPOSITORY_PATH = "/v2/repository"


class _TooLarge(Exception):
    """The body passed the limit."""


class _ClientLeft(Exception):
    """The client went away before its body arrived."""


def error_body(message: str) -> bytes:
    """An error answer's body in MLServer's own form, {"error": message}."""
    return json.dumps({"error": message}).encode("utf-8")


async def refuse(send, status: int, message: str, extra_headers: list | None = None) -> None:
    """An error response in MLServer's own form."""
    body = error_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Wraps the API's ASGI app. A body is read whole (up to limits.body_bytes) before the app parses it, so a request
    cannot make the server hold more than that; MLServer would otherwise read any length, and inflate any gzip body."""

    def __init__(self, app, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.bytes_in_flight = 0  # of requests being read or answered (one event loop: no lock needed)

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
        # What all clients together can make it hold: the bodies of the requests in flight, each counted at its
        # declared length (at the limit when it has none, as a chunked body may grow to it) until it is answered.
        share = int(length) if length is not None else limit
        if self.bytes_in_flight + share > self.limits.bytes_in_flight:
            await refuse(
                send, 503, f"the server holds {self.bytes_in_flight:,} bytes of requests, near its limit of "
                f"{self.limits.bytes_in_flight:,}: retry in a moment", [(b"retry-after", b"1")],
            )
            return
        self.bytes_in_flight += share
        try:
            try:
                async with asyncio.timeout(self.limits.body_seconds):  # a deadline, not a task a request
                    body = await self._body(receive, limit)
            except TimeoutError:
                await refuse(send, 408, f"the request body did not arrive within {self.limits.body_seconds:g} s")
                return
            except _TooLarge:
                await refuse(send, 413, too_large)
                return
            except _ClientLeft:
                return
            # The protocol's bodies are JSON whatever the client labels them (curl -d says a form): FastAPI parses a
            # body as JSON only when the header says so.
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
        finally:
            self.bytes_in_flight -= share

    @staticmethod
    async def _body(receive, limit: int) -> bytes:
        """The whole body, or _TooLarge past limit bytes (a body sent without a length, chunked), or _ClientLeft."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientLeft
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise _TooLarge
            if not message.get("more_body", False):
                return b"".join(chunks)
