"""Bad input to the standard protocols, as raw HTTP: each a 4xx with ``{"error": ...}``, never
a 5xx, and the session's server serves on afterwards."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

INFER = "/v2/models/mnist/infer"
ZEROS = [0] * 784


def tensor(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8", **fields}]}


def binary(
    header: dict[str, Any], raw: bytes, *, length: int | None = None
) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    size = len(head) if length is None else length
    return head + raw, {"Inference-Header-Content-Length": str(size)}


def binary_input(
    datatype: str, raw: bytes, shape: list[int], size: int | None = None
) -> tuple[bytes, dict[str, str]]:
    parameters = {"binary_data_size": len(raw) if size is None else size}
    header = {
        "inputs": [
            {"name": "images", "shape": shape, "datatype": datatype, "parameters": parameters}
        ]
    }
    return binary(header, raw)


NAN_FP32 = np.full((1, 784), np.nan, dtype="<f4").tobytes()
U16_300 = np.full(784, 300, "<u2").tobytes()
NAN_JSON = b'{"inputs":[{"name":"images","shape":[1,1],"datatype":"FP32","data":[NaN]}]}'
PLAIN = orjson.dumps(tensor(data=ZEROS))
LENGTH = "Inference-Header-Content-Length"
BOTH = tensor(data=ZEROS, parameters={"binary_data_size": 784})
JSON_CASES: dict[str, tuple[int, Any]] = {
    "datatype BYTES": (400, tensor(datatype="BYTES", data=ZEROS)),
    "datatype BOOL": (400, tensor(datatype="BOOL", data=[False] * 784)),
    "datatype unknown": (400, tensor(datatype="FLOAT", data=ZEROS)),
    "fractional FP32": (400, tensor(datatype="FP32", data=[0.5] * 784)),
    "fractional for INT32": (400, tensor(datatype="INT32", data=[0.5] * 784)),
    "too few values": (400, tensor(data=[0] * 783)),
    "too many values": (400, tensor(data=[0] * 785)),
    "shape 27x27": (400, tensor(shape=[1, 27, 27], data=[0] * 729)),
    "shape without batch": (400, tensor(shape=[784], data=ZEROS)),
    "shape not numbers": (400, tensor(shape=["1", 784], data=ZEROS)),
    "above 255": (400, tensor(datatype="INT32", data=[300] * 784)),
    "negative": (400, tensor(datatype="INT32", data=[-1] * 784)),
    "huge": (400, tensor(datatype="INT64", data=[10**30] * 784)),
    "strings": (400, tensor(data=["0"] * 784)),
    "booleans": (400, tensor(data=[True] * 784)),
    "ragged": (400, tensor(shape=[2, 784], data=[ZEROS, [0] * 10])),
    "no data": (400, tensor()),
    "data not a list": (400, tensor(data="zeros")),
    "unknown input": (400, {"inputs": [{**tensor(data=ZEROS)["inputs"][0], "name": "pixels"}]}),
    "two inputs": (400, {"inputs": tensor(data=ZEROS)["inputs"] * 2}),
    "no inputs": (400, {"outputs": [{"name": "label"}]}),
    "unknown output": (400, {**tensor(data=ZEROS), "outputs": [{"name": "logits"}]}),
    "outputs not a list": (400, {**tensor(data=ZEROS), "outputs": "label"}),
    "id not a string": (400, {**tensor(data=ZEROS), "id": 7}),
    "parameters not an object": (400, {**tensor(data=ZEROS), "parameters": [1]}),
    "not an object": (400, [1, 2, 3]),
    "too many images": (413, tensor(shape=[10_001, 784], data=ZEROS)),
    "zero images": (400, tensor(shape=[0, 784], data=[])),
    "negative images": (400, tensor(shape=[-1, 784], data=ZEROS)),
}
RAW_CASES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "not JSON": (400, b"{inputs", {}),
    "NaN literal": (400, NAN_JSON, {}),
    "binary NaN": (400, *binary_input("FP32", NAN_FP32, [1, 784])),
    "binary above 255": (400, *binary_input("UINT16", U16_300, [1, 784])),
    "binary wrong size": (400, *binary_input("UINT8", bytes(784), [2, 28, 28])),
    "binary truncated": (400, *binary_input("UINT8", bytes(700), [1, 784], size=784)),
    "binary bytes left over": (400, *binary_input("UINT8", bytes(800), [1, 784], size=784)),
    "binary without size": (400, *binary(tensor(data=ZEROS), bytes(784))),
    "binary and data": (400, *binary(BOTH, bytes(784))),
    "binary size not a number": (400, *binary_input("UINT8", bytes(784), [1, 784], size=-1)),
    "header length beyond the body": (400, *binary(tensor(data=ZEROS), b"", length=10**6)),
    "header length not a number": (400, PLAIN, {LENGTH: "x"}),
    "header length zero": (400, PLAIN, {LENGTH: "0"}),
    "header cut short": (400, *binary(tensor(data=ZEROS), b"", length=20)),
}


def assert_protocol_error(response: httpx.Response, status: int, name: str) -> None:
    assert response.status_code == status, (name, response.text)
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), (name, body)


def test_v2_bad_json_requests_are_4xx(service_url: str) -> None:
    with httpx.Client(base_url=service_url, timeout=30) as client:
        for name, (status, body) in JSON_CASES.items():
            assert_protocol_error(client.post(INFER, json=body), status, name)


def test_v2_bad_bodies_and_binary_parts_are_4xx(service_url: str) -> None:
    with httpx.Client(base_url=service_url, timeout=30) as client:
        for name, (status, body, headers) in RAW_CASES.items():
            assert_protocol_error(client.post(INFER, content=body, headers=headers), status, name)


def test_v2_routing_errors_have_the_protocols_body(service_url: str) -> None:
    with httpx.Client(base_url=service_url, timeout=30) as client:
        assert_protocol_error(client.get(INFER), 405, "GET infer")
        assert_protocol_error(client.get("/v2/models/mnist/versions/x"), 400, "version x")
        assert_protocol_error(client.get("/v2/models/mnist/versions/9/ready"), 404, "version 9")
        assert_protocol_error(client.get("/v2/nothing"), 404, "unknown route")
        assert_protocol_error(client.post("/v2/repository/models/mnist/load"), 403, "disabled")
        assert_protocol_error(client.post("/v2/repository/index", content=b"{"), 400, "index")


def test_tfserving_bad_json_is_4xx(service_url: str) -> None:
    with httpx.Client(base_url=service_url, timeout=30) as client:
        nan = b'{"instances": [[' + b",".join([b"NaN"] * 784) + b"]]}"
        assert_protocol_error(client.post("/v1/models/mnist:predict", content=nan), 400, "NaN")
        deep = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        assert_protocol_error(client.post("/v1/models/mnist:predict", content=deep), 400, "deep")
        assert_protocol_error(client.post("/v1/models/mnist:predict", content=b"[]"), 400, "list")


@pytest.fixture(autouse=True)
def still_serving(service_url: str) -> Any:
    """After every test here: the server answers both protocols correctly."""
    yield
    served = httpx.post(f"{service_url}{INFER}", json=tensor(data=ZEROS), timeout=30)
    assert served.status_code == 200, served.text
    (probabilities, label) = (o["data"] for o in served.json()["outputs"])
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-4) and 0 <= label[0] <= 9
    tf = httpx.post(
        f"{service_url}/v1/models/mnist:predict", json={"instances": [ZEROS]}, timeout=30
    )
    assert tf.status_code == 200, tf.text
