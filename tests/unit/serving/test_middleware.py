"""The predict shortcut: answers from the route's own handler, or hands the request on intact."""

from __future__ import annotations

import asyncio
from typing import Any

from retain.serving.middleware import PredictShortcut, Shortcut

ROUTE = object()


class Inner:
    """The rest of the app: records what reached it and the body it could read."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.calls.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"from the route"})


def _exchange(
    shortcut: PredictShortcut,
    *,
    path: str = "/v1/dropout/predict",
    method: str = "POST",
    key: bytes | None = b"good",
    chunks: tuple[bytes, ...] = (b'{"students": []}',),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    headers = [(b"content-type", b"application/json")] + ([(b"x-api-key", key)] if key is not None else [])
    scope: dict[str, Any] = {"type": "http", "path": path, "method": method, "headers": headers}
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(shortcut(scope, receive, send))
    return scope, sent


def _shortcut(
    answer: bytes | None, seen: list[bytes] | None = None, allowed: Any = None
) -> tuple[PredictShortcut, Inner]:
    async def handle(raw: bytes) -> bytes | None:
        if seen is not None:
            seen.append(raw)
        return answer

    async def may(key: str) -> bool:
        return key == "good"

    inner = Inner()
    routes = {"/v1/dropout/predict": Shortcut(ROUTE, handle)}
    return PredictShortcut(inner, routes, allowed or may), inner


def test_the_handlers_answer_is_sent_and_the_route_is_named_for_the_metrics() -> None:
    seen: list[bytes] = []
    shortcut, inner = _shortcut(b'{"predictions": []}', seen)
    scope, sent = _exchange(shortcut, chunks=(b'{"students"', b": []}"))
    assert seen == [b'{"students": []}']  # the body from all its chunks
    assert inner.calls == []
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"]) == {b"content-length": b"19", b"content-type": b"application/json"}
    assert sent[1]["body"] == b'{"predictions": []}'
    assert scope["route"] is ROUTE


def test_a_declined_request_reaches_the_route_with_its_body() -> None:
    shortcut, inner = _shortcut(None)
    _, sent = _exchange(shortcut, chunks=(b"not ", b"json"))
    assert inner.calls == [b"not json"]
    assert sent[0]["status"] == 418


def test_without_an_accepted_key_the_route_answers_and_reads_the_body_itself() -> None:
    seen: list[bytes] = []
    for key in (None, b"", b"bad"):
        shortcut, inner = _shortcut(b"{}", seen)
        _exchange(shortcut, key=key)
        assert inner.calls == [b'{"students": []}']
    assert seen == []


def test_a_failing_key_check_leaves_the_answer_to_the_route() -> None:
    async def down(key: str) -> bool:
        raise ConnectionError("key store down")

    shortcut, inner = _shortcut(b"{}", allowed=down)
    _, sent = _exchange(shortcut)
    assert inner.calls == [b'{"students": []}'] and sent[0]["status"] == 418


def test_other_paths_and_methods_pass_through() -> None:
    for path, method in (("/v1/ping", "POST"), ("/v1/dropout/predict", "GET"), ("/v1/other/predict", "POST")):
        shortcut, inner = _shortcut(b"{}")
        _, sent = _exchange(shortcut, path=path, method=method)
        assert len(inner.calls) == 1 and sent[0]["status"] == 418


def test_a_client_that_goes_away_mid_body_gets_nothing_and_nothing_is_handled() -> None:
    seen: list[bytes] = []
    shortcut, inner = _shortcut(b"{}", seen)
    headers = [(b"x-api-key", b"good")]
    scope = {"type": "http", "path": "/v1/dropout/predict", "method": "POST", "headers": headers}
    messages = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(shortcut(scope, receive, send))
    assert seen == [] and inner.calls == [] and sent == []
