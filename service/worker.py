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
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable, NotReady, Timeout
from mnist_core.modeldir import MODEL_NAME, ModelInfo

from .batching import Batcher
from .config import ServiceSettings
from .metrics import ServiceMetrics
from .repository import Repository, ensure_served
from .rundir import RunDir

STOP_CHECK_S = 0.01
"""How stale the worker's view of the stop signal may be: far below the drain delay."""

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
        run_dir: RunDir | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.run_dir = run_dir
        self.inflight = 0
        """Requests this worker is working on (counted by the middleware)."""
        self.repository = Repository(
            settings.model_dir,
            settings.policy,
            settings.labels,
            metrics,
            loader=self._load_model,
            poll_s=settings.model_poll_s,
            control_file=run_dir.control_file if run_dir else None,
        )
        self.batcher = Batcher(
            max_images=settings.max_batch_images,
            observe=metrics.observe_call,
            call_delay_s=settings.model_call_delay_ms / 1000,
            max_queue_images=settings.max_queue_images,
            inline_images=settings.inline_batch_images,
        )
        self._on_failure = on_failure
        self._ready = threading.Event()
        self._stopped = False
        self._stop_checked_at = 0.0
        self.on_ready: Callable[[Worker], None] | None = None
        """Called (from the loading thread) once the first version serves."""
        self.pid = os.getpid()

    @property
    def ready(self) -> bool:
        """A version serves and the server is not shutting down."""
        return self._ready.is_set() and bool(self.repository.served) and not self.draining

    @property
    def draining(self) -> bool:
        """Shutdown began (readiness says 503; requests are still served)."""
        return self.run_dir is not None and self.run_dir.draining.exists()

    @property
    def stopping(self) -> bool:
        """The drain delay is over: new requests are refused.

        Asked on every request: the file is looked at no more than every
        ``STOP_CHECK_S`` (a stat per request is a measurable share of a small one), and
        once it exists the answer never changes back.
        """
        if self._stopped or self.run_dir is None:
            return self._stopped
        now = time.monotonic()
        if now - self._stop_checked_at >= STOP_CHECK_S:
            self._stop_checked_at = now
            self._stopped = self.run_dir.stopping.exists()
        return self._stopped

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
        from runtime.checks import CheckRecords
        from runtime.runtimes import load_runtime

        settings = self.settings
        records = CheckRecords(self.run_dir.checks_dir) if self.run_dir is not None else None
        loaded = load_runtime(
            info,
            runtime=settings.runtime,
            threads=settings.tf_threads,
            data_dir=settings.data_dir,
            records=records,
        )
        if loaded.fallback is not None:
            log.warning(
                "version %d: the %s runtime was refused, the signature answers: %s",
                info.version,
                settings.runtime,
                loaded.fallback,
            )
        elif loaded.note is not None:
            log.info("version %d: the %s runtime was %s", info.version, loaded.runtime, loaded.note)
        model = loaded.model
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
        if self.serving:
            return
        deadline = time.monotonic() + self.settings.ready_wait_s
        while not self.serving and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not self.serving:
            raise NotReady("the model is still loading; retry shortly")

    @property
    def serving(self) -> bool:
        """A version serves (draining or not)."""
        return self._ready.is_set() and bool(self.repository.served)

    async def predict(
        self, images: np.ndarray, *, version: int | None = None, label: str | None = None
    ) -> Scored:
        """``images`` scored by the version asked for (the default one if none)."""
        await self.wait_ready()
        number = self.repository.resolve(version, label)
        limit = self.settings.request_timeout_s
        with self.repository.lease(number) as model:
            try:
                # On timeout the request's place in the queue is given up: its images are
                # never computed (the batcher skips abandoned requests).
                # asyncio.timeout rather than wait_for: no extra task per request.
                async with asyncio.timeout(limit):
                    probabilities, labels = await self.batcher.predict(images, model)
            except TimeoutError:
                raise Timeout(
                    f"no answer within the request time limit of {limit} s; retry later"
                ) from None
        self.metrics.version_answered(number)
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
