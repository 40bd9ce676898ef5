"""``/metrics`` counts exactly what was served and refused, across both workers."""

from __future__ import annotations

import io
from collections import Counter

import httpx
import numpy as np
from promtext import Samples, scrape_metrics, total


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_label_counter_rises_by_the_images_sent(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images = mnist_test_set[0][:57]
    before = scrape_metrics(service_url)
    seen: Counter[int] = Counter()
    for start in range(0, 50, 10):  # five JSON requests of 10 images
        response = httpx.post(
            f"{service_url}/predict", json={"images": images[start : start + 10].tolist()}
        )
        assert response.status_code == 200
        seen.update(p["label"] for p in response.json()["predictions"])
    buffer = io.BytesIO()
    np.save(buffer, images[50:])
    response = httpx.post(
        f"{service_url}/predict_npy", files={"array": ("rest.npy", buffer.getvalue())}
    )
    assert response.status_code == 200
    seen.update(p["label"] for p in response.json()["predictions"])
    after = scrape_metrics(service_url)

    assert delta(before, after, "mnist_predictions_total") == 57
    for label in range(10):
        assert delta(before, after, "mnist_predictions_total", label=str(label)) == seen[label]
    assert delta(before, after, "mnist_prediction_confidence_count") == 57
    assert delta(before, after, "mnist_batch_images_sum") == 57
    for stage in ("decode", "predict", "postprocess"):
        assert delta(before, after, "mnist_stage_seconds_count", stage=stage) == 6
    assert delta(before, after, "mnist_stage_seconds_count", endpoint="predict_npy") == 3
    assert delta(before, after, "mnist_model_compute_seconds_count") >= 1
    requests = delta(
        before,
        after,
        "bentoml_service_request_total",
        endpoint="/predict",
        http_response_code="200",
    )
    assert requests == 5


def test_rejections_are_counted_by_reason(service_url: str) -> None:
    before = scrape_metrics(service_url)
    for value in (256, -3):
        image = [0] * 784
        image[5] = value
        assert httpx.post(f"{service_url}/predict", json={"images": [image]}).status_code == 400
    bad_json = httpx.post(
        f"{service_url}/predict", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    wrong_type = httpx.post(
        f"{service_url}/predict", content=b"x", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    after = scrape_metrics(service_url)

    assert delta(before, after, "mnist_rejected_requests_total", reason="out_of_range") == 2
    assert delta(before, after, "mnist_rejected_requests_total", reason="invalid_json") == 1
    assert (
        delta(before, after, "mnist_rejected_requests_total", reason="unsupported_media_type") == 1
    )
    assert delta(before, after, "mnist_rejected_requests_total") == 4
    assert delta(before, after, "mnist_predictions_total") == 0


def test_model_info_names_the_served_version(service_url: str) -> None:
    samples = scrape_metrics(service_url)
    info = {found: value for (name, found), value in samples.items() if name == "mnist_model_info"}
    assert list(info.values()) == [1.0]
    labels = dict(next(iter(info)))
    assert labels["version"] == "1"
    assert labels["implementation"] == "keras"
