"""The one place where errors become HTTP answers.

Domain errors (:mod:`mnist_core.errors`) carry a message, a stable ``reason`` token, the
status they stand for and where the problem is; :func:`error_response` turns any of them
into the JSON object body every refusal has::

    {"error": "image 3 has pixel values outside 0..255", "reason": "out_of_range", "index": 3}

Under the standard protocols' prefixes (``/v2``, the Open Inference Protocol, and
``/v1/``, TensorFlow Serving's REST API) the body is theirs, ``{"error": "<message>"}``
(:func:`protocol_of`, :func:`shaped`): their clients read that key and nothing else.

Route handlers raise; the app's exception handlers (:func:`exception_handlers`) answer.
The middleware answers its own refusals (body size, content type) through
:func:`error_response` too, and rewrites the bodies of BentoML's and Starlette's own
4xx answers with :func:`error_for_status`. Client mistakes (4xx) are counted in
``mnist_rejected_requests_total{reason}``; anything unexpected is logged with its
traceback and answered with a generic 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mnist_core.errors import (
    InputError,
    MethodNotAllowed,
    MnistError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    Timeout,
    Unimplemented,
    UnsupportedMedia,
)

log = logging.getLogger("mnist.service")

Rejected = Callable[[str], None]
"""Counts a refusal by reason (the worker's metrics)."""


def protocol_of(path: str) -> str:
    """``v2``, ``tfserving`` or ``native``: which API a path belongs to (a metrics label)."""
    if path == "/v2" or path.startswith("/v2/"):
        return "v2"
    if path.startswith("/v1/"):
        return "tfserving"
    return "native"


def shaped(body: dict[str, Any], protocol: str) -> dict[str, Any]:
    """An error body as ``protocol`` writes it: ours whole, or only the message."""
    return body if protocol == "native" else {"error": body.get("error", "")}


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(
    error: MnistError, rejected: Rejected | None = None, *, path: str = ""
) -> Response:
    """The answer to ``error`` on ``path``: its status, the JSON body of the path's
    protocol, ``Retry-After`` where it applies."""
    protocol = protocol_of(path)
    if rejected is not None and 400 <= error.status < 500:
        rejected(error.reason)
    headers = None
    if error.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return json_response(shaped(error.to_dict(), protocol), error.status, headers)


STATUS_ERRORS: dict[int, type[MnistError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    413: PayloadTooLarge,
    415: UnsupportedMedia,
    429: Overloaded,
    501: Unimplemented,
    503: NotReady,
    504: Timeout,
}


def error_for_status(status: int, message: str) -> MnistError:
    """The domain error a framework's own ``status`` answer stands for."""
    kind = STATUS_ERRORS.get(status)
    if kind is not None:
        return kind(message)
    if 400 <= status < 500:
        return InputError(message, reason="bad_request")
    # A framework's 500 says nothing a client can use; its log has the details.
    return MnistError("internal error; the server log has the details")


def _rejected_of(request: Request) -> Rejected | None:
    worker = getattr(request.app.state, "worker", None)
    return worker.metrics.reject if worker is not None else None


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MnistError)
    if exc.status >= 500 and type(exc) is MnistError:
        log.error("internal error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(exc, _rejected_of(request), path=request.url.path)


async def _routing(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = error_for_status(exc.status_code, str(exc.detail))
    return error_response(error, _rejected_of(request), path=request.url.path)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Any]]:
    """For ``Starlette(exception_handlers=...)``: the errors the app's routes raise."""
    return {MnistError: _domain, HTTPException: _routing}


class CatchAll:
    """ASGI middleware: an exception nothing else answered becomes a logged, generic 500.

    Starlette's own handler for ``Exception`` re-raises after answering, which would
    reach BentoML's app around ours as a second error; this one ends it here.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started or scope["type"] != "http":
                raise
            answer = error_response(
                MnistError("internal error; the server log has the details"),
                path=scope.get("path", ""),
            )
            await answer(scope, receive, send)
