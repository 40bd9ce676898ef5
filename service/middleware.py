"""ASGI middleware around BentoML's whole app: admission, body limits, error shape, tracing.

For every request that carries work (POST, PUT, PATCH):

* while the server stops, 503 ``shutting_down``; beyond ``MNIST_MAX_CONCURRENCY``
  requests in flight in this worker, 429 ``overloaded`` with ``Retry-After``, at once:
  shedding costs a fraction of the work it refuses, so the requests that are admitted
  keep their latency;
* a body over the limit gets 413 before anything parses it (counted as it streams in, so
  a missing or lying ``Content-Length`` does not get around it), and a body that takes
  longer than ``MNIST_BODY_TIMEOUT_S`` to arrive gets 408: a slow or stuck client holds
  neither a worker nor memory;
* BentoML's own routes (the async-job task) check their content type here; our own
  routes check theirs in their handlers (:mod:`service.native`);
* requests for the prediction paths, which only our app serves, are handed to it
  directly (``own``), skipping the framework's routing on the hot path.

For every response: BentoML's and Starlette's own 4xx/5xx bodies (a JSON list, upstream
issue #4232, a pydantic error object, plain text) are rewritten into our
``{"error", "reason", ...}`` object through :mod:`service.errors`; ``X-Model-Version``
names the version that answered (the handler's, else the worker's default);
``X-Request-ID`` is the client's (if sane) or a new one, and every error and every slow
request is logged once with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_core.errors import (
    MnistError,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    UnsupportedMedia,
)

from .errors import error_for_status, error_response, protocol_of, shaped
from .worker import Worker

log = logging.getLogger("mnist.service")

VERSION_HEADER = b"x-model-version"
REQUEST_ID_HEADER = b"x-request-id"
BODY_METHODS = ("POST", "PUT", "PATCH")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


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
        own: tuple[ASGIApp, tuple[str, ...]] | None = None,
    ) -> None:
        self.app = app
        self.worker = worker
        self.content_types = content_types or {}
        # Requests under these path prefixes go straight to our own app, not through
        # BentoML's router, request context and mount, which would reach the same app
        # after matching every route twice: the framework never serves these paths.
        self.own_app, self.own_prefixes = own if own is not None else (app, ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        worker = self.worker()
        headers = _headers(scope)
        given = headers.get("x-request-id", "")
        # The same 32 hex digits as uuid4().hex, at a third of its cost.
        request_id = given if given and _SANE_ID.fullmatch(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        outcome: dict[str, Any] = {"status": 0, "reason": None}
        send = _wrap_send(send, worker, request_id, outcome, protocol_of(scope["path"]))
        started = time.perf_counter()
        working = scope["method"] in BODY_METHODS and worker is not None
        admitted = False
        try:
            if working:
                assert worker is not None
                if worker.stopping:
                    refusal: MnistError | None = ShuttingDown(
                        "the server is shutting down; send the request elsewhere"
                    )
                else:
                    settings = worker.settings
                    body, refusal = await _read_body(
                        receive, headers, settings.max_body_bytes, settings.body_timeout_s
                    )
                if refusal is not None:  # the body may be unread: close the connection
                    await _refuse(scope, receive, send, refusal, worker, close=True)
                    return
                refusal = self._admission(worker, scope, headers)
                if refusal is not None:
                    await _refuse(scope, receive, send, refusal, worker, close=False)
                    return
                worker.inflight += 1  # counted from here: a slow body holds no slot
                admitted = True
                receive = _replay(body, receive)
            path: str = scope["path"]
            app = self.own_app if path.startswith(self.own_prefixes) else self.app
            await app(scope, receive, send)
        finally:
            if admitted:
                assert worker is not None
                worker.inflight -= 1
            seconds = time.perf_counter() - started
            slow = worker is not None and seconds > worker.settings.slow_request_s
            if outcome["status"] == 429:
                _SHED.count(outcome["reason"])
            elif outcome["status"] == 503 and scope["method"] == "GET":
                pass  # a readiness answer (loading, draining): probes ask every few seconds
            elif outcome["status"] >= 400 or slow:
                _log_request(scope, request_id, outcome, seconds, slow)

    def _admission(
        self, worker: Worker, scope: Scope, headers: dict[str, str]
    ) -> MnistError | None:
        limit = worker.settings.max_concurrency
        if worker.inflight >= limit:
            return Overloaded(
                f"this worker is working on {limit} requests, its limit; retry shortly"
            )
        allowed = self.content_types.get(scope["path"])
        if allowed is not None:
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in allowed:
                return UnsupportedMedia(
                    f"content type {media_type or 'none'} is not accepted here; send one of "
                    + ", ".join(t for t in allowed if t),
                    field="content-type",
                )
        return None


def _wrap_send(
    send: Send, worker: Worker | None, request_id: str, outcome: dict[str, Any], protocol: str
) -> Send:
    held: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
            ]
            headers.append((REQUEST_ID_HEADER, request_id.encode()))
            version = worker.version if worker is not None else None
            if version is not None and not any(k.lower() == VERSION_HEADER for k, _ in headers):
                headers.append((VERSION_HEADER, str(version).encode()))
            message["headers"] = headers
            outcome["status"] = message["status"]
            if message["status"] >= 400:
                held = message
                return
        elif message["type"] == "http.response.body" and held is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body, rewritten = _error_object(held["status"], b"".join(chunks), protocol)
            outcome["reason"] = body.get("reason")
            if rewritten and worker is not None and held["status"] < 500:
                worker.metrics.reject(body["reason"])
            payload = orjson.dumps(shaped(body, protocol))
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


class _ShedLog:
    """One line a second for the requests shed with 429, not one line each.

    Under overload a line per refusal would be a log storm, costing the CPU shedding
    saves; the refusals are counted exactly in ``mnist_rejected_requests_total``.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.counts: dict[str, int] = {}
        self.since = time.monotonic()

    def count(self, reason: str | None) -> None:
        key = reason or "shed"
        self.counts[key] = self.counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self.since >= self.every_s:
            shed = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
            log.warning("shed with 429 in the last %.1f s: %s", now - self.since, shed)
            self.counts, self.since = {}, now


_SHED = _ShedLog()


def _log_request(
    scope: Scope, request_id: str, outcome: dict[str, Any], seconds: float, slow: bool
) -> None:
    status = outcome["status"]
    level = logging.ERROR if status >= 500 else logging.WARNING
    what = "slow request" if slow and status < 400 else "refused" if status < 500 else "failed"
    log.log(
        level,
        "%s %s %s %s -> %s %s in %.1f ms",
        what,
        request_id,
        scope["method"],
        scope["path"],
        status or "no answer",
        outcome["reason"] or "",
        seconds * 1000,
        extra={
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "reason": outcome["reason"],
            "duration_ms": round(seconds * 1000, 1),
        },
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than the limit of {limit} bytes",
        reason="body_too_large",
        limit=limit,
    )


async def _read_body(
    receive: Receive, headers: dict[str, str], limit: int, timeout_s: float
) -> tuple[bytes, MnistError | None]:
    """The whole body, or the refusal: over ``limit`` bytes, or slower than ``timeout_s``."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"", _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        # One deadline for the whole body; wait_for would cost a task per chunk.
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return b"", _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        return b"", RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s", limit_s=timeout_s
        )
    return b"".join(chunks), None


def _error_object(status: int, raw: bytes, protocol: str) -> tuple[dict[str, Any], bool]:
    """Our error object for an error body, and whether it had to be rewritten.

    Under a standard protocol's prefix our handlers answer ``{"error": ...}`` alone."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
        return error_for_status(status, text).to_dict(), True
    if isinstance(parsed, dict) and "error" in parsed and "reason" in parsed:
        return parsed, False
    if protocol != "native" and isinstance(parsed, dict) and list(parsed) == ["error"]:
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
    scope: Scope, receive: Receive, send: Send, error: MnistError, worker: Worker, *, close: bool
) -> None:
    """Answer ``error``; ``close`` the connection when the body may be left unread."""
    response = error_response(error, worker.metrics.reject, path=scope["path"])
    if close:
        response.headers["connection"] = "close"
    await response(scope, receive, send)
