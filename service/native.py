"""The native API: ``/predict`` (JSON), ``/predict_image`` (files), ``/predict_npy``, ``/metadata``.

Each handler is a few lines: check the media type, decode the body into a batch
(:mod:`service.decoding`), predict through the worker, answer. Errors are raised, never
caught here: the app's one error path (:mod:`service.errors`) answers them.

Every prediction route takes an optional ``?version=N`` or ``?label=NAME`` choosing the
model version (the highest served one by default); ``GET /models`` lists the versions
this worker knows with their states.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core.errors import InputError, NotFound

from . import decoding
from .errors import json_response
from .worker import Worker

VERSION_HEADER = "X-Model-Version"


def worker_of(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


def chosen_version(request: Request) -> tuple[int | None, str | None]:
    """The ``version`` or ``label`` query parameter (at most one of them)."""
    if not request.scope.get("query_string"):
        return None, None  # most requests: parsing no query costs more than this check
    params = request.query_params
    version, label = params.get("version"), params.get("label")
    if version is not None and label is not None:
        raise InputError("give a version or a label, not both", reason="bad_request")
    if version is None:
        return None, label
    return parse_version(version), None


MAX_VERSION = 2**63 - 1
"""Above this no version can be served (nor written in a JSON answer by orjson)."""


def parse_version(text: str) -> int:
    """A version number from a query or a path: a positive integer that may be served."""
    if not text.isdigit() or int(text) < 1:
        raise InputError(
            f"version must be a positive integer, got {text!r}",
            reason="invalid_version",
            field="version",
        )
    if int(text) > MAX_VERSION:
        raise NotFound(f"model version {text} is not served", reason="unknown_version")
    return int(text)


async def predict(request: Request) -> Response:
    """Classify images sent as JSON (28x28 nested or 784 flat lists of 0..255)."""
    started = time.perf_counter()
    worker = worker_of(request)
    decoding.require_media(request, decoding.JSON)
    batch = decoding.json_images(await request.body(), max_images=worker.settings.max_images)
    return await answer(request, "predict", batch, started)


async def predict_image(request: Request) -> Response:
    """Classify uploaded image files, prepared the way MNIST digits were."""
    started = time.perf_counter()
    worker = worker_of(request)
    decoding.require_media(request, decoding.MULTIPART)
    show_prepared = wants_prepared(request)
    upload = await decoding.form_files(request, "images")
    settings = worker.settings
    batch, names = decoding.uploaded_images(
        upload, max_images=settings.max_images, max_pixels=settings.max_image_pixels
    )
    prepared = batch if show_prepared else None
    return await answer(request, "predict_image", batch, started, names, prepared)


async def predict_npy(request: Request) -> Response:
    """Classify a .npy of uint8 [N, 28, 28] or [N, 784] (upload or raw body)."""
    started = time.perf_counter()
    worker = worker_of(request)
    kind = decoding.require_media(request, decoding.NPY)
    if kind in decoding.MULTIPART:
        upload = await decoding.form_files(request, "array")
    else:
        upload = decoding.RawFiles([("", await request.body())])
    batch = decoding.npy_images(upload, max_images=worker.settings.max_images)
    return await answer(request, "predict_npy", batch, started)


def wants_prepared(request: Request) -> bool:
    """``?prepared=true``: also answer with each prepared 28x28 image."""
    value = request.query_params.get("prepared", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InputError(
            f"prepared must be true or false, got {value!r}",
            reason="bad_request",
            field="prepared",
        )
    return value in ("true", "1")


async def metadata(request: Request) -> Response:
    """The default model version (name, implementation, test accuracy), the served ones."""
    return json_response(worker_of(request).describe())


async def models(request: Request) -> Response:
    """Every version this worker knows: loading, available, unloading, unloaded, failed."""
    return json_response(worker_of(request).status())


async def answer(
    request: Request,
    endpoint: str,
    batch: np.ndarray,
    started: float,
    names: list[str] | None = None,
    prepared: np.ndarray | None = None,
) -> Response:
    """Predict ``batch`` and answer with one prediction per image, in input order."""
    worker = worker_of(request)
    version, label = chosen_version(request)
    metrics = worker.metrics
    decoded = time.perf_counter()
    metrics.stage("decode", endpoint).observe(decoded - started)
    scored = await worker.predict(batch, version=version, label=label)
    predicted = time.perf_counter()
    metrics.stage("predict", endpoint).observe(predicted - decoded)
    probabilities, labels = scored.probabilities, scored.labels
    confidences = probabilities[np.arange(len(labels)), labels]
    # float32 rows and scalars go to orjson as they are: it writes each number's shortest
    # float32 spelling (0.99999994, not 0.9999999403953552), a third less text to encode,
    # send and parse, and the same value when read back as float32.
    predictions: list[dict[str, Any]] = [
        {"label": label, "confidence": confidence, "probabilities": row}
        for label, confidence, row in zip(labels.tolist(), confidences, probabilities, strict=True)
    ]
    if names is not None:
        for prediction, name in zip(predictions, names, strict=True):
            prediction["filename"] = name
    if prepared is not None:  # what the model was given, to show what preparation did
        for prediction, image in zip(predictions, prepared.tolist(), strict=True):
            prediction["prepared"] = image
    response = json_response(
        {"model_version": scored.version, "predictions": predictions},
        headers={VERSION_HEADER: str(scored.version)},
    )
    metrics.observe_predictions(labels, confidences)
    metrics.stage("postprocess", endpoint).observe(time.perf_counter() - predicted)
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_image", predict_image, methods=["POST"]),
        Route("/predict_npy", predict_npy, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET", "POST"]),
        Route("/models", models, methods=["GET"]),
    ]
