"""What one worker process serves with: its settings, metrics, model repository and batcher.

Every route handler reaches the models through :class:`Worker`; it is built once per
worker process (by :class:`service.service.MnistService`, or directly by in-process
tests) from settings read once, and handed to the app. The first versions load and warm
up in a background thread, so the worker answers ``/livez`` at once and says not ready
until a version serves; requests that arrive meanwhile wait (a bounded time) for it.
Later versions come and go through the :class:`~service.repository.Repository`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable, NotReady
from mnist_core.modeldir import MODEL_NAME, ModelInfo

from .batching import Batcher
from .config import ServiceSettings
from .metrics import ServiceMetrics
from .repository import Repository, ensure_served

log = logging.getLogger("mnist.service")

LIMITS = ("max_images", "max_batch_images", "max_body_bytes", "max_image_pixels")


@dataclass(frozen=True)
class Scored:
    """Predictions for one request, and the version that made them."""

    version: int
    probabilities: np.ndarray
    labels: np.ndarray


class Worker:
    """The model repository, the request batcher and the worker's readiness.

    ``on_failure(message)`` is called (from the loading thread) when no version can be
    served at start; by default the error is only logged. ``control_file`` is shared by
    the workers of one server for the operators' explicit loads and unloads.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        on_failure: Callable[[str], None] | None = None,
        control_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.repository = Repository(
            settings.model_dir,
            settings.policy,
            settings.labels,
            metrics,
            loader=self._load_model,
            poll_s=settings.model_poll_s,
            control_file=control_file,
        )
        self.batcher = Batcher(
            max_images=settings.max_batch_images,
            observe=metrics.observe_call,
            call_delay_s=settings.model_call_delay_ms / 1000,
        )
        self._on_failure = on_failure
        self._ready = threading.Event()
        self.on_ready: Callable[[Worker], None] | None = None
        """Called (from the loading thread) once the first version serves."""
        self.pid = os.getpid()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and bool(self.repository.served)

    @property
    def version(self) -> int | None:
        """The version a request that names none is answered by (or the one loading)."""
        return self.repository.default_version()

    def start(self, *, background: bool = True) -> None:
        """Load the first versions, in a thread unless ``background`` is False, then watch."""
        if background:
            threading.Thread(target=self._first_load, name="mnist-model-load", daemon=True).start()
        else:
            self._first_load()

    def _load_model(self, info: ModelInfo) -> Any:
        from runtime import savedmodel

        model = savedmodel.load(info, threads=self.settings.tf_threads)
        model.check()
        model.warm_up()
        return model

    def _first_load(self) -> None:
        try:
            self.repository.sync()
            ensure_served(self.repository)
        except ModelUnavailable as exc:
            log.error("%s", exc)
            if self._on_failure is not None:
                self._on_failure(str(exc))
            return
        # TensorFlow and BentoML leave about 250,000 long-lived objects; a full garbage
        # collection walking them all stalls the event loop for about 0.1 s. Frozen, they
        # are never walked again, and full collections only see what requests create.
        gc.freeze()
        self._ready.set()
        self.repository.start()
        if self.on_ready is not None:
            self.on_ready(self)

    async def wait_ready(self) -> None:
        """Wait up to ``ready_wait_s`` for a worker still loading its first version.

        ``/readyz`` reports each worker's own state, but a client's connection may land
        on a worker still loading while another is ready: it waits instead of failing.
        """
        if self.ready:
            return
        deadline = time.monotonic() + self.settings.ready_wait_s
        while not self.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not self.ready:
            raise NotReady("the model is still loading; retry shortly")

    async def predict(
        self, images: np.ndarray, *, version: int | None = None, label: str | None = None
    ) -> Scored:
        """``images`` scored by the version asked for (the default one if none)."""
        await self.wait_ready()
        number = self.repository.resolve(version, label)
        with self.repository.lease(number) as model:
            probabilities, labels = await self.batcher.predict(images, model)
        self.metrics.version_requests.labels(version=str(number)).inc()
        return Scored(number, probabilities, labels)

    def describe(self) -> dict[str, Any]:
        """``/metadata``: the default version, the served ones, the labels and the limits."""
        default = self.version
        entry = self.repository.state_of(default) if default is not None else None
        model = entry.info.describe() if entry is not None and entry.info else {"name": MODEL_NAME}
        return {
            "model": model,
            "served_versions": self.repository.served,
            "labels": self.repository.labels,
            "ready": self.ready,
            "limits": self.settings.model_dump(include=set(LIMITS)),
        }

    def status(self) -> dict[str, Any]:
        """``/models``: every version this worker knows, with its state."""
        repository = self.repository
        return {
            "model": MODEL_NAME,
            "worker": {"pid": self.pid},
            "policy": str(repository.policy),
            "labels": repository.labels,
            "poll_seconds": repository.poll_s,
            "default_version": self.version if repository.served else None,
            "served_versions": repository.served,
            "versions": repository.status(),
        }

    def close(self) -> None:
        self.repository.close()
        self.batcher.close()
