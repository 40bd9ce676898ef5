"""The Open Inference Protocol (V2, as KServe, Triton and MLServer speak it) under ``/v2``.

    GET  /v2                                      server metadata (name, version, extensions)
    GET  /v2/health/live | /v2/health/ready       {"live": true} / {"ready": true}, or 503
    GET  /v2/models/mnist[/versions/<v>]          model metadata
    GET  /v2/models/mnist[/versions/<v>]/ready    200 when served
    POST /v2/models/mnist[/versions/<v>]/infer    JSON, or Triton's binary tensor extension
    POST /v2/repository/index                     every version and its state
    POST /v2/repository/models/mnist/load|unload  the admin control, same token rule

Decoding and answers are :mod:`mnist_core.open_inference`; predictions go through the
worker's batcher as the native API's do, so requests of both may share a model call.
Errors are raised; :mod:`service.errors` writes them as ``{"error": ...}`` here.

The repository extension addresses a model, not a version: ``load`` serves the newest
version on disk and ``unload`` stops the default one, unless ``?version=N`` names one
(Triton's clients pass query parameters on every call). Unlike Triton, the last version
serving is never unloaded (409): the model stays answerable.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core import open_inference
from mnist_core.errors import InputError, NotFound, NotReady
from mnist_core.modeldir import MODEL_NAME, existing_versions

from . import admin
from .errors import json_response
from .native import VERSION_HEADER, worker_of
from .worker import Worker

SERVER_NAME = "mnist-serving"
INDEX_STATES = {
    "loading": "LOADING",
    "available": "READY",
    "unloading": "UNLOADING",
    "unloaded": "UNAVAILABLE",
    "failed": "UNAVAILABLE",
}


def _number(text: str, field: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InputError(
            f"version must be a positive integer, got {text!r}",
            reason="invalid_version",
            field=field,
        )
    return int(text)


def _version(request: Request) -> int | None:
    """The model named in the path (checked) and its version, if the path gives one."""
    open_inference.check_model(request.path_params["model"])
    text = request.path_params.get("version")
    return None if text is None else _number(text, "version")


def _served(worker: Worker, version: int | None) -> list[int]:
    if version is None:
        if not worker.repository.served:
            raise NotReady("the model is still loading; retry shortly")
        return worker.repository.served
    return [worker.repository.resolve(version)]


async def server_metadata(request: Request) -> Response:
    return json_response(
        {
            "name": SERVER_NAME,
            "version": importlib.metadata.version(SERVER_NAME),
            "extensions": list(open_inference.EXTENSIONS),
        }
    )


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    if not worker_of(request).ready:
        raise NotReady("not ready: the model is loading, or the server is shutting down")
    return json_response({"ready": True})


async def model_metadata(request: Request) -> Response:
    versions = _served(worker_of(request), _version(request))
    return json_response(open_inference.model_metadata(versions))


async def model_ready(request: Request) -> Response:
    _served(worker_of(request), _version(request))
    return json_response({"name": MODEL_NAME, "ready": True})


async def infer(request: Request) -> Response:
    started = time.perf_counter()
    worker = worker_of(request)
    version = _version(request)
    header, binary = open_inference.split_body(
        await request.body(), request.headers.get(open_inference.HEADER_LENGTH)
    )
    parsed = open_inference.parse_infer(header, binary, max_images=worker.settings.max_images)
    stages = worker.metrics.stages("v2")
    decoded = time.perf_counter()
    stages.labels(stage="decode", endpoint="infer").observe(decoded - started)
    scored = await worker.predict(parsed.images, version=version)
    predicted = time.perf_counter()
    stages.labels(stage="predict", endpoint="infer").observe(predicted - decoded)
    answer, chunks = open_inference.infer_answer(
        parsed, scored.version, scored.probabilities, scored.labels
    )
    headers = {VERSION_HEADER: str(scored.version)}
    if chunks:
        head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        headers["Inference-Header-Content-Length"] = str(len(head))
        response = Response(
            b"".join([head, *chunks]), media_type="application/octet-stream", headers=headers
        )
    else:
        response = json_response(answer, headers=headers)
    labels = scored.labels
    worker.metrics.observe_predictions(labels, scored.probabilities[np.arange(len(labels)), labels])
    stages.labels(stage="postprocess", endpoint="infer").observe(time.perf_counter() - predicted)
    return response


async def repository_index(request: Request) -> Response:
    worker = worker_of(request)
    body = await request.body()
    try:
        options = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise InputError("the index request is not valid JSON", reason="invalid_json") from None
    ready_only = isinstance(options, dict) and options.get("ready") is True
    index: list[dict[str, Any]] = []
    for entry in worker.repository.status():
        state = INDEX_STATES[entry["state"]]
        if ready_only and state != "READY":
            continue
        index.append(
            {
                "name": MODEL_NAME,
                "version": str(entry["version"]),
                "state": state,
                "reason": entry["error"] or "",
            }
        )
    return json_response(index)


def _target(request: Request, default: int | None) -> int:
    open_inference.check_model(request.path_params["model"])
    text = request.query_params.get("version")
    if text is not None:
        return _number(text, "version")
    if default is None:
        raise NotFound(f"no version of '{MODEL_NAME}' to act on", reason="unknown_version")
    return default


async def load(request: Request) -> Response:
    worker = worker_of(request)
    admin.authorize(request, worker)
    on_disk = existing_versions(worker.repository.root)
    version = _target(request, max(on_disk) if on_disk else None)
    done = await admin.load_version(worker, version)
    return json_response({}, 200 if done else 202)


async def unload(request: Request) -> Response:
    worker = worker_of(request)
    admin.authorize(request, worker)
    version = _target(request, worker.version)
    done = await admin.unload_version(worker, version)
    return json_response({}, 200 if done else 202)


def routes() -> list[BaseRoute]:
    model = "/v2/models/{model}"
    version = "/v2/models/{model}/versions/{version}"
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        *(Route(base, model_metadata, methods=["GET"]) for base in (model, version)),
        *(Route(f"{base}/ready", model_ready, methods=["GET"]) for base in (model, version)),
        *(Route(f"{base}/infer", infer, methods=["POST"]) for base in (model, version)),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", unload, methods=["POST"]),
    ]
