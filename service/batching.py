"""Adaptive batching inside one worker, counted in images rather than requests.

Requests put their validated ``uint8 [n, 28, 28]`` arrays on a queue and wait. Whenever
the model is idle, one drain task takes everything queued for the same model version, up
to ``max_images`` images, and runs one model call in a dedicated thread (TensorFlow
releases the GIL, so the event loop keeps accepting and decoding requests meanwhile;
those form the next call); a call of at most ``inline_images`` images runs on the event
loop itself, which saves the two thread hand-offs that cost more than such a call. A
request larger than ``max_images`` is split into chunks first, so no call ever exceeds
the limit, and its answer is put back together in order. Requests for different model
versions share the queue and the thread but never a call: a call takes consecutive
requests for one version.

The queue is bounded in images (``max_queue_images``): a request that would queue more
is refused at once with :class:`~mnist_core.errors.Overloaded` (a 429 for its client)
rather than waiting behind work the model cannot finish in time. A request larger than
the bound is still taken when nothing else waits, so no request is refused for its size.

BentoML's own batching is not used: it merges whole request bodies before our code runs,
so one client's invalid image would fail everybody's batch, and its limit counts
requests (upstream issue #3859).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mnist_core.errors import Overloaded

Outputs = tuple[np.ndarray, np.ndarray]
ModelCall = Callable[[np.ndarray], Outputs]
CallObserver = Callable[[int, float], None]


@dataclass
class _Job:
    images: np.ndarray
    model: ModelCall
    future: asyncio.Future[Outputs]


class Batcher:
    """Merges concurrent requests into model calls of at most ``max_images`` images."""

    def __init__(
        self,
        model: ModelCall | None = None,
        *,
        max_images: int,
        observe: CallObserver | None = None,
        call_delay_s: float = 0.0,
        max_queue_images: int | None = None,
        inline_images: int = 0,
    ) -> None:
        if max_images < 1:
            raise ValueError("max_images must be at least 1")
        self._max_queue_images = max_queue_images
        self._queued = 0
        self._model = model
        self._max_images = max_images
        self._observe = observe
        self._call_delay_s = call_delay_s
        self._inline_images = 0 if call_delay_s else inline_images
        self._queue: deque[_Job] = deque()
        self._drain_task: asyncio.Task[None] | None = None
        # One thread: model calls run one at a time, which is what makes them merge.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist-model")

    @property
    def max_images(self) -> int:
        return self._max_images

    @property
    def queued_images(self) -> int:
        return self._queued

    async def predict(self, images: np.ndarray, model: ModelCall | None = None) -> Outputs:
        """(probabilities, labels) for ``images``, in order, from one or more merged calls.

        ``model`` is the version to call (the batcher's own model when not given).
        """
        model = model or self._model
        if model is None:
            raise ValueError("no model to call")
        limit = self._max_queue_images
        if limit is not None and self._queued and self._queued + len(images) > limit:
            raise Overloaded(
                f"{self._queued} images are waiting for the model; this worker queues at "
                f"most {limit}: retry shortly",
                reason="queue_full",
            )
        self._queued += len(images)
        loop = asyncio.get_running_loop()
        jobs = [
            _Job(images[start : start + self._max_images], model, loop.create_future())
            for start in range(0, len(images), self._max_images)
        ]
        self._queue.extend(jobs)
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = loop.create_task(self._drain())
        if len(jobs) == 1:  # most requests: no gathering future and its callbacks
            return await jobs[0].future
        results = await asyncio.gather(*(job.future for job in jobs))
        return (
            np.concatenate([probabilities for probabilities, _ in results]),
            np.concatenate([labels for _, labels in results]),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _next_batch(self) -> list[_Job]:
        jobs: list[_Job] = []
        count = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # its client went away or timed out: do not compute it
                self._queue.popleft()
                self._queued -= len(job.images)
                continue
            if jobs and (
                count + len(job.images) > self._max_images or job.model is not jobs[0].model
            ):
                break
            jobs.append(self._queue.popleft())
            self._queued -= len(job.images)
            count += len(job.images)
        return jobs

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while jobs := self._next_batch():
            images = (
                jobs[0].images if len(jobs) == 1 else np.concatenate([job.images for job in jobs])
            )
            try:
                if len(images) <= self._inline_images:
                    # A small call costs less than handing it to the model thread and
                    # back, and holds the GIL for most of its time anyway. Requests that
                    # arrive meanwhile queue up and form the next call.
                    probabilities, labels = self._call(jobs[0].model, images)
                else:
                    probabilities, labels = await loop.run_in_executor(
                        self._executor, self._call, jobs[0].model, images
                    )
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.images)
                if not job.future.done():
                    job.future.set_result((probabilities[start:end], labels[start:end]))
                start = end

    def _call(self, model: ModelCall, images: np.ndarray) -> Outputs:
        started = time.perf_counter()
        if self._call_delay_s:
            time.sleep(self._call_delay_s)  # a deliberately slow model, for capacity tests
        outputs = model(images)
        if self._observe is not None:
            self._observe(len(images), time.perf_counter() - started)
        return outputs
