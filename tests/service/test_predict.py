"""``POST /predict`` against the real server equals the SavedModel called in process."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

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
