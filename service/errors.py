"""The one place where client mistakes become HTTP answers.

Domain errors (:mod:`mnist_core.errors`) carry a message, a stable ``reason`` token and
where the problem is; here they get a status and a JSON object body::

    {"error": "image 3 has pixel values outside 0..255", "reason": "out_of_range", "index": 3}

Every refusal is counted in ``mnist_rejected_requests_total{reason}``. Refusals that
happen before our code runs (body size, content type, BentoML's and Starlette's own 4xx)
are given the same shape by :mod:`service.middleware`, with :func:`error_body`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from mnist_core.errors import InputError, PayloadTooLarge, UnsupportedMedia

from .metrics import service_metrics


def status_for(error: InputError) -> int:
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, UnsupportedMedia):
        return 415
    return 400


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_body(message: str, reason: str, **details: Any) -> dict[str, Any]:
    return {"error": message, "reason": reason, **details}


def reject(error: InputError) -> Response:
    """The answer to a client mistake, counted by reason."""
    service_metrics().reject(error.reason)
    return json_response(error.to_dict(), status_for(error))


def not_ready() -> Response:
    """The answer while the model is still loading (not a client mistake, not counted)."""
    return json_response(
        error_body("the model is still loading; retry shortly", "not_ready"),
        503,
        headers={"Retry-After": "1"},
    )
