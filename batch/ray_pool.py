"""Scoring chunks on a pool of Ray actors (``mnist-batch --engine ray``).

Each actor is a process that loads the SavedModel once, in its ``__init__`` (a loaded
TensorFlow model does not pickle, so it is never sent to an actor), with TensorFlow's
thread pools sized to the actor's CPUs: Ray sets ``OMP_NUM_THREADS`` for an actor but
not TensorFlow's own pools, and two actors of one CPU each would otherwise both spread
over every core of their node.

The driver sends each chunk to the actor with the fewest chunks in flight and gets the
predictions back; the job around it (:mod:`.runner`) still commits the rows in input
order through the journal, so the output is byte-identical to ``--local`` and resumes
the same way.

Failures: an actor whose process dies is restarted by Ray (it loads the model again);
the chunks it held are sent again by the driver, to another actor first, and each
resubmission counts as a retry (``--retries`` per chunk, with the service client's
backoff when no actor is up). An exception raised by the model itself is not retried:
the same input would fail again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import resolve_model
from mnist_core.sources import Chunk

from .client import BatchError, RetriesExhausted, RetryPolicy
from .ray_cluster import RayCluster, RayUnavailable
from .scores import Scores

READY_TIMEOUT_S = 600.0
"""How long the actors get to start and load the model (an autoscaling cluster may first
have to add nodes for them)."""
REST_S = 2.0
"""After a failure an actor gets no new chunk for this long if another one is up."""


class ScoringActor:
    """One loaded model in one actor process."""

    def __init__(self, version_dir: str, threads: int) -> None:
        from runtime import savedmodel

        self._model = savedmodel.load(version_dir, threads=threads)
        self._model.warm_up()

    def version(self) -> int:
        return self._model.version

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(probabilities float32 (n, 10), labels int64 (n,), model version)."""
        probabilities, labels = self._model(images)
        return probabilities, labels.astype(np.int64), self._model.version


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


class RayPool:
    """``actors`` scoring actors of ``actor_cpus`` CPUs each on ``cluster``.

    With ``actors`` None the pool fills the cluster's CPUs as they are when it starts.
    Constructing it waits until every actor has loaded the model, so start-up problems
    (no Ray, an unreachable cluster, a model the actors cannot load) surface before the
    job begins, as an :class:`~mnist_core.errors.MnistError`.
    """

    def __init__(
        self,
        model_dir: Path,
        cluster: RayCluster,
        *,
        actors: int | None = None,
        actor_cpus: int = 1,
        policy: RetryPolicy | None = None,
    ) -> None:
        info = resolve_model(model_dir)  # every actor loads this one version
        self.version = info.version
        self.path = info.path
        self.retries = 0
        self._policy = policy or RetryPolicy()
        self._cluster = cluster
        ray = self._ray = cluster.connect()
        try:
            cpus = cluster.cpus()
            count = actors if actors is not None else max(1, int(cpus // actor_cpus))
            if cluster.started and count * actor_cpus > cpus:
                raise RayUnavailable(
                    f"{count} actors of {actor_cpus} CPUs do not fit the local cluster's "
                    f"{cpus:g} CPUs"
                )
            remote = ray.remote(ScoringActor).options(
                num_cpus=actor_cpus,
                # Ray brings a dead actor back (loading the model again) for as long as
                # the job runs; the driver's own resubmissions bound how long a chunk waits.
                max_restarts=-1,
                max_task_retries=0,
            )
            self._actors: list[Any] = [
                # Absolute: actors run in folders of Ray's own, on any node of the cluster.
                remote.remote(str(info.path.resolve()), actor_cpus)
                for _ in range(count)
            ]
            self._in_flight = [0] * count
            self._resting_until = [0.0] * count
            self._wait_ready(cpus, actor_cpus)
        except BaseException:
            self._stop()
            raise

    @property
    def size(self) -> int:
        return len(self._actors)

    @property
    def default_concurrency(self) -> int:
        """Chunks in flight: two per actor, so each has its next chunk queued while it scores."""
        return 2 * len(self._actors)

    def _wait_ready(self, cpus: float, actor_cpus: int) -> None:
        ray = self._ray
        refs = [actor.version.remote() for actor in self._actors]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
        if waiting:
            raise RayUnavailable(
                f"only {len(ready)} of {len(refs)} Ray actors started in {READY_TIMEOUT_S:.0f} s "
                f"(each needs {actor_cpus} CPUs; the cluster has {cpus:g})"
            )
        try:
            versions = set(ray.get(ready))
        except ray.exceptions.RayError as exc:
            raise ModelUnavailable(
                f"the Ray actors could not load {self.path}: {_first_line(exc)}",
                reason="load_failed",
            ) from None
        if versions != {self.version}:
            raise ModelUnavailable(
                f"the Ray actors loaded model versions {sorted(versions)} from {self.path}, "
                f"expected {self.version}",
                reason="bad_metadata",
            )

    def _pick(self) -> int:
        now = time.monotonic()
        up = [i for i, until in enumerate(self._resting_until) if until <= now]
        return min(up or range(len(self._actors)), key=lambda i: self._in_flight[i])

    def _all_resting(self) -> bool:
        now = time.monotonic()
        return all(until > now for until in self._resting_until)

    async def score(self, chunk: Chunk) -> Scores:
        ray = self._ray
        lost = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
        )
        rows = f"rows {chunk.start}..{chunk.stop - 1}"
        # Stored once, so a resubmission sends a reference rather than the pixels again.
        images = ray.put(np.ascontiguousarray(chunk.images))
        attempt = 0
        while True:
            i = self._pick()
            self._in_flight[i] += 1
            try:
                probabilities, labels, version = await self._actors[i].predict.remote(images)
            except lost as exc:
                self._resting_until[i] = time.monotonic() + REST_S
                problem = f"{type(exc).__name__}: {_first_line(exc)}"
            except ray.exceptions.RayError as exc:
                raise BatchError(
                    f"{rows}: the model failed on a Ray actor: {_first_line(exc)}"
                ) from None
            else:
                return Scores(labels=labels, probabilities=probabilities, model_version=version)
            finally:
                self._in_flight[i] -= 1
            if attempt >= self._policy.retries:
                raise RetriesExhausted(
                    f"{rows}: gave up after {attempt} retries; last error: {problem}"
                )
            if self._all_resting():
                await asyncio.sleep(self._policy.delay(attempt))
            attempt += 1
            self.retries += 1

    def _stop(self) -> None:
        for actor in getattr(self, "_actors", ()):
            # One already gone with its node or the cluster has nothing left to free.
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        self._cluster.close()

    async def aclose(self) -> None:
        self._stop()
