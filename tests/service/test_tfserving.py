"""TensorFlow Serving's REST API against the session's server, checked with TF Serving's own
protobuf messages (``tensorflow-serving-api``): every predict form, status, metadata, errors."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

IMAGES = slice(0, 5)


@pytest.fixture(scope="module")
def images(mnist_test_set: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return mnist_test_set[0][IMAGES]


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{path}", json=body, timeout=30)


def forms(images: np.ndarray) -> dict[str, dict[str, Any]]:
    nested, flat = images.tolist(), images.reshape(len(images), 784).tolist()
    return {
        "instances bare nested": {"instances": nested},
        "instances bare flat": {"instances": flat},
        "instances named": {"instances": [{"images": image} for image in nested]},
        "instances with signature": {"signature_name": "serving_default", "instances": flat},
        "inputs bare": {"inputs": nested},
        "inputs named": {"inputs": {"images": flat}},
    }


def test_every_predict_form_gives_the_labels_of_predict(
    service_url: str, images: np.ndarray
) -> None:
    native = httpx.post(f"{service_url}/predict", json={"images": images.tolist()}, timeout=30)
    expected = native.json()["predictions"]
    labels = [p["label"] for p in expected]
    for name, body in forms(images).items():
        for path in ("mnist:predict", "mnist/versions/1:predict"):
            response = post(service_url, path, body)
            assert response.status_code == 200, (name, response.text)
            answer = response.json()
            if name.startswith("instances"):
                assert list(answer) == ["predictions"], name
                rows = answer["predictions"]
                assert [set(r) for r in rows] == [{"probabilities", "label"}] * len(images)
                assert [r["label"] for r in rows] == labels, name
                probabilities = np.array([r["probabilities"] for r in rows])
            else:
                assert list(answer) == ["outputs"], name
                assert answer["outputs"]["label"] == labels, name
                probabilities = np.array(answer["outputs"]["probabilities"])
            reference = np.array([p["probabilities"] for p in expected])
            np.testing.assert_allclose(probabilities, reference, rtol=0, atol=1e-6)


def test_status_is_a_get_model_status_response(service_url: str) -> None:
    for path in ("mnist", "mnist/versions/1"):
        response = httpx.get(f"{service_url}/v1/models/{path}", timeout=10)
        assert response.status_code == 200, response.text
        status = json_format.ParseDict(
            response.json(), get_model_status_pb2.GetModelStatusResponse()
        )
        (only,) = status.model_version_status
        assert only.version == 1
        assert only.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        assert only.status.error_message == ""


def test_metadata_is_a_get_model_metadata_response(service_url: str) -> None:
    for path in ("mnist/metadata", "mnist/versions/1/metadata"):
        response = httpx.get(f"{service_url}/v1/models/{path}", timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        # TF Serving writes the Any-typed map entry without its type URL; the protobuf
        # parser needs it to know which message the entry holds.
        body["metadata"]["signature_def"]["@type"] = (
            "type.googleapis.com/tensorflow.serving.SignatureDefMap"
        )
        parsed = json_format.ParseDict(body, get_model_metadata_pb2.GetModelMetadataResponse())
        assert parsed.model_spec.name == "mnist" and parsed.model_spec.version.value == 1
        signatures = get_model_metadata_pb2.SignatureDefMap()
        assert parsed.metadata["signature_def"].Unpack(signatures)
        serving = signatures.signature_def["serving_default"]
        assert serving.method_name == "tensorflow/serving/predict"
        images = serving.inputs["images"]
        assert [d.size for d in images.tensor_shape.dim] == [-1, 28, 28]
        assert set(serving.outputs) == {"probabilities", "label"}
        assert [d.size for d in serving.outputs["probabilities"].tensor_shape.dim] == [-1, 10]


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_are_not_implemented(service_url: str, verb: str) -> None:
    assert_error(post(service_url, f"mnist:{verb}", {"examples": [{}]}), 501)


def test_malformed_requests_are_400(service_url: str, images: np.ndarray) -> None:
    nested = images.tolist()
    fractional = [[[0.5] * 28] * 28]
    cases = {
        "both forms": {"instances": nested, "inputs": nested},
        "neither form": {"signature_name": "serving_default"},
        "missing named input": {"instances": [{"pixels": nested[0]}]},
        "extra named input": {"inputs": {"images": nested, "masks": nested}},
        "mixed rows": {"instances": [nested[0], {"images": nested[1]}]},
        "float uint8 values": {"instances": [[[3.0] * 28] * 28]},
        "fractional values": {"inputs": fractional},
        "out of range": {"instances": [[[256] * 28] * 28]},
        "negative": {"instances": [[[-1] * 28] * 28]},
        "booleans": {"instances": [[[True] * 28] * 28]},
        "wrong size": {"instances": [[0] * 783]},
        "ragged": {"instances": [[0] * 784, [0] * 10]},
        "unknown signature": {"signature_name": "classify", "instances": nested},
        "empty": {"instances": []},
    }
    for name, body in cases.items():
        response = post(service_url, "mnist:predict", body)
        assert response.status_code == 400, (name, response.text)
        assert_error(response, 400)
    assert_error(
        httpx.post(f"{service_url}/v1/models/mnist:predict", content=b"{not json", timeout=10), 400
    )
    assert_error(
        post(service_url, "mnist/versions/1/labels/stable:predict", {"inputs": nested}), 400
    )
    assert_error(post(service_url, "mnist:predict", {"instances": [[0] * 784] * 10_001}), 413)


def test_unknown_model_version_or_label_is_404(service_url: str, images: np.ndarray) -> None:
    body = {"instances": images.tolist()}
    for path in ("fashion:predict", "mnist/versions/9:predict", "mnist/labels/canary:predict"):
        assert_error(post(service_url, path, body), 404)
    for path in ("fashion", "mnist/versions/9", "mnist/labels/canary/metadata", "mnist/weights"):
        assert_error(httpx.get(f"{service_url}/v1/models/{path}", timeout=10), 404)
    assert_error(httpx.get(f"{service_url}/v1/models/mnist:predict", timeout=10), 405)
    served = post(service_url, "mnist:predict", body)
    assert served.status_code == 200
