"""The wire format as pydantic models: what the OpenAPI document shows.

Bodies are not validated through these models: validating 784 numbers per image with
pydantic is slow and its errors cannot name the offending image, so handlers decode
bodies strictly themselves (:mod:`service.decoding`). The models describe the same
format for the documentation (:mod:`service.openapi`) and for clients.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    label: int = Field(description="the most probable digit", examples=[7])
    confidence: float = Field(description="probability of that digit", examples=[0.998])
    probabilities: list[float] = Field(description="10 probabilities summing to 1")
    filename: str | None = Field(default=None, description="/predict_image only")
    prepared: list[list[int]] | None = Field(
        default=None,
        description="/predict_image?prepared=true only: the 28x28 image the model was given",
    )


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
