"""BentoML's multipart reader, made safe for untrusted clients.

BentoML 1.4 reads multipart forms with ``MultipartSerde``, which

* downloads a URL sent as a plain form value in place of a file (a server-side request
  to wherever the client points, and a 500 when that fails),
* lets Starlette's form limits (1,000 parts) and malformed-form errors escape as 500s.

:class:`UploadsOnly` keeps its behaviour otherwise: a plain value stays a plain value
(our input models report it as a client error), form errors become 400, and the part
limit follows from our own limits (images per request, body size). :func:`install`
puts it in BentoML's table of readers for this process.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from _bentoml_impl.serde import ALL_SERDE, MultipartSerde
from bentoml.exceptions import BadInput
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

T = TypeVar("T")
MAX_FORM_PARTS = 100_000
"""Upper bound on form parts; images per request and the body size limit bind first."""


class UploadsOnly(MultipartSerde):  # type: ignore[misc]
    """``MultipartSerde`` without URL downloads, with form errors as client errors."""

    @staticmethod
    async def ensure_file(obj: str | UploadFile) -> Any:
        return obj  # never fetch what a client names; the input model judges the value

    async def parse_request(self, request: Request, cls: type[T]) -> T:
        try:
            # Parsed once here with our limits; the parent reads the cached form.
            await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
        except (MultiPartException, HTTPException) as exc:
            message = getattr(exc, "detail", None) or getattr(exc, "message", str(exc))
            raise BadInput(f"unreadable multipart form: {message}") from None
        return cast(T, await super().parse_request(request, cls))


def install() -> None:
    table = cast(dict[str, Any], ALL_SERDE)
    table["multipart/form-data"] = UploadsOnly
    table["application/x-www-form-urlencoded"] = UploadsOnly
