"""Plain ASGI middleware: the body-size limit and request metrics, and the predict shortcut.

Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs every request through an
extra task and memory streams; these do their jobs with a wrapped ``send`` and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retain.monitoring.metrics import ServiceMetrics


class LimitsAndMetrics:
    """Refuse bodies over ``max_body_bytes`` (413) and count requests and latency by route."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                detail = f"request body of {value.decode()} bytes exceeds the limit of {self.max_body_bytes}"
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        status = 500  # unless a response starts: an exception escaped every handler
        started = time.perf_counter()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(path, method, str(status)).inc()
            self.metrics.latency.labels(path, method).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class Shortcut:
    """A route's own handler of a request body: its answer, or ``None`` to let the route answer."""

    route: Any  # the route, for the metrics' label
    handle: Callable[[bytes], Awaitable[bytes | None]]


class PredictShortcut:
    """Single predictions without the framework's per-request machinery, same answers.

    FastAPI's path to a route (exception middleware, the router trying each route's pattern,
    the request and response objects, three levels of dependencies) cost a single-record predict
    about as much CPU as scoring it. For ``POST`` to a path in ``shortcuts`` with a key the
    ``allowed`` check accepts, this reads the body and calls the route's own handler directly.
    Anything else, and any request the handler declines (an error, raised before anything of the
    request was stored), goes on to the documented route with the body replayed, so every error
    answer, status and message comes from one place. Sits inside the body limit, the request
    metrics and CORS.
    """

    def __init__(
        self,
        app: ASGIApp,
        shortcuts: Mapping[str, Shortcut],
        allowed: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.app = app
        self.shortcuts = shortcuts
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shortcut = self.shortcuts.get(scope["path"]) if scope["type"] == "http" else None
        if shortcut is None or scope["method"] != "POST" or not await self._allowed(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        answer = await shortcut.handle(raw)
        if answer is None:
            await self.app(scope, _replay(raw, receive), send)
            return
        scope["route"] = shortcut.route
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(answer)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                try:
                    return bool(value) and await self.allowed(value.decode("latin-1"))
                except Exception:  # the key store is down: the route answers (503)
                    return False
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
