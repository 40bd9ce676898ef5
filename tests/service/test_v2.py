"""The Open Inference Protocol (V2) through Triton's own client, used as its documentation shows.

One server for the module (one worker, versions 1 and 2 on disk, the admin token set), so
the repository extension's loads and unloads have a version to act on. Every answer is
compared with the native ``/predict`` of the same server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from promtext import scrape_metrics, total
from server import ServiceProcess
from tritonclient.utils import InferenceServerException

TOKEN = "v2-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(trained_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("v2-models")
    for version in ("1", "2"):
        shutil.copytree(trained_model_root / "1", root / version)
    env = {"MNIST_ADMIN_TOKEN": TOKEN, "MNIST_MODEL_POLL_S": "0.5"}
    with ServiceProcess.start(root, env, workers=1) as process:
        yield process.url


@pytest.fixture(scope="module")
def client(server: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url=server.removeprefix("http://"))


def native(url: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    response = httpx.post(f"{url}/predict", json={"images": images.tolist()}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    return (
        np.array([p["probabilities"] for p in predictions]),
        np.array([p["label"] for p in predictions]),
    )


def test_health_and_metadata_answer_as_documented(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mnist")
    assert client.is_model_ready("mnist", "2")
    assert not client.is_model_ready("mnist", "1")  # on disk, not served by the policy
    server = client.get_server_metadata()
    assert server["name"] == "mnist-serving" and server["version"]
    assert {"binary_tensor_data", "model_repository"} <= set(server["extensions"])
    model = client.get_model_metadata("mnist")
    assert model["name"] == "mnist" and model["versions"] == ["2"]
    assert model["platform"] == "tensorflow_savedmodel"
    assert model["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert model["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    assert client.get_model_metadata("mnist", "2")["versions"] == ["2"]


@pytest.mark.parametrize("count", [1, 7, 1000])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_gives_the_labels_and_probabilities_of_predict(
    client: httpclient.InferenceServerClient,
    server: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    count: int,
    binary: bool,
) -> None:
    images, truth = mnist_test_set[0][:count], mnist_test_set[1][:count]
    given = httpclient.InferInput("images", [count, 28, 28], "UINT8")
    if binary:  # the documented defaults: binary input, and binary outputs when none are named
        given.set_data_from_numpy(images)
        result = client.infer("mnist", [given], request_id=f"req-{count}")
    else:
        given.set_data_from_numpy(images, binary_data=False)
        outputs = [
            httpclient.InferRequestedOutput("probabilities", binary_data=False),
            httpclient.InferRequestedOutput("label", binary_data=False),
        ]
        result = client.infer("mnist", [given], outputs=outputs, request_id=f"req-{count}")
    answer = result.get_response()
    assert answer["model_name"] == "mnist" and answer["model_version"] == "2"
    assert answer["id"] == f"req-{count}"
    sizes = {o["name"]: o.get("parameters", {}).get("binary_data_size") for o in answer["outputs"]}
    assert sizes == (
        {"probabilities": count * 40, "label": count * 8}
        if binary
        else {"probabilities": None, "label": None}
    )
    probabilities, labels = result.as_numpy("probabilities"), result.as_numpy("label")
    assert probabilities.shape == (count, 10) and probabilities.dtype == np.float32
    assert labels.shape == (count,) and labels.dtype == np.int64
    expected_probabilities, expected_labels = native(server, images)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=0, atol=1e-6)
    if count == 1000:
        assert np.mean(labels == truth) > 0.95


@pytest.mark.parametrize(
    ("datatype", "flat"), [("UINT8", True), ("INT32", False), ("FP32", True), ("INT64", True)]
)
def test_other_exact_datatypes_and_flat_images_are_the_same_images(
    client: httpclient.InferenceServerClient,
    server: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    datatype: str,
    flat: bool,
) -> None:
    images = mnist_test_set[0][10:20]
    dtype = {"UINT8": np.uint8, "INT32": np.int32, "FP32": np.float32, "INT64": np.int64}
    array = images.astype(dtype[datatype]).reshape((10, 784) if flat else (10, 28, 28))
    given = httpclient.InferInput("images", list(array.shape), datatype)
    given.set_data_from_numpy(array, binary_data=datatype != "INT32")
    result = client.infer("mnist", [given])
    np.testing.assert_array_equal(result.as_numpy("label"), native(server, images)[1])


def test_outputs_asked_for_are_the_only_ones_sent(
    client: httpclient.InferenceServerClient, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    given = httpclient.InferInput("images", [3, 28, 28], "UINT8")
    given.set_data_from_numpy(mnist_test_set[0][:3])
    result = client.infer("mnist", [given], outputs=[httpclient.InferRequestedOutput("label")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None
    np.testing.assert_array_equal(result.as_numpy("label"), mnist_test_set[1][:3])


def test_unknown_model_or_version_raises_404(client: httpclient.InferenceServerClient) -> None:
    given = httpclient.InferInput("images", [1, 28, 28], "UINT8")
    given.set_data_from_numpy(np.zeros((1, 28, 28), dtype=np.uint8))
    for call in (
        lambda: client.get_model_metadata("fashion"),
        lambda: client.infer("fashion", [given]),
        lambda: client.infer("mnist", [given], model_version="9"),
    ):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert str(raised.value.status()) == "404", raised.value
    assert not client.is_model_ready("fashion")


def _index(client: httpclient.InferenceServerClient) -> dict[str, str]:
    return {entry["version"]: entry["state"] for entry in client.get_model_repository_index()}


def test_repository_index_load_and_unload_with_the_admin_token(
    client: httpclient.InferenceServerClient, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    assert _index(client) == {"1": "UNAVAILABLE", "2": "READY"}
    for headers, status in (({}, "401"), ({"Authorization": "Bearer wrong"}, "403")):
        with pytest.raises(InferenceServerException) as refused:
            client.load_model("mnist", headers=headers, query_params={"version": "1"})
        assert str(refused.value.status()) == status
    assert _index(client)["1"] == "UNAVAILABLE"

    client.load_model("mnist", headers=AUTH, query_params={"version": "1"})
    assert _index(client) == {"1": "READY", "2": "READY"}
    assert client.is_model_ready("mnist", "1")
    given = httpclient.InferInput("images", [2, 28, 28], "UINT8")
    given.set_data_from_numpy(mnist_test_set[0][:2])
    result = client.infer("mnist", [given], model_version="1")
    assert result.get_response()["model_version"] == "1"

    client.unload_model("mnist", headers=AUTH, query_params={"version": "1"})
    assert _index(client) == {"1": "UNAVAILABLE", "2": "READY"}
    assert not client.is_model_ready("mnist", "1")
    with pytest.raises(InferenceServerException) as last:
        client.unload_model("mnist", headers=AUTH)  # the default version, the only one served
    assert str(last.value.status()) == "409"
    client.load_model("mnist", headers=AUTH)  # the newest version on disk: served already
    assert client.is_model_ready("mnist")


def test_v2_work_is_counted_under_its_protocol(
    client: httpclient.InferenceServerClient, server: str
) -> None:
    before = scrape_metrics(server)
    given = httpclient.InferInput("images", [1, 28, 28], "UINT8")
    given.set_data_from_numpy(np.zeros((1, 28, 28), dtype=np.uint8))
    client.infer("mnist", [given])
    client.infer("mnist", [given])
    bad = httpx.post(f"{server}/v2/models/mnist/infer", json={"inputs": []}, timeout=10)
    assert bad.status_code == 400
    after = scrape_metrics(server)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("mnist_stage_seconds_count", protocol="v2", stage="predict") == 2
    assert delta("mnist_stage_seconds_count", protocol="native") == 0
    assert delta("mnist_rejected_requests_total", reason="missing_field") == 1
