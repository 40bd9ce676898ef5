"""The OpenAPI entries of the standard protocols (:mod:`service.v2`, :mod:`service.tfserving`).

Described as they behave, as the rest of the document is (:mod:`service.openapi`): every
status a route can answer, the ``{"error": ...}`` body the protocols use for all of them,
and both media types of a V2 answer (JSON, or a JSON header and raw tensors).

TF Serving's ``:classify`` and ``:regress`` are left out: they always answer 501 (they
need ``tf.Example`` inputs), and a documented 5xx is still a server error to a fuzzer
(the suite runs schemathesis against this document). The README describes them.
"""

from __future__ import annotations

from typing import Any

from .config import ServiceSettings

JSON = "application/json"
BINARY = "application/octet-stream"
ERROR_REF = {"$ref": "#/components/schemas/ProtocolError"}
SCHEMAS: dict[str, Any] = {
    "ProtocolError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "description": "every refusal under /v2 and /v1, as those protocols write it",
    }
}
GUARD = (408, 413, 429, 503)
"""What the middleware may answer to any request that carries a body."""
MEANINGS = {
    400: "the request is wrong: the message says what and where",
    401: "no admin token",
    403: "the wrong admin token, or the admin API is disabled",
    404: "no such model, version, label or route",
    405: "the route does not take this method",
    408: "the request body came too slowly",
    409: "the last version serving cannot be unloaded",
    413: "too many images, or too large a body",
    429: "overloaded: retry after Retry-After seconds",
    503: "not ready yet, or shutting down",
    504: "no answer within the request time limit",
}
OBJECT = {"type": "object"}


def _operation(
    description: str,
    ok: dict[str, Any] | None,
    *errors: int,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    tag: str,
) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if ok is not None:
        answers["200"] = ok
    for status in sorted(set(errors)):
        answers[str(status)] = {
            "description": MEANINGS[status],
            "content": {JSON: {"schema": ERROR_REF}},
        }
    found: dict[str, Any] = {"description": description, "responses": answers, "tags": [tag]}
    if body is not None:
        found["requestBody"] = {"required": False, "content": body}
    if parameters:
        found["parameters"] = parameters
    return found


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _parameter(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


MODEL = _parameter("model", "path", {"type": "string"}, "the model's name: mnist")
VERSION = _parameter("version", "path", {"type": "integer", "minimum": 1}, "a served version")
LABEL = _parameter("label", "path", {"type": "string"}, "a version label (MNIST_VERSION_LABELS)")
TENSOR_FIELDS: dict[str, Any] = {
    "name": {"type": "string"},
    "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}},
}
TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": TENSOR_FIELDS,
}


def v2_paths(settings: ServiceSettings) -> dict[str, Any]:
    tag = "Open Inference Protocol (V2)"
    metadata = {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": TENSOR_META},
            "outputs": {"type": "array", "items": TENSOR_META},
        },
    }
    infer_body = {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": OBJECT,
                    "inputs": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "shape", "datatype"],
                            "properties": {
                                **TENSOR_FIELDS,
                                "parameters": OBJECT,
                                "data": {"type": "array"},
                            },
                        },
                    },
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "parameters": OBJECT},
                        },
                    },
                },
                "example": {
                    "inputs": [
                        {
                            "name": "images",
                            "shape": [1, 784],
                            "datatype": "UINT8",
                            "data": [0] * 784,
                        }
                    ]
                },
            }
        },
        BINARY: {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "the JSON header (Inference-Header-Content-Length bytes), then "
                "each binary input's bytes in input order",
            }
        },
    }
    answer = {
        "description": "the outputs; binary ones after the JSON header",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["model_name", "model_version", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": TENSOR_META},
                    },
                }
            },
            BINARY: {"schema": {"type": "string", "format": "binary"}},
        },
    }
    header_length = _parameter(
        "Inference-Header-Content-Length",
        "header",
        {"type": "integer", "minimum": 1},
        "length of the JSON header when binary tensors follow it",
    )
    version_query = _parameter(
        "version", "query", {"type": "integer", "minimum": 1}, "the version to act on"
    )
    paths: dict[str, Any] = {
        "/v2": {"get": _operation("Server metadata.", _ok(OBJECT), tag=tag)},
        "/v2/health/live": {"get": _operation('Liveness: {"live": true}.', _ok(OBJECT), tag=tag)},
        "/v2/health/ready": {
            "get": _operation('Readiness: {"ready": true}, or 503.', _ok(OBJECT), 503, tag=tag)
        },
        "/v2/repository/index": {
            "post": _operation(
                "Every version of the model and its state (READY, LOADING, UNAVAILABLE...).",
                _ok({"type": "array", "items": OBJECT}),
                400,
                *GUARD,
                body={JSON: {"schema": {"type": "object", "properties": {"ready": {}}}}},
                tag=tag,
            )
        },
    }
    for base, where in (
        ("/v2/models/{model}", [MODEL]),
        ("/v2/models/{model}/versions/{version}", [MODEL, VERSION]),
    ):
        paths[base] = {
            "get": _operation(
                "Model metadata.", _ok(metadata), 400, 404, 503, parameters=where, tag=tag
            )
        }
        paths[f"{base}/ready"] = {
            "get": _operation(
                "200 when the model (version) is served.",
                _ok(OBJECT),
                400,
                404,
                503,
                parameters=where,
                tag=tag,
            )
        }
        paths[f"{base}/infer"] = {
            "post": _operation(
                f"Inference: input 'images', UINT8 (or another numeric datatype holding whole "
                f"numbers 0..255), shape [N, 28, 28] or [N, 784], N at most "
                f"{settings.max_images}; JSON data or Triton's binary tensor extension.",
                answer,
                400,
                404,
                504,
                *GUARD,
                body=infer_body,
                parameters=[*where, header_length],
                tag=tag,
            )
        }
    for action in ("load", "unload"):
        found = _operation(
            f"Repository extension: {action} a version (?version=N; by default the newest "
            "on disk for load, the default one for unload). Needs the admin token.",
            _ok(OBJECT),
            400, 401, 403, 404, 409, *GUARD,
            body={JSON: {"schema": OBJECT}},
            parameters=[MODEL, version_query],
            tag=tag,
        )  # fmt: skip
        found["responses"]["202"] = _ok(OBJECT, "accepted, still under way")
        found["security"] = [{"bearer": []}]
        paths[f"/v2/repository/models/{{model}}/{action}"] = {"post": found}
    return paths


def tfserving_paths(settings: ServiceSettings) -> dict[str, Any]:
    tag = "TensorFlow Serving REST API"
    pixels = {"type": "array", "description": "images: 28x28 nested or 784 flat integers 0..255"}
    predict_body = {
        JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "signature_name": {"type": "string", "default": "serving_default"},
                    "instances": pixels,
                    "inputs": {"oneOf": [pixels, {"type": "object"}]},
                },
                "example": {"instances": [[0] * 784]},
            }
        }
    }
    predictions = _ok(
        {
            "type": "object",
            "properties": {"predictions": {"type": "array"}, "outputs": {"type": "object"}},
        },
        "'predictions' for row requests (instances), 'outputs' for columnar ones (inputs)",
    )
    status = _ok({"type": "object", "required": ["model_version_status"]})
    metadata = _ok({"type": "object", "required": ["model_spec", "metadata"]})
    paths: dict[str, Any] = {}
    for base, where in (
        ("/v1/models/mnist", []),
        ("/v1/models/mnist/versions/{version}", [VERSION]),
        ("/v1/models/mnist/labels/{label}", [LABEL]),
    ):
        paths[f"{base}:predict"] = {
            "post": _operation(
                f"Predict, row or columnar (at most {settings.max_images} images).",
                predictions,
                400,
                404,
                504,
                *GUARD,
                body=predict_body,
                parameters=where,
                tag=tag,
            )
        }
        paths[base] = {
            "get": _operation("Model status.", status, 400, 404, 503, parameters=where, tag=tag)
        }
        paths[f"{base}/metadata"] = {
            "get": _operation(
                "The serving signature.", metadata, 400, 404, 503, parameters=where, tag=tag
            )
        }
    return paths


def protocol_paths(settings: ServiceSettings) -> dict[str, Any]:
    return {**v2_paths(settings), **tfserving_paths(settings)}
