"""The BentoML service: thin glue between HTTP and the pure decoding and batching code.

Each worker process builds one :class:`MnistService`. The model loads and warms up in a
background thread, so ``/livez`` answers at once and ``/readyz`` says 503 until the
model can serve (requests arriving meanwhile wait for it); if it cannot be loaded the
worker reports why and exits, and ``mnist-serve`` stops with that message
(:mod:`service.cli`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mnist_core.errors import InputError, ModelUnavailable
from mnist_core.modeldir import ModelInfo, find_model
from runtime import savedmodel

from . import decoding, jobs, multipart
from .batching import Batcher
from .config import ServiceSettings
from .errors import json_response, not_ready, reject
from .metrics import service_metrics
from .middleware import HttpGuard
from .schemas import ImageUpload, NpyUpload, PredictRequest, PredictResponse, RawBody, RawFiles

FAILURE_FILE_ENV = "MNIST_SERVE_FAILURE_FILE"
"""Set by ``mnist-serve``: where a worker that cannot load the model writes why."""

JSON = ("application/json", "")
CONTENT_TYPES = {
    "/predict": JSON,
    "/predict_image": ("multipart/form-data",),
    "/predict_npy": ("multipart/form-data", "application/octet-stream", "application/x-npy"),
    "/batch/submit": ("multipart/form-data",),
}


class _Served:
    """This worker process's service instance, for the routes BentoML does not route."""

    service: MnistService | None = None


def _served_version() -> int | None:
    service = _Served.service
    return service.info.version if service is not None else None


async def _get_metadata(_: Request) -> Response:
    service = _Served.service
    return not_ready() if service is None else json_response(service.describe())


@bentoml.service(name="mnist", traffic={"timeout": 60})
class MnistService:
    """MNIST digit recognition: JSON, image and .npy inputs, adaptively batched."""

    def __init__(self) -> None:
        self.settings = ServiceSettings()
        self.metrics = service_metrics()
        try:
            # Only reads metadata.json: the version is known (and in every response
            # header) from the start, while the model itself loads in the background.
            self.info: ModelInfo = find_model(self.settings.model_dir)
        except ModelUnavailable as exc:
            _die(str(exc))
        self.batcher: Batcher | None = None
        self._ready = threading.Event()
        _Served.service = self
        threading.Thread(target=self._load, name="mnist-model-load", daemon=True).start()

    def _load(self) -> None:
        try:
            model = savedmodel.load(self.info, threads=self.settings.tf_threads)
            model.warm_up()
        except ModelUnavailable as exc:
            _die(str(exc))
        self.batcher = Batcher(
            model,
            max_images=self.settings.max_batch_images,
            observe=self.metrics.observe_call,
            call_delay_s=self.settings.model_call_delay_ms / 1000,
        )
        self.metrics.model_info.labels(
            version=str(self.info.version), implementation=self.info.implementation
        ).set(1)
        # TensorFlow and BentoML leave about 250,000 long-lived objects; a full garbage
        # collection walking them all stalls the event loop for about 0.1 s. Frozen, they
        # are never walked again, and full collections only see what requests create.
        gc.freeze()
        self._ready.set()

    async def _model_ready(self) -> bool:
        """Wait (a bounded time) for the model of a worker that is still loading.

        ``/readyz`` reports each worker's own state, but a client's connection may land
        on a worker still loading while another is ready: it waits instead of failing.
        """
        deadline = time.monotonic() + self.settings.ready_wait_s
        while not self._ready.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._ready.is_set()

    def __is_ready__(self) -> bool:
        return self._ready.is_set()

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict(self, images: RawBody) -> Response:
        """Classify images sent as JSON (28x28 nested or 784 flat lists of 0..255)."""
        started = time.perf_counter()
        try:
            batch = decoding.json_images(images.data, max_images=self.settings.max_images)
        except InputError as exc:
            return reject(exc)
        return await self._answer("predict", batch, started)

    @bentoml.api(route="/predict_image", input_spec=ImageUpload, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict_image(self, images: RawFiles) -> Response:
        """Classify uploaded image files, prepared the way MNIST digits were."""
        started = time.perf_counter()
        try:
            batch, names = decoding.uploaded_images(
                images,
                max_images=self.settings.max_images,
                max_pixels=self.settings.max_image_pixels,
            )
        except InputError as exc:
            return reject(exc)
        return await self._answer("predict_image", batch, started, names)

    @bentoml.api(route="/predict_npy", input_spec=NpyUpload, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict_npy(self, array: RawFiles) -> Response:
        """Classify a .npy of uint8 [N, 28, 28] or [N, 784] (upload or raw body)."""
        started = time.perf_counter()
        try:
            batch = decoding.npy_images(array, max_images=self.settings.max_images)
        except InputError as exc:
            return reject(exc)
        return await self._answer("predict_npy", batch, started)

    @bentoml.api(route="/metadata")  # type: ignore[untyped-decorator]
    def metadata(self) -> dict[str, Any]:
        """The served model (name, version, implementation, test accuracy) and the limits.

        ``GET /metadata`` answers the same."""
        return self.describe()

    def describe(self) -> dict[str, Any]:
        limits = self.settings.model_dump(
            include={"max_images", "max_batch_images", "max_body_bytes", "max_image_pixels"}
        )
        model = self.info.describe()
        return {"model": model, "ready": self._ready.is_set(), "limits": limits}

    @bentoml.task(  # type: ignore[untyped-decorator]
        route="/batch", input_spec=jobs.JobUpload, output_spec=jobs.JobRows
    )
    async def batch(self, file: Any, format: str) -> Response:
        """Async job: score an uploaded .npy or IDX file into mnist-batch's output rows."""
        return await jobs.run(self.batcher, self.info, file, format)

    async def _answer(
        self, endpoint: str, batch: np.ndarray, started: float, names: list[str] | None = None
    ) -> Response:
        if self.batcher is None and not await self._model_ready():
            return not_ready()
        assert self.batcher is not None
        stages = self.metrics.stage_seconds
        decoded = time.perf_counter()
        stages.labels(stage="decode", endpoint=endpoint).observe(decoded - started)
        probabilities, labels = await self.batcher.predict(batch)
        predicted = time.perf_counter()
        stages.labels(stage="predict", endpoint=endpoint).observe(predicted - decoded)
        confidences = probabilities[np.arange(len(labels)), labels]
        rows = probabilities.tolist()
        label_list = labels.tolist()
        confidence_list = confidences.tolist()
        predictions: list[dict[str, Any]] = [
            {"label": label, "confidence": confidence, "probabilities": row}
            for label, confidence, row in zip(label_list, confidence_list, rows, strict=True)
        ]
        if names is not None:
            for prediction, name in zip(predictions, names, strict=True):
                prediction["filename"] = name
        response = json_response({"model_version": self.info.version, "predictions": predictions})
        self.metrics.observe_predictions(labels, confidences)
        stages.labels(stage="postprocess", endpoint=endpoint).observe(
            time.perf_counter() - predicted
        )
        return response


SERVICE: bentoml.Service[Any] = MnistService
"""The decorated service (mypy sees the bare class through BentoML's decorator)."""
multipart.install()
SERVICE.add_asgi_middleware(HttpGuard, content_types=CONTENT_TYPES, model_version=_served_version)
# BentoML routes APIs for POST only; metadata is also a plain GET.
SERVICE.mount_asgi_app(Starlette(routes=[Route("/metadata", _get_metadata, methods=["GET"])]))


def _die(message: str) -> NoReturn:
    """Report why the model cannot be served and end this worker process."""
    failure_file = os.environ.get(FAILURE_FILE_ENV)
    if failure_file:
        Path(failure_file).write_text(message + "\n")  # mnist-serve prints it and stops
    else:
        print(f"mnist-serve: {message}", file=sys.stderr, flush=True)
    os._exit(3)
