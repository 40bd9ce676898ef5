"""Request and response models: what BentoML's OpenAPI page shows, and how bodies reach us.

BentoML parses a JSON body with ``model_validate_json`` and a multipart form with
``model_validate`` on the endpoint's input model. Validating 784 numbers per image with
pydantic is slow and its errors cannot name the offending image, so the input models
below override both to hand the raw body or the raw uploaded files to the endpoint,
which decodes them strictly (:mod:`service.decoding`). Their fields still describe the
wire format for the documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue

EXAMPLE_IMAGE: list[JsonValue] = [*[0] * 300, *[255] * 20, *[0] * 464]


@dataclass(frozen=True)
class RawBody:
    """A request body as received, before decoding."""

    data: bytes


@dataclass(frozen=True)
class RawFiles:
    """Uploaded files as received (name, bytes), before decoding; or a non-file value."""

    files: list[tuple[str, bytes]]
    problem: str | None = None


def _raw_files(form: Any, field: str) -> RawFiles:
    from starlette.datastructures import UploadFile

    if not isinstance(form, dict) or field not in form:
        return RawFiles([], problem=f"multipart field '{field}' is missing")
    value = form[field]
    values = value if isinstance(value, list) else [value]
    files: list[tuple[str, bytes]] = []
    for item in values:
        if not isinstance(item, UploadFile):
            return RawFiles([], problem="expected uploaded files, got a plain form value")
        item.file.seek(0)
        files.append((item.filename or "", item.file.read()))
    return RawFiles(files)


class PredictRequest(BaseModel):
    """Images as JSON: each a 28x28 nested list or a flat list of 784 pixel values."""

    model_config = ConfigDict(json_schema_extra={"example": {"images": [EXAMPLE_IMAGE]}})

    images: list[list[list[float]] | list[float]] = Field(
        description="1..max_images images; pixels 0..255 (0 = background), integers or "
        "finite floats (rounded); values in [0, 1] are not rescaled",
    )

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:
        data = json_data.encode() if isinstance(json_data, str) else bytes(json_data)
        return cls.model_construct(images=RawBody(data))


class ImageUpload(BaseModel):
    """One or more image files (PNG, JPEG, BMP, GIF) as multipart field ``images``."""

    images: list[Path] = Field(description="image files; a light background is inverted")

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Self:
        return cls.model_construct(images=_raw_files(obj, "images"))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:
        return cls.model_construct(images=RawFiles([], problem="expected a multipart upload"))


class NpyUpload(BaseModel):
    """A ``.npy`` file of uint8 ``[N, 28, 28]`` or ``[N, 784]``: multipart field ``array``,
    or the raw body with ``Content-Type: application/octet-stream``."""

    array: Path = Field(description=".npy bytes (no pickles)")

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Self:
        return cls.model_construct(array=_raw_files(obj, "array"))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:
        data = json_data.encode() if isinstance(json_data, str) else bytes(json_data)
        return cls.model_construct(array=RawFiles([("", data)]))


class Prediction(BaseModel):
    label: int = Field(description="the most probable digit", examples=[7])
    confidence: float = Field(description="probability of that digit", examples=[0.998])
    probabilities: list[float] = Field(description="10 probabilities summing to 1")
    filename: str | None = Field(default=None, description="/predict_image only")


class PredictResponse(BaseModel):
    """Predictions in input order, and the version of the model that made them."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "model_version": 1,
                "predictions": [
                    {
                        "label": 7,
                        "confidence": 0.9991,
                        "probabilities": [0, 0, 0.0004, 0.0003, 0, 0, 0, 0.9991, 0, 0.0002],
                    }
                ],
            }
        },
    )

    model_version: int
    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    """Every 4xx answer: the problem, a stable reason token, and where (index or field)."""

    error: str
    reason: str
    index: int | None = None
    field: str | None = None
