"""``POST /predict`` against the real server equals the SavedModel called in process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from promtext import scrape_metrics, total

from mnist_core.modeldir import latest_version_dir


@pytest.fixture(scope="module")
def in_process(trained_model_root: Path):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    version_dir = latest_version_dir(trained_model_root)
    assert version_dir is not None
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    def call(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = signature(images=tf.constant(images, dtype=tf.uint8))
        return out["probabilities"].numpy(), out["label"].numpy()

    return call


@pytest.mark.parametrize("count", [1, 7, 1000])
@pytest.mark.parametrize("form", ["nested", "flat"])
def test_predict_matches_saved_model(
    service_url: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    in_process,
    count: int,
    form: str,
) -> None:
    images = mnist_test_set[0][:count]
    sent = images.tolist() if form == "nested" else images.reshape(count, 784).tolist()
    response = httpx.post(f"{service_url}/predict", json={"images": sent}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-model-version"] == str(body["model_version"]) == "1"
    predictions = body["predictions"]
    assert len(predictions) == count
    probabilities, labels = in_process(images)
    got = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(got, probabilities, rtol=0, atol=1e-6)
    assert [p["label"] for p in predictions] == labels.tolist()
    confidences = [p["confidence"] for p in predictions]
    np.testing.assert_allclose(confidences, probabilities.max(axis=1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def _significant_digits(number: str) -> int:
    mantissa = number.lower().split("e")[0].lstrip("-").replace(".", "")
    return len(mantissa.lstrip("0"))


def test_probabilities_are_written_as_the_models_float32_values(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], in_process
) -> None:
    images = mnist_test_set[0][:7]
    response = httpx.post(f"{service_url}/predict", json={"images": images.tolist()}, timeout=30)
    assert response.status_code == 200, response.text
    # Read every number as its text, so its spelling can be checked as well as its value.
    predictions = json.loads(response.text, parse_float=str)["predictions"]
    texts = [p["probabilities"] for p in predictions]
    probabilities, labels = in_process(images)
    read = np.array([[np.float32(t) for t in row] for row in texts], dtype=np.float32)
    # The signature runtime's bytes are the signature's; read back as float32 they are exact.
    assert read.tobytes() == probabilities.tobytes()
    confidences = np.array([np.float32(p["confidence"]) for p in predictions])
    assert confidences.tobytes() == probabilities[np.arange(7), labels].tobytes()
    # A float32 needs at most 9 significant digits; its float64 widening needs up to 17.
    assert max(_significant_digits(t) for row in texts for t in row) <= 9


def test_concurrent_single_images_are_merged(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], in_process
) -> None:
    images = mnist_test_set[0][:200]
    before = scrape_metrics(service_url)

    async def send_all() -> list[httpx.Response]:
        # 24 at a time: within one worker's concurrency limit (more would be shed with 429).
        limits = httpx.Limits(max_connections=24, max_keepalive_connections=24)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(f"{service_url}/predict", json={"images": [image.tolist()]})
                    for image in images
                )
            )

    responses = asyncio.run(send_all())
    after = scrape_metrics(service_url)
    assert [r.status_code for r in responses] == [200] * 200
    probabilities, labels = in_process(images)
    got = np.array([r.json()["predictions"][0]["probabilities"] for r in responses])
    np.testing.assert_allclose(got, probabilities, rtol=0, atol=1e-6)
    assert [r.json()["predictions"][0]["label"] for r in responses] == labels.tolist()

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    calls = delta("mnist_batch_images_count")
    single_calls = delta("mnist_batch_images_bucket", le="1.0")
    assert delta("mnist_batch_images_sum") == 200
    assert calls < 200, "no two requests were merged into one model call"
    assert calls - single_calls >= 1


def test_request_larger_than_batch_limit_is_split(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], in_process
) -> None:
    limit = int(httpx.get(f"{service_url}/metadata").json()["limits"]["max_batch_images"])
    images = mnist_test_set[0][: limit * 2 + 5]
    before = scrape_metrics(service_url)
    response = httpx.post(f"{service_url}/predict", json={"images": images.tolist()}, timeout=60)
    after = scrape_metrics(service_url)
    assert response.status_code == 200, response.text
    _, labels = in_process(images)
    assert [p["label"] for p in response.json()["predictions"]] == labels.tolist()

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("mnist_batch_images_sum") == len(images)
    assert delta("mnist_batch_images_count") == 3
    # Every call fell in the bucket bounded by the limit: none was larger.
    assert delta("mnist_batch_images_bucket", le=f"{float(limit)}") == 3
