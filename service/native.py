"""The native API: ``/predict`` (JSON), ``/predict_image`` (files), ``/predict_npy``, ``/metadata``.

Each handler is a few lines: check the media type, decode the body into a batch
(:mod:`service.decoding`), predict through the worker, answer. Errors are raised, never
caught here: the app's one error path (:mod:`service.errors`) answers them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import decoding
from .errors import json_response
from .worker import Worker

VERSION_HEADER = "X-Model-Version"


def worker_of(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


async def predict(request: Request) -> Response:
    """Classify images sent as JSON (28x28 nested or 784 flat lists of 0..255)."""
    started = time.perf_counter()
    worker = worker_of(request)
    decoding.require_media(request, decoding.JSON)
    batch = decoding.json_images(await request.body(), max_images=worker.settings.max_images)
    return await answer(worker, "predict", batch, started)


async def predict_image(request: Request) -> Response:
    """Classify uploaded image files, prepared the way MNIST digits were."""
    started = time.perf_counter()
    worker = worker_of(request)
    decoding.require_media(request, decoding.MULTIPART)
    upload = await decoding.form_files(request, "images")
    settings = worker.settings
    batch, names = decoding.uploaded_images(
        upload, max_images=settings.max_images, max_pixels=settings.max_image_pixels
    )
    return await answer(worker, "predict_image", batch, started, names)


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
    return await answer(worker, "predict_npy", batch, started)


async def metadata(request: Request) -> Response:
    """The served model (name, version, implementation, test accuracy) and the limits."""
    return json_response(worker_of(request).describe())


async def answer(
    worker: Worker,
    endpoint: str,
    batch: np.ndarray,
    started: float,
    names: list[str] | None = None,
) -> Response:
    """Predict ``batch`` and answer with one prediction per image, in input order."""
    stages = worker.metrics.stage_seconds
    decoded = time.perf_counter()
    stages.labels(stage="decode", endpoint=endpoint).observe(decoded - started)
    scored = await worker.predict(batch)
    predicted = time.perf_counter()
    stages.labels(stage="predict", endpoint=endpoint).observe(predicted - decoded)
    probabilities, labels = scored.probabilities, scored.labels
    confidences = probabilities[np.arange(len(labels)), labels]
    predictions: list[dict[str, Any]] = [
        {"label": label, "confidence": confidence, "probabilities": row}
        for label, confidence, row in zip(
            labels.tolist(), confidences.tolist(), probabilities.tolist(), strict=True
        )
    ]
    if names is not None:
        for prediction, name in zip(predictions, names, strict=True):
            prediction["filename"] = name
    response = json_response(
        {"model_version": scored.version, "predictions": predictions},
        headers={VERSION_HEADER: str(scored.version)},
    )
    worker.metrics.observe_predictions(labels, confidences)
    stages.labels(stage="postprocess", endpoint=endpoint).observe(time.perf_counter() - predicted)
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_image", predict_image, methods=["POST"]),
        Route("/predict_npy", predict_npy, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET", "POST"]),
    ]
