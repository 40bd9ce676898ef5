"""Every inference path the service can take, against the SavedModel signature, on all 10,000
test images: labels identical, probabilities within 1e-6.

The reference is the raw ``serving_default`` signature called on the whole test set at
once. In process: each runtime (the signature runtime, and the derived dense and LiteRT
runtimes when their load-time check accepts them, else the fallback chosen), called in
chunks of 1, 7 and 1,024 images, directly and through the batcher with concurrent
requests (so calls merge and split). Over HTTP, on the session's two-worker server
(signature runtime) and a two-worker server on the dense runtime: JSON at 1, 7 and 1,024
images a request and ``.npy`` at 7 and 1,024, all 10,000 images each time.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from server import ServiceProcess

from harness.procfs import worker_rss_mb
from runtime import litert, runtimes
from runtime.runtimes import Loaded
from service.batching import Batcher

TOLERANCE = 1e-6
BATCHES = (1, 7, 1024)
HTTP_CASES = [("json", 1), ("json", 7), ("json", 1024), ("npy", 7), ("npy", 1024)]
"""Body kind and images a request: every JSON regime, and .npy where it is the fast path."""
Outputs = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def reference(trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]) -> Outputs:
    import tensorflow as tf

    from mnist_core.modeldir import latest_version_dir

    version_dir = latest_version_dir(trained_model_root)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = signature(images=tf.constant(mnist_test_set[0], dtype=tf.uint8))
    return out["probabilities"].numpy(), out["label"].numpy()


@pytest.fixture(scope="module", params=runtimes.RUNTIMES)
def loaded(
    request: pytest.FixtureRequest, trained_model_root: Path, mnist_data_dir: Path
) -> Loaded:
    return runtimes.load_runtime(
        trained_model_root, runtime=request.param, threads=1, data_dir=mnist_data_dir
    )


def assert_agrees(outputs: Outputs, reference: Outputs, what: str) -> None:
    probabilities, labels = outputs
    expected_p, expected_l = reference
    assert probabilities.shape == expected_p.shape, what
    assert labels.tolist() == expected_l.tolist(), f"{what}: labels differ"
    worst = float(np.abs(probabilities - expected_p).max())
    assert worst <= TOLERANCE, f"{what}: probabilities differ by {worst:.3g}"


def chunked(call: Any, images: np.ndarray, size: int) -> Outputs:
    parts = [call(images[s : s + size]) for s in range(0, len(images), size)]
    return np.concatenate([p for p, _ in parts]), np.concatenate([lab for _, lab in parts])


@pytest.mark.parametrize("size", BATCHES)
def test_each_runtime_agrees_at_each_batch_size(
    loaded: Loaded,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    reference: Outputs,
    size: int,
) -> None:
    outputs = chunked(loaded.model, mnist_test_set[0], size)
    assert_agrees(outputs, reference, f"{loaded.runtime} runtime at batch {size}")


@pytest.fixture(scope="module")
def dense_model(trained_model_root: Path, mnist_data_dir: Path) -> Loaded:
    loaded = runtimes.load_runtime(
        trained_model_root, runtime="dense", threads=1, data_dir=mnist_data_dir
    )
    assert loaded.runtime == "dense"
    return loaded


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6, 8])
def test_the_dense_runtime_agrees_at_every_small_batch_size(
    dense_model: Loaded,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    reference: Outputs,
    size: int,
) -> None:
    """Sizes 3 to 7 are computed two rows at a time, 1, 2 and 8 whole: all agree."""
    outputs = chunked(dense_model.model, mnist_test_set[0], size)
    assert_agrees(outputs, reference, f"dense runtime at batch {size}")


def test_the_batcher_merges_and_splits_without_changing_answers(
    loaded: Loaded, mnist_test_set: tuple[np.ndarray, np.ndarray], reference: Outputs
) -> None:
    images = mnist_test_set[0]
    batcher = Batcher(loaded.model, max_images=1000)
    calls: list[int] = []
    batcher._observe = lambda count, _seconds: calls.append(count)

    async def run(size: int, concurrent: int) -> Outputs:
        starts = list(range(0, len(images), size))
        results: list[Outputs] = []
        for wave in range(0, len(starts), concurrent):
            results += await asyncio.gather(
                *(batcher.predict(images[s : s + size]) for s in starts[wave : wave + concurrent])
            )
        return np.concatenate([p for p, _ in results]), np.concatenate([lab for _, lab in results])

    try:
        for size, concurrent in ((1, 64), (7, 16), (1024, 3)):
            calls.clear()
            outputs = asyncio.run(run(size, concurrent))
            assert_agrees(outputs, reference, f"{loaded.runtime} through the batcher, {size}")
            assert max(calls) <= 1000
            if size < 1024:
                assert max(calls) > size, "concurrent requests never merged"
    finally:
        batcher.close()


def test_a_derived_runtime_that_disagrees_is_refused(
    trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    """The agreement check itself can fail: a model off by 2e-6 in one value is refused."""
    reference = runtimes.load_runtime(trained_model_root).model

    def slightly_off(batch: np.ndarray) -> Outputs:
        probabilities, labels = reference(batch)
        probabilities = probabilities.copy()
        probabilities[0, 0] += 2e-6
        return probabilities, labels

    problem = litert.disagreement(slightly_off, reference, mnist_test_set[0][:64], (7,))
    assert problem is not None and "differ by up to" in problem
    assert litert.disagreement(reference, reference, mnist_test_set[0][:64], (1, 7)) is None


def test_a_derived_runtime_is_kept_only_when_it_agrees(loaded: Loaded) -> None:
    if loaded.runtime != "signature":
        assert loaded.fallback is None
        assert loaded.model.runtime == loaded.runtime
    else:
        # Asked for signature, or a derived runtime refused: the reason names what differed.
        assert loaded.model.__class__.__name__ == "SavedModel"
        if loaded.fallback is not None:
            assert "differ" in loaded.fallback or "failed" in loaded.fallback


def test_the_dense_runtime_comes_from_the_exported_files_and_is_used(
    trained_model_root: Path, mnist_data_dir: Path
) -> None:
    """The exporter derived it, so it is neither refused nor derived again at load."""
    loaded = runtimes.load_runtime(trained_model_root, runtime="dense", data_dir=mnist_data_dir)
    assert (loaded.runtime, loaded.fallback, loaded.note) == ("dense", None, None)
    assert loaded.model.derived_at == "export"


def _npy(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, images)
    return buffer.getvalue()


def _json(images: np.ndarray) -> bytes:
    return orjson.dumps({"images": images.tolist()})


async def _served(url: str, images: np.ndarray, size: int, kind: str) -> Outputs:
    encode, path, media = (
        (_json, "/predict", "application/json")
        if kind == "json"
        else (_npy, "/predict_npy", "application/octet-stream")
    )
    limits = httpx.Limits(max_connections=16)
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(start: int) -> list[dict[str, Any]]:
            async with gate:
                response = await client.post(
                    path,
                    content=encode(images[start : start + size]),
                    headers={"content-type": media},
                )
            assert response.status_code == 200, response.text
            predictions: list[dict[str, Any]] = response.json()["predictions"]
            return predictions

        answers = await asyncio.gather(*(one(s) for s in range(0, len(images), size)))
    flat = [p for answer in answers for p in answer]
    probabilities = np.array([p["probabilities"] for p in flat], dtype=np.float32)
    return probabilities, np.array([p["label"] for p in flat])


@pytest.mark.parametrize(("kind", "size"), HTTP_CASES)
def test_the_live_server_agrees_on_every_body_and_batch_size(
    service_url: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    reference: Outputs,
    kind: str,
    size: int,
) -> None:
    outputs = asyncio.run(_served(service_url, mnist_test_set[0], size, kind))
    assert_agrees(outputs, reference, f"HTTP {kind} at {size} images a request")


@pytest.fixture(scope="module")
def dense_service(trained_model_root: Path) -> Iterator[ServiceProcess]:
    """Two workers on the dense runtime, over the session's trained model."""
    with ServiceProcess.start(trained_model_root, {"MNIST_RUNTIME": "dense"}, workers=2) as server:
        yield server


@pytest.mark.parametrize(("kind", "size"), HTTP_CASES)
def test_the_live_server_on_the_dense_runtime_agrees(
    dense_service: ServiceProcess,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    reference: Outputs,
    kind: str,
    size: int,
) -> None:
    outputs = asyncio.run(_served(dense_service.url, mnist_test_set[0], size, kind))
    assert_agrees(outputs, reference, f"dense runtime, HTTP {kind} at {size} images a request")


def test_dense_workers_serve_without_tensorflow(dense_service: ServiceProcess) -> None:
    """Neither the dense server's workers (found by their command line) nor its main
    process has TensorFlow's library mapped, and /models says which runtime answers."""
    workers = worker_rss_mb(dense_service.pid)
    assert len(workers) == 2, f"expected the server's two workers, found {workers}"
    for pid in [*workers, dense_service.pid]:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtensorflow" not in maps and "_pywrap_tensorflow" not in maps, pid
    status = httpx.get(f"{dense_service.url}/models", timeout=10).json()
    assert [v["runtime"] for v in status["versions"] if v["state"] == "available"] == ["dense"]


def test_dense_workers_take_the_verdict_of_the_run_check(dense_service: ServiceProcess) -> None:
    """mnist-serve checked the derived files once while BentoML started; both workers
    took that verdict instead of spending the check again."""
    log = dense_service.log_path.read_text()
    assert log.count("version 1: the dense runtime was checked once for this run") == 2, log


@pytest.mark.parametrize("runtime", ["dense", "litert"])
def test_without_test_images_the_derived_runtime_is_not_used(
    trained_model_root: Path, runtime: str
) -> None:
    loaded = runtimes.load_runtime(trained_model_root, runtime=runtime, data_dir=None)
    assert loaded.runtime == "signature"
    assert loaded.fallback is not None and "no MNIST test images" in loaded.fallback
