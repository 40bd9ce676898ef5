"""Small model calls run on the event loop; larger ones in the model thread; both merge."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from service.batching import Batcher


class ThreadRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((len(images), threading.current_thread().name))
        sums = images.reshape(len(images), -1).sum(axis=1, dtype=np.int64)
        return np.repeat(sums[:, None], 10, axis=1).astype(np.float32), sums


def test_calls_up_to_the_inline_size_run_on_the_loop_and_requests_still_merge() -> None:
    model = ThreadRecorder()
    batcher = Batcher(model, max_images=64, inline_images=4)

    async def run() -> list[tuple[np.ndarray, np.ndarray]]:
        batches = [np.full((1, 28, 28), i, np.uint8) for i in range(3)]
        batches.append(np.full((10, 28, 28), 9, np.uint8))
        first = await batcher.predict(batches[0])
        rest = await asyncio.gather(*(batcher.predict(b) for b in batches[1:]))
        return [first, *rest]

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    loop_thread = threading.current_thread().name
    assert model.calls[0] == (1, loop_thread)  # one image: inline
    assert model.calls[1][0] == 12 and model.calls[1][1].startswith("mnist-model")  # merged
    assert [r[1].tolist() for r in results] == [[0], [784], [1568], [9 * 784] * 10]


def test_a_deliberately_slow_model_never_runs_on_the_loop() -> None:
    model = ThreadRecorder()
    batcher = Batcher(model, max_images=64, inline_images=64, call_delay_s=0.001)
    try:
        asyncio.run(batcher.predict(np.zeros((1, 28, 28), np.uint8)))
    finally:
        batcher.close()
    assert model.calls[0][1].startswith("mnist-model")
