"""ASGI middleware around BentoML's app: body size and content-type guards, error shape.

* A POST to an API route with a content type the route does not read gets 415, and a
  body over the limit gets 413, before BentoML parses anything. The body is counted as
  it streams in, so a missing or lying ``Content-Length`` does not get around the limit.
* BentoML 1.4 answers its own 4xx errors with a JSON *list* (upstream issue #4232) or a
  pydantic error object, and Starlette answers 404/405 in plain text; those are
  rewritten into our ``{"error", "reason", ...}`` object and counted.
* Every response carries ``X-Model-Version`` once the model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .errors import error_body
from .metrics import service_metrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

REASON_BY_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


class HttpGuard:
    """See the module docstring; ``content_types`` maps a POST route to the types it reads."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        content_types: Mapping[str, tuple[str, ...]],
        model_version: Callable[[], int | None],
        max_body_bytes: int | None = None,
    ) -> None:
        from .config import ServiceSettings

        self.app = app
        # Built when the worker builds its app, not at import: settings come from the env.
        self.max_body_bytes = max_body_bytes or ServiceSettings().max_body_bytes
        self.content_types = content_types
        self.model_version = model_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._wrap_send(send)
        allowed = self.content_types.get(scope["path"])
        if scope["method"] == "POST" and allowed is not None:
            headers = _headers(scope)
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in allowed:
                shown = media_type or "none"
                await _refuse(
                    send,
                    415,
                    error_body(
                        f"content type {shown} is not accepted here; send one of "
                        + ", ".join(t for t in allowed if t),
                        "unsupported_media_type",
                        field="content-type",
                    ),
                )
                return
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await _refuse(send, 413, self._too_large())
                return
            body = await self._read_body(receive)
            if body is None:
                await _refuse(send, 413, self._too_large())
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _too_large(self) -> dict[str, Any]:
        return error_body(
            f"request body is larger than the limit of {self.max_body_bytes} bytes",
            "body_too_large",
            limit=self.max_body_bytes,
        )

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _wrap_send(self, send: Send) -> Send:
        held: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                version = self.model_version()
                if version is not None:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-model-version", str(version).encode()),
                    ]
                if 400 <= message["status"] < 500:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body, changed = _error_object(held["status"], b"".join(chunks))
                if changed:
                    service_metrics().reject(body["reason"])
                payload = orjson.dumps(body)
                headers = [
                    (k, v)
                    for k, v in held.get("headers", [])
                    if k.lower() not in (b"content-length", b"content-type")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                held = None
                return
            await send(message)

        return wrapped


def _error_object(status: int, raw: bytes) -> tuple[dict[str, Any], bool]:
    """Our error object for a 4xx body, and whether it had to be rewritten."""
    reason = REASON_BY_STATUS.get(status, "bad_request")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
        return error_body(text, reason), True
    if isinstance(parsed, dict) and "error" in parsed and "reason" in parsed:
        return parsed, False
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]
    if isinstance(parsed, dict):
        body = error_body(str(parsed.get("error") or parsed.get("detail") or status), reason)
        detail = parsed.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            location = detail[0].get("loc")
            body["error"] = f"{body['error']}: {detail[0].get('msg', '')}".rstrip(": ")
            if location:
                body["field"] = ".".join(str(part) for part in location)
        return body, True
    return error_body(str(parsed), reason), True


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # type: ignore[no-any-return]

    return replayed


async def _refuse(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer without reading on; the connection is closed as the body may be unread."""
    service_metrics().reject(body["reason"])
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
