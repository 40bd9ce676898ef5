"""The protocols' pure tensor decoding: the byte-level JSON reader and the V2 header cut agree
with the general path on every input, and refuse what that path refuses."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mnist_core import open_inference, tensors
from mnist_core.errors import InputError

RNG = np.random.default_rng(7)


def infer_body(data: object, shape: list[int], **extra: object) -> bytes:
    inputs = [{"name": "images", "shape": shape, "datatype": "UINT8", "data": data}]
    return orjson.dumps({"inputs": inputs, **extra})


@pytest.mark.parametrize("shape", [(1, 784), (3, 784), (2, 28, 28)])
@pytest.mark.parametrize("nested", [True, False])
def test_json_uint8_reads_flat_and_nested_data_exactly(
    shape: tuple[int, ...], nested: bool
) -> None:
    values = RNG.integers(0, 256, shape, dtype=np.uint8)
    text = orjson.dumps(values.tolist() if nested else values.ravel().tolist())
    found = tensors.json_uint8(text, shape)
    assert found is not None and found.dtype == np.uint8
    np.testing.assert_array_equal(found, values)


@pytest.mark.parametrize(
    "text",
    [
        b"[1,2,3]",  # too few for the shape
        b"[" + b",".join([b"256"] * 784) + b"]",  # out of range
        b"[" + b",".join([b"01"] * 784) + b"]",  # leading zero
        b"[" + b",".join([b"1.5"] * 784) + b"]",  # fraction
        b"[" + b",".join([b"-1"] * 784) + b"]",  # sign
        b"[" + b", ".join([b"1"] * 784) + b"]",  # whitespace: left to the general path
        b"[" + b",".join([b"1"] * 783) + b",]",  # empty slot
        b"[" + b",".join([b"1"] * 782) + b",11,]",
        b'["1"' + b",1" * 783 + b"]",
    ],
)
def test_json_uint8_leaves_anything_unusual_to_the_general_path(text: bytes) -> None:
    assert tensors.json_uint8(text, (1, 784)) is None


def test_the_header_cut_gives_the_same_images_as_a_full_parse() -> None:
    values = RNG.integers(0, 256, (4, 784), dtype=np.uint8)
    body = infer_body(values.ravel().tolist(), [4, 784], id="x", parameters={"k": "[data]"})
    parsed, data = open_inference.read_header(body)
    assert data is not None and parsed["id"] == "x"
    request = open_inference.parse_infer(body, memoryview(b""), max_images=10)
    np.testing.assert_array_equal(request.images.reshape(4, 784), values)


def test_a_second_data_key_anywhere_means_a_full_parse() -> None:
    values = RNG.integers(0, 256, (1, 784), dtype=np.uint8)
    body = infer_body(values.ravel().tolist(), [1, 784], parameters={"data": [9, 9]})
    parsed, data = open_inference.read_header(body)
    assert data is None and parsed["parameters"] == {"data": [9, 9]}
    request = open_inference.parse_infer(body, memoryview(b""), max_images=10)
    np.testing.assert_array_equal(request.images.reshape(1, 784), values)


def test_a_data_key_that_is_not_the_inputs_is_never_taken_for_it() -> None:
    # A key ending in "data" (an escaped quote in its name) holds a list; the input has none.
    body = (
        b'{"parameters": {"x\\"data": ['
        + b",".join([b"1"] * 784)
        + b']}, "inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8"}]}'
    )
    with pytest.raises(InputError) as refused:
        open_inference.parse_infer(body, memoryview(b""), max_images=10)
    assert refused.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("datatype", "values", "reason"),
    [
        ("FP32", [0.5] * 784, "not_integer"),
        ("INT32", [300] * 784, "out_of_range"),
        ("INT32", [-3] * 784, "out_of_range"),
        ("UINT8", [True] * 784, "non_numeric"),
        ("UINT8", [1] * 700, "shape_mismatch"),
        ("BOOL", [1] * 784, "invalid_datatype"),
    ],
)
def test_the_general_path_names_the_input_and_the_problem(
    datatype: str, values: list[object], reason: str
) -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "images", "shape": [1, 784], "datatype": datatype, "data": values}]}
    )
    with pytest.raises(InputError) as refused:
        open_inference.parse_infer(body, memoryview(b""), max_images=10)
    assert refused.value.reason == reason
    assert refused.value.details.get("field") == "images"


def test_binary_outputs_round_trip_little_endian() -> None:
    probabilities = RNG.random((3, 10), dtype=np.float32)
    labels = np.array([1, 2, 3], dtype=np.int64)
    request = open_inference.InferRequest(
        "id", np.zeros((3, 28, 28), np.uint8), (open_inference.Requested("probabilities", True),)
    )
    answer, chunks = open_inference.infer_answer(request, 2, probabilities, labels)
    (output,) = answer["outputs"]
    assert output["parameters"]["binary_data_size"] == 120 == len(chunks[0])
    back = np.frombuffer(chunks[0], dtype="<f4").reshape(output["shape"])
    np.testing.assert_array_equal(back, probabilities)
    assert answer["model_version"] == "2" and answer["id"] == "id"
