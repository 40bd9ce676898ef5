"""What one worker process serves with: its settings, metrics, model and request batcher.

Every route handler reaches the model through :class:`Worker`; it is built once per
worker process (by :class:`service.service.MnistService`, or directly by in-process
tests) from settings read once, and handed to the app. The model loads and warms up in
a background thread, so the worker answers ``/livez`` at once and says not ready until
the model can serve; requests that arrive meanwhile wait (a bounded time) for it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable, NotReady
from mnist_core.modeldir import ModelInfo, find_model

from .batching import Batcher
from .config import ServiceSettings
from .metrics import ServiceMetrics

log = logging.getLogger("mnist.service")

LIMITS = ("max_images", "max_batch_images", "max_body_bytes", "max_image_pixels")


@dataclass(frozen=True)
class Scored:
    """Predictions for one request, and the version that made them."""

    version: int
    probabilities: np.ndarray
    labels: np.ndarray


class Worker:
    """The model, its batcher and the worker's readiness.

    ``on_failure(message)`` is called (from the loading thread) when the model cannot be
    loaded; by default the error is only logged.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # Only reads metadata.json: the version is known (and in every response header)
        # from the start, while the model itself loads in the background.
        self.info: ModelInfo = find_model(settings.model_dir)
        self.batcher: Batcher | None = None
        self._on_failure = on_failure
        self._ready = threading.Event()
        self.on_ready: Callable[[Worker], None] | None = None
        """Called (from the loading thread) once the model serves."""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def version(self) -> int:
        """The version this worker serves (or is loading)."""
        return self.info.version

    def start(self, *, background: bool = True) -> None:
        """Load and warm the model, in a thread unless ``background`` is False."""
        if background:
            threading.Thread(target=self._load, name="mnist-model-load", daemon=True).start()
        else:
            self._load()

    def _load(self) -> None:
        from runtime import savedmodel

        try:
            model = savedmodel.load(self.info, threads=self.settings.tf_threads)
            model.warm_up()
        except ModelUnavailable as exc:
            log.error("%s", exc)
            if self._on_failure is not None:
                self._on_failure(str(exc))
            return
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
        if self.on_ready is not None:
            self.on_ready(self)

    async def wait_ready(self) -> Batcher:
        """The batcher, waiting up to ``ready_wait_s`` for a model still loading.

        ``/readyz`` reports each worker's own state, but a client's connection may land
        on a worker still loading while another is ready: it waits instead of failing.
        """
        if self.batcher is None:
            deadline = time.monotonic() + self.settings.ready_wait_s
            while not self._ready.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self.batcher is None:
            raise NotReady("the model is still loading; retry shortly")
        return self.batcher

    async def predict(self, images: np.ndarray) -> Scored:
        batcher = await self.wait_ready()
        probabilities, labels = await batcher.predict(images)
        return Scored(self.version, probabilities, labels)

    def describe(self) -> dict[str, Any]:
        """``/metadata``: the served model and the limits."""
        limits = self.settings.model_dump(include=set(LIMITS))
        return {"model": self.info.describe(), "ready": self.ready, "limits": limits}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
