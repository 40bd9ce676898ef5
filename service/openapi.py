"""The OpenAPI document at ``/docs.json`` (and so BentoML's docs page at ``/``).

BentoML documents its own routes (health, metrics, the async-job task); the routes of
our app are described here, from the pydantic models of :mod:`service.schemas` and the
request bodies each handler really reads, and merged into BentoML's document.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .schemas import ErrorResponse, PredictRequest, PredictResponse

REF = "#/components/schemas/{model}"


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """JSON schemas of ``models`` and the models they use, keyed by name."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def json_answers(ok: type[BaseModel], *statuses: int) -> dict[str, Any]:
    """``responses`` of an operation: ``ok`` on 200, our error object on each status."""
    answers: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ref(ok)}}}
    }
    for status in statuses:
        answers[str(status)] = {
            "description": "the problem, a stable reason token and where",
            "content": {"application/json": {"schema": ref(ErrorResponse)}},
        }
    return answers


def _files(field: str, description: str, *, many: bool) -> dict[str, Any]:
    item = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": item, "minItems": 1} if many else item
    return {
        "type": "object",
        "properties": {field: {**schema, "description": description}},
        "required": [field],
    }


PREDICT_ERRORS = (400, 413, 415, 503)


def native_paths() -> dict[str, Any]:
    metadata = {
        "description": "The served model (name, version, implementation, test accuracy) "
        "and the limits.",
        "responses": {"200": {"description": "OK", "content": {"application/json": {}}}},
    }
    return {
        "/predict": {
            "post": {
                "description": "Classify images sent as JSON: each 28x28 nested or 784 flat, "
                "whole numbers 0..255.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(PredictRequest)}},
                },
                "responses": json_answers(PredictResponse, *PREDICT_ERRORS),
            }
        },
        "/predict_image": {
            "post": {
                "description": "Classify uploaded image files (PNG, JPEG, BMP, GIF), prepared "
                "the way MNIST digits were.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _files("images", "image files", many=True)
                        }
                    },
                },
                "responses": json_answers(PredictResponse, *PREDICT_ERRORS),
            }
        },
        "/predict_npy": {
            "post": {
                "description": "Classify a .npy of uint8 [N, 28, 28] or [N, 784]: a multipart "
                "upload in field 'array', or the raw body.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _files("array", ".npy bytes (no pickles)", many=False)
                        },
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "responses": json_answers(PredictResponse, *PREDICT_ERRORS),
            }
        },
        "/metadata": {"get": metadata, "post": metadata},
    }


def document(bentoml_spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's document with our routes and schemas added."""
    # A JSON round trip copies it and turns BentoML's integer status keys into strings.
    spec: dict[str, Any] = json.loads(json.dumps(bentoml_spec))
    spec.setdefault("paths", {}).update(native_paths())
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_schemas(PredictRequest, PredictResponse, ErrorResponse))
    return spec
