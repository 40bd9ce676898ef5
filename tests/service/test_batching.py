"""The in-worker batcher (service.batching), driven directly.

The model here is a small NumPy function rather than the SavedModel: the batcher takes
any callable, and a function that records its call sizes (and can be held back) makes
merging, splitting and ordering exactly observable. The HTTP tests cover the real model.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from mnist_core.errors import Overloaded
from service.batching import Batcher


class RecordingModel:
    """'Probabilities' are the pixel sums, so every answer identifies its own image."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_on = fail_on

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.release.wait(10)
        self.calls.append(len(images))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise RuntimeError("model failed")
        sums = images.reshape(len(images), -1).sum(axis=1, dtype=np.int64)
        return np.repeat(sums[:, None], 10, axis=1).astype(np.float32), sums


def images(first: int, count: int) -> np.ndarray:
    """``count`` images whose pixel sums are first, first+1, ..."""
    batch = np.zeros((count, 28, 28), np.uint8)
    values = np.arange(first, first + count)
    batch[:, 0, 0] = values % 256
    batch[:, 0, 1] = values // 256
    return batch


def sums(batch: np.ndarray) -> list[int]:
    return batch.reshape(len(batch), -1).sum(axis=1).tolist()  # type: ignore[no-any-return]


def test_concurrent_requests_merge_and_keep_their_order() -> None:
    model = RecordingModel()
    batcher = Batcher(model, max_images=8)

    async def run() -> list[tuple[np.ndarray, np.ndarray]]:
        model.release.clear()
        first = asyncio.ensure_future(batcher.predict(images(0, 1)))
        await asyncio.sleep(0.05)  # the first call is now running and held
        rest = [asyncio.ensure_future(batcher.predict(images(100 * i, i))) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(run())
    sizes = [1, 1, 2, 3, 4, 5]
    expected = [images(0, 1)] + [images(100 * i, i) for i in range(1, 6)]
    for (probabilities, labels), size, batch in zip(results, sizes, expected, strict=True):
        assert len(labels) == size == len(probabilities)
        assert labels.tolist() == sums(batch)
    assert sum(model.calls) == 16
    assert max(model.calls) <= 8
    assert model.calls[0] == 1 and len(model.calls) <= 4  # 15 queued images in 2-3 calls
    batcher.close()


@pytest.mark.parametrize(("count", "limit", "calls"), [(20, 8, [8, 8, 4]), (8, 8, [8])])
def test_large_requests_are_split_and_put_back_together(
    count: int, limit: int, calls: list[int]
) -> None:
    model = RecordingModel()
    batcher = Batcher(model, max_images=limit)
    batch = images(7, count)
    probabilities, labels = asyncio.run(batcher.predict(batch))
    assert model.calls == calls
    assert labels.tolist() == sums(batch)
    assert probabilities.shape == (count, 10)
    batcher.close()


def test_a_failed_call_fails_its_requests_and_the_next_ones_still_work() -> None:
    model = RecordingModel(fail_on=1)
    batcher = Batcher(model, max_images=4)

    async def run() -> None:
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.predict(images(0, 2))
        _, labels = await batcher.predict(images(5, 3))
        assert labels.tolist() == [5, 6, 7]

    asyncio.run(run())
    batcher.close()


def test_abandoned_requests_are_not_computed() -> None:
    model = RecordingModel()
    batcher = Batcher(model, max_images=4)

    async def run() -> None:
        model.release.clear()
        running = asyncio.ensure_future(batcher.predict(images(0, 1)))
        await asyncio.sleep(0.05)
        abandoned = asyncio.ensure_future(batcher.predict(images(10, 3)))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        kept = asyncio.ensure_future(batcher.predict(images(20, 2)))
        await asyncio.sleep(0.01)
        model.release.set()
        await running
        _, labels = await kept
        assert labels.tolist() == [20, 21]

    asyncio.run(run())
    assert model.calls == [1, 2]
    batcher.close()


def test_observer_sees_every_call() -> None:
    seen: list[tuple[int, float]] = []
    batcher = Batcher(RecordingModel(), max_images=3, observe=lambda n, s: seen.append((n, s)))
    asyncio.run(batcher.predict(images(0, 7)))
    assert [n for n, _ in seen] == [3, 3, 1]
    assert all(seconds >= 0 for _, seconds in seen)
    batcher.close()


def test_a_configured_call_delay_holds_back_every_model_call() -> None:
    # The capacity tests rely on it: each of the 3 calls waits at least the delay.
    delay = 0.05
    batcher = Batcher(RecordingModel(), max_images=3, call_delay_s=delay)

    async def timed() -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        started = asyncio.get_running_loop().time()
        result = await batcher.predict(images(0, 7))
        return asyncio.get_running_loop().time() - started, result

    seconds, (_, labels) = asyncio.run(timed())
    assert seconds >= 3 * delay
    assert labels.tolist() == sums(images(0, 7))
    batcher.close()


def test_the_queue_is_bounded_in_images_and_frees_what_it_computed() -> None:
    model = RecordingModel()
    batcher = Batcher(model, max_images=8, max_queue_images=10)

    async def run() -> None:
        model.release.clear()
        first = asyncio.ensure_future(batcher.predict(images(0, 6)))
        await asyncio.sleep(0.05)  # taken by the model (held): the queue is empty again
        assert batcher.queued_images == 0
        waiting = asyncio.ensure_future(batcher.predict(images(10, 6)))
        await asyncio.sleep(0)
        assert batcher.queued_images == 6
        with pytest.raises(Overloaded) as refused:
            await batcher.predict(images(20, 5))
        assert refused.value.reason == "queue_full" and refused.value.status == 429
        model.release.set()
        await asyncio.gather(first, waiting)
        assert batcher.queued_images == 0
        # Bigger than the bound, but nothing else waits: it still runs.
        assert len((await batcher.predict(images(30, 12)))[1]) == 12

    asyncio.run(run())
