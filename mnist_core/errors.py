"""Domain errors of the MNIST project.

Each carries a stable ``reason`` token (a metrics label and the ``reason`` field of an
error body) and the HTTP ``status`` it stands for. Nothing here builds an HTTP answer:
the service turns any of them into one in exactly one place (``service.errors``).

    MnistError                 500 internal: a bug, never a client's doing
    ├── DataFileError          400 invalid_file: a data file is missing, truncated or corrupt
    ├── ModelUnavailable       503 model_unavailable: no usable model where one should be
    ├── NotReady               503 not_ready: the model is still loading
    ├── ShuttingDown           503 shutting_down: the server is stopping
    ├── Timeout                504 timeout: the answer took longer than the request time limit
    ├── Overloaded             429 overloaded: more queued work than the service takes on
    ├── Conflict               409 conflict: a request the current state does not allow
    ├── Unimplemented          501 unimplemented: a standard protocol's call this model lacks
    ├── ResumeError            a batch job's unfinished output cannot be continued
    └── InputError             400 invalid_input: a client sent input we cannot score
        ├── Unauthorized       401 unauthorized: an admin request without a token
        ├── Forbidden          403 forbidden: the wrong token, or the admin API is disabled
        ├── NotFound           404 not_found: no such route, model version or label
        ├── RequestTimeout     408 body_timeout: the body came too slowly
        ├── MethodNotAllowed   405 method_not_allowed
        ├── PayloadTooLarge    413 too_large: too many images, bytes or pixels
        └── UnsupportedMedia   415 unsupported_media_type: a content type we do not read
"""

from __future__ import annotations

from typing import Any


class MnistError(Exception):
    """Base of every error this project raises on purpose."""

    status = 500
    reason = "internal"
    retry_after: float | None = None
    """Seconds a client should wait before trying again, for statuses that invite it."""

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: the message, the reason, and where (``index``, ``field``...)."""
        return {"error": self.message, "reason": self.reason, **self.details}


class DataFileError(MnistError):
    """A data file is missing, truncated or corrupt; the message names the file."""

    status = 400
    reason = "invalid_file"

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class ModelUnavailable(MnistError):
    """There is no usable model; the message says what is missing and what to do."""

    status = 503
    reason = "model_unavailable"


class NotReady(MnistError):
    """The model is still loading; a retry shortly will succeed."""

    status = 503
    reason = "not_ready"
    retry_after = 1.0


class ShuttingDown(MnistError):
    """The server is stopping and takes no new work; another replica will."""

    status = 503
    reason = "shutting_down"
    retry_after = 1.0


class Timeout(MnistError):
    """The answer took longer than the request time limit; the work was abandoned."""

    status = 504
    reason = "timeout"


class Overloaded(MnistError):
    """More work is queued than the service takes on; the client should back off."""

    status = 429
    reason = "overloaded"
    retry_after = 1.0


class Conflict(MnistError):
    """A valid request that the current state does not allow (unloading the last version)."""

    status = 409
    reason = "conflict"


class Unimplemented(MnistError):
    """A call a standard protocol defines that does not fit this model (TF Serving's
    ``:classify`` and ``:regress``)."""

    status = 501
    reason = "unimplemented"


class ResumeError(MnistError):
    """A batch job's unfinished output belongs to another job or cannot be continued."""

    status = 400
    reason = "cannot_resume"


class InputError(MnistError):
    """Client input that cannot be scored.

    ``details`` name where the problem is, for example ``{"index": 3}`` or
    ``{"field": "images"}``.
    """

    status = 400
    reason = "invalid_input"


class Unauthorized(InputError):
    """An admin request without credentials."""

    status = 401
    reason = "unauthorized"


class Forbidden(InputError):
    """An admin request with the wrong credentials, or while the admin API is disabled."""

    status = 403
    reason = "forbidden"


class NotFound(InputError):
    """No such route, model version or label."""

    status = 404
    reason = "not_found"


class RequestTimeout(InputError):
    """The client took longer than allowed to send its request body."""

    status = 408
    reason = "body_timeout"


class MethodNotAllowed(InputError):
    """The route exists but does not take this HTTP method."""

    status = 405
    reason = "method_not_allowed"


class PayloadTooLarge(InputError):
    """More images, bytes or pixels than the configured maximum."""

    status = 413
    reason = "too_large"


class UnsupportedMedia(InputError):
    """A content type or file format we do not read."""

    status = 415
    reason = "unsupported_media_type"
