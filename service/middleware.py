"""ASGI middleware around BentoML's whole app: body limit, content types, error shape, version.

* A request body over the limit gets 413 before anything parses it. The body is counted
  as it streams in, so a missing or lying ``Content-Length`` does not get around it.
* BentoML's own routes (the async-job task) check their content type here; our own
  routes check theirs in their handlers (:mod:`service.native`).
* BentoML 1.4 answers its own 4xx errors with a JSON *list* (upstream issue #4232) or a
  pydantic error object, and Starlette answers 404/405 in plain text: those bodies are
  rewritten into our ``{"error", "reason", ...}`` object and counted, through
  :mod:`service.errors`.
* Every response carries ``X-Model-Version``: the version that answered when the
  handler set it, else the worker's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_core.errors import MnistError, PayloadTooLarge, UnsupportedMedia

from .errors import error_for_status, error_response
from .worker import Worker

VERSION_HEADER = b"x-model-version"
BODY_METHODS = ("POST", "PUT", "PATCH")


class HttpGuard:
    """See the module docstring.

    ``worker`` returns this process's :class:`~service.worker.Worker` (None before it
    exists); ``content_types`` maps the framework's own POST routes to the types they read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        worker: Callable[[], Worker | None],
        content_types: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.app = app
        self.worker = worker
        self.content_types = content_types or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        worker = self.worker()
        send = self._wrap_send(send, worker)
        if scope["method"] in BODY_METHODS and worker is not None:
            headers = _headers(scope)
            allowed = self.content_types.get(scope["path"])
            if allowed is not None:
                media_type = headers.get("content-type", "").split(";")[0].strip().lower()
                if media_type not in allowed:
                    refusal = UnsupportedMedia(
                        f"content type {media_type or 'none'} is not accepted here; send one of "
                        + ", ".join(t for t in allowed if t),
                        field="content-type",
                    )
                    await _refuse(scope, receive, send, refusal, worker)
                    return
            limit = worker.settings.max_body_bytes
            declared = headers.get("content-length", "")
            body = None
            if not (declared.isdigit() and int(declared) > limit):
                body = await _read_body(receive, limit)
            if body is None:
                await _refuse(scope, receive, send, _too_large(limit), worker)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _wrap_send(send: Send, worker: Worker | None) -> Send:
        held: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                version = worker.version if worker is not None else None
                if version is not None and not any(k.lower() == VERSION_HEADER for k, _ in headers):
                    message["headers"] = [*headers, (VERSION_HEADER, str(version).encode())]
                if 400 <= message["status"] < 500:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body, rewritten = _error_object(held["status"], b"".join(chunks))
                if rewritten and worker is not None:
                    worker.metrics.reject(body["reason"])
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


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than the limit of {limit} bytes",
        reason="body_too_large",
        limit=limit,
    )


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _error_object(status: int, raw: bytes) -> tuple[dict[str, Any], bool]:
    """Our error object for a 4xx body, and whether it had to be rewritten."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
        return error_for_status(status, text).to_dict(), True
    if isinstance(parsed, dict) and "error" in parsed and "reason" in parsed:
        return parsed, False
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # BentoML's list-shaped bodies (upstream issue #4232)
    if not isinstance(parsed, dict):
        return error_for_status(status, str(parsed)).to_dict(), True
    detail = parsed.get("detail")
    field = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # pydantic's
        message = str(detail[0].get("msg") or f"HTTP {status}")
        location = detail[0].get("loc")
        if location:
            field = ".".join(str(part) for part in location)
    else:
        message = str(parsed.get("error") or detail or f"HTTP {status}")
    body = error_for_status(status, message).to_dict()
    if field is not None:
        body["field"] = field
    return body, True


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: MnistError, worker: Worker
) -> None:
    """Answer without reading on; the connection is closed as the body may be unread."""
    response = error_response(error, worker.metrics.reject)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
