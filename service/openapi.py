"""The OpenAPI document at ``/docs.json`` (and so BentoML's docs page at ``/``).

It states what the API really accepts and answers, so a client generated from it, or a
fuzzer reading it, meets no surprise: every route of our app, BentoML's async-job task
routes described as they behave (BentoML's own description of them is wrong in places:
it promises fields and statuses it never sends), the limits of the answering worker
(images per request, body size) and, on every operation, the refusals the middleware
can answer before a handler runs (408, 413, 415, 429, 503).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from mnist_core.modeldir import REPORT_FILES

from .config import ServiceSettings
from .demo import ASSETS
from .openapi_protocols import SCHEMAS as PROTOCOL_SCHEMAS
from .openapi_protocols import protocol_paths
from .schemas import ErrorResponse, PredictResponse

REF = "#/components/schemas/{model}"
IMAGE_TYPES = "image/png, image/jpeg, image/bmp, image/gif"
JSON = "application/json"
BINARY = {"type": "string", "format": "binary"}


def ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": REF.format(model=name)}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """JSON schemas of ``models`` and the models they use, keyed by name."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(ErrorResponse)}}}


ERRORS = {
    400: "the input is wrong: the body says what and where (reason, index or field)",
    401: "no admin token",
    403: "the wrong admin token, or the admin API is disabled",
    404: "no such model version, label or task",
    408: "the request body came too slowly",
    409: "the request conflicts with the served versions",
    413: "too many images, bytes or pixels",
    415: "a content type this route does not read",
    429: "overloaded: retry after Retry-After seconds",
    503: "not ready yet, or shutting down: retry after Retry-After seconds",
    504: "no answer within the request time limit",
}
GUARD = (408, 413, 429, 503)
"""What the middleware may answer to any request that carries a body."""


def operation(
    description: str,
    ok: dict[str, Any],
    *errors: int,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    answers: dict[str, Any] = {"200": ok}
    for status in sorted(set(errors)):
        answers[str(status)] = _error(ERRORS[status])
    found: dict[str, Any] = {"description": description, "responses": answers}
    if body is not None:
        found["requestBody"] = {"required": True, "content": body}
    if parameters:
        found["parameters"] = parameters
    return found


def json_ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def query(name: str, schema: dict[str, Any], description: str, *, required: bool) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def path_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


VERSION_CHOICE = [
    query("version", {"type": "integer", "minimum": 1}, "a served model version", required=False),
    query("label", {"type": "string"}, "a version label (MNIST_VERSION_LABELS)", required=False),
]
PIXEL = {"type": "integer", "minimum": 0, "maximum": 255}
PREPARED = query(
    "prepared",
    {"type": "boolean", "default": False},
    "also answer with each prepared 28x28 image (field 'prepared'), as the demo page shows it",
    required=False,
)


def images_schema(settings: ServiceSettings) -> dict[str, Any]:
    """``{"images": [...]}``: 1..max_images images, each 28x28 nested or 784 flat."""
    nested = {
        "type": "array",
        "minItems": 28,
        "maxItems": 28,
        "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": PIXEL},
    }
    flat = {"type": "array", "minItems": 784, "maxItems": 784, "items": PIXEL}
    return {
        "type": "object",
        "required": ["images"],
        "properties": {
            "images": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.max_images,
                "items": {"oneOf": [nested, flat]},
                "description": "pixels are whole numbers 0..255, 0 the background",
            }
        },
        "example": {"images": [[*[0] * 300, *[255] * 20, *[0] * 464]]},
    }


def _files(field: str, description: str, media: str, *, most: int | None) -> dict[str, Any]:
    item = {"type": "string", "format": "binary"}
    schema: dict[str, Any] = (
        {"type": "array", "items": item, "minItems": 1, "maxItems": most}
        if most is not None
        else item
    )
    return {
        "schema": {
            "type": "object",
            "properties": {field: {**schema, "description": description}},
            "required": [field],
        },
        "encoding": {field: {"contentType": media}},
    }


def native_paths(settings: ServiceSettings) -> dict[str, Any]:
    predictions = json_ok(ref(PredictResponse), "one prediction per image, in input order")
    predict_errors = (400, 404, 415, 504, *GUARD)
    metadata = operation(
        "The default model version (name, implementation, test accuracy), the served "
        "versions, the labels and the limits.",
        json_ok({"type": "object"}),
    )
    return {
        "/predict": {
            "post": operation(
                "Classify images sent as JSON: each 28x28 nested or 784 flat, whole numbers "
                "0..255.",
                predictions,
                *predict_errors,
                body={JSON: {"schema": images_schema(settings)}},
                parameters=VERSION_CHOICE,
            )
        },
        "/predict_image": {
            "post": operation(
                "Classify uploaded pictures (PNG, JPEG, BMP, GIF), prepared the way MNIST "
                "digits were.",
                predictions,
                *predict_errors,
                body={
                    "multipart/form-data": _files(
                        "images", "picture files", IMAGE_TYPES, most=settings.max_images
                    )
                },
                parameters=[*VERSION_CHOICE, PREPARED],
            )
        },
        "/predict_npy": {
            "post": operation(
                "Classify a .npy of [N, 28, 28] or [N, 784] pixels (any numeric dtype, whole "
                "numbers 0..255): a multipart upload in field 'array', or the raw body.",
                predictions,
                *predict_errors,
                body={
                    "multipart/form-data": _files(
                        "array", ".npy bytes (no pickles)", "application/octet-stream", most=None
                    ),
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
                parameters=VERSION_CHOICE,
            )
        },
        "/metadata": {
            "get": metadata,
            "post": {
                **metadata,
                "responses": {
                    **metadata["responses"],
                    **{str(s): _error(ERRORS[s]) for s in GUARD},
                },
            },
        },
        "/models": {
            "get": operation(
                "Every model version this worker knows, with its state, and which worker answered.",
                json_ok({"type": "object", "required": ["versions", "served_versions", "worker"]}),
            )
        },
    }


def admin_paths() -> dict[str, Any]:
    version = [path_parameter("version", {"type": "integer", "minimum": 1}, "a model version")]
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    paths = {}
    for action, what in (
        ("load", "Serve this version whatever the policy says (a failed one is tried again)."),
        ("unload", "Stop serving this version (never the last one served)."),
    ):
        found = operation(
            f"{what} Needs the admin token (MNIST_ADMIN_TOKEN).",
            json_ok({"type": "object"}, "the answering worker's /models status"),
            400, 401, 403, 404, 409, *GUARD,
            parameters=version,
        )  # fmt: skip
        found["responses"]["202"] = json_ok({"type": "object"}, "accepted, still under way")
        found["security"] = security
        paths[f"/models/{{version}}/{action}"] = {"post": found}
    return paths


TASK_ID = [
    query("task_id", {"type": "string", "minLength": 1}, "from /batch/submit", required=True)
]
TASK_STATUS = {
    "type": "object",
    "required": ["task_id", "status"],
    "properties": {
        "task_id": {"type": "string"},
        "status": {"enum": ["in_progress", "completed", "failed", "cancelled"]},
        "created_at": {"type": "string"},
        "executed_at": {"type": ["string", "null"]},
    },
}
ROWS = {
    "description": "the rows, as mnist-batch writes them",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}


def page_paths() -> dict[str, Any]:
    """The demo page (:mod:`service.demo`) and the training report it shows."""

    version = [path_parameter("version", {"type": "integer", "minimum": 1}, "a served version")]
    png = {"description": "the picture", "content": {"image/png": {"schema": BINARY}}}
    listing = {
        "type": "object",
        "required": ["version", "files"],
        "properties": {
            "version": {"type": "integer"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "url"],
                    "properties": {"name": {"enum": list(REPORT_FILES)}, "url": {"type": "string"}},
                },
            },
        },
    }
    text = {"type": "string"}
    return {
        "/demo": {
            "get": operation(
                "The demo page: draw or upload a digit and see the prediction (no CDN).",
                {"description": "the page", "content": {"text/html": {"schema": text}}},
            )
        },
        "/demo/{name}": {
            "get": operation(
                "The demo page's stylesheet and script.",
                {
                    "description": "the file",
                    "content": {"text/css": {"schema": text}, "text/javascript": {"schema": text}},
                },
                404,
                parameters=[path_parameter("name", {"enum": sorted(ASSETS)}, "the file")],
            )
        },
        "/models/{version}/report": {
            "get": operation(
                "Which training report files a served version has, with their URLs.",
                json_ok(listing),
                400,
                404,
                parameters=version,
            )
        },
        "/models/{version}/report/{name}": {
            "get": operation(
                "One training report picture of a served version (read-only).",
                png,
                400,
                404,
                parameters=[
                    *version,
                    path_parameter("name", {"enum": list(REPORT_FILES)}, "the report file"),
                ],
            )
        },
    }


def task_paths(settings: ServiceSettings) -> dict[str, Any]:
    upload = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": ".npy, .npz or IDX images (gzipped or raw), at most "
                        f"{settings.max_body_bytes} bytes",
                    },
                    "format": {"enum": ["csv", "jsonl"], "default": "csv"},
                },
            }
        }
    }
    return {
        "/batch": {
            "post": operation(
                "Score a file of images and wait for the rows (the async job, run at once).",
                ROWS,
                400,
                415,
                504,
                *GUARD,
                body=upload,
            )
        },
        "/batch/submit": {
            "post": operation(
                "Start an async job scoring a file of images; poll /batch/status.",
                json_ok(TASK_STATUS, "the job's id"),
                400,
                415,
                *GUARD,
                body=upload,
            )
        },
        "/batch/status": {
            "get": operation(
                "The state of an async job.",
                json_ok(TASK_STATUS),
                400,
                404,
                parameters=TASK_ID,
            )
        },
        "/batch/get": {
            "get": operation(
                "The rows of a completed job; a failed job's error (400), or 400 while it runs.",
                ROWS,
                400,
                404,
                parameters=TASK_ID,
            )
        },
        "/batch/retry": {
            "post": operation(
                "Run a finished job again, as a new job.",
                json_ok(TASK_STATUS, "the new job's id"),
                400,
                404,
                *GUARD,
                parameters=TASK_ID,
            )
        },
        "/batch/cancel": {
            "put": operation(
                "Cancelling is not supported by this server: always 400, with the reason.",
                json_ok(TASK_STATUS),
                400,
                *GUARD,
                parameters=TASK_ID,
            )
        },
    }


def document(bentoml_spec: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """BentoML's document with every route described as it behaves."""
    # A JSON round trip copies it and turns BentoML's integer status keys into strings.
    spec: dict[str, Any] = json.loads(json.dumps(bentoml_spec))
    paths = spec.setdefault("paths", {})
    paths.update(native_paths(settings))
    paths.update(admin_paths())
    paths.update(page_paths())
    paths.update(task_paths(settings))
    paths.update(protocol_paths(settings))
    if "/readyz" in paths:
        paths["/readyz"]["get"]["responses"]["503"] = _error("not ready, or shutting down")
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas(PredictResponse, ErrorResponse))
    components["schemas"].update(PROTOCOL_SCHEMAS)
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    return spec
