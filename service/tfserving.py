"""TensorFlow Serving's REST API under ``/v1/models/mnist``, for code written against it.

    POST /v1/models/mnist[/versions/<v>|/labels/<l>]:predict    row or columnar JSON
    POST ...:classify | ...:regress                             501: they need tf.Example
    GET  /v1/models/mnist[/versions/<v>|/labels/<l>]            model status
    GET  /v1/models/mnist[/versions/<v>|/labels/<l>]/metadata   the serving signature

TF Serving puts the method after a colon in the last path segment, so one route takes
every ``/v1/models/...`` path and :func:`mnist_core.tf_serving.parse_target` reads it.
Predictions go through the worker's batcher as every other protocol's do; errors are
raised and written as ``{"error": ...}`` by :mod:`service.errors`.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core import tf_serving
from mnist_core.errors import MethodNotAllowed, NotFound, Unimplemented

from .errors import json_response
from .native import VERSION_HEADER, worker_of


async def models(request: Request) -> Response:
    target = tf_serving.parse_target(request.path_params["path"])
    wanted = "POST" if target.verb else "GET"
    if request.method != wanted:
        raise MethodNotAllowed(
            f"{request.method} is not allowed here: use {wanted}", reason="method_not_allowed"
        )
    if target.verb == "predict":
        return await predict(request, target)
    if target.verb is not None:
        raise Unimplemented(
            f":{target.verb} takes tf.Example inputs, which do not fit this image model: "
            "use :predict"
        )
    worker = worker_of(request)
    if target.metadata:
        version = worker.repository.resolve(target.version, target.label)
        return json_response(tf_serving.model_metadata(version))
    versions = worker.repository.status()
    if target.version is not None or target.label is not None:
        number = (
            target.version
            if target.version is not None
            else worker.repository.resolve(None, target.label)
        )
        versions = [v for v in versions if v["version"] == number]
        if not versions:
            raise NotFound(f"model version {number} is not known", reason="unknown_version")
    return json_response(tf_serving.model_status(versions))


async def predict(request: Request, target: tf_serving.Target) -> Response:
    started = time.perf_counter()
    worker = worker_of(request)
    parsed = tf_serving.parse_predict(await request.body(), max_images=worker.settings.max_images)
    stages = worker.metrics.stages("tfserving")
    decoded = time.perf_counter()
    stages.labels(stage="decode", endpoint="predict").observe(decoded - started)
    scored = await worker.predict(parsed.images, version=target.version, label=target.label)
    predicted = time.perf_counter()
    stages.labels(stage="predict", endpoint="predict").observe(predicted - decoded)
    probabilities, labels = scored.probabilities, scored.labels
    response = json_response(
        tf_serving.predict_answer(parsed, probabilities, labels),
        headers={VERSION_HEADER: str(scored.version)},
    )
    worker.metrics.observe_predictions(labels, probabilities[range(len(labels)), labels])
    stages.labels(stage="postprocess", endpoint="predict").observe(time.perf_counter() - predicted)
    return response


def routes() -> list[BaseRoute]:
    return [Route("/v1/models/{path:path}", models, methods=["GET", "POST"])]
