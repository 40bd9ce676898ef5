"""Every client mistake gets its documented 4xx JSON object, and the service keeps serving."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

ZERO = [0] * 784
NESTED = [[0] * 28 for _ in range(28)]


def npy_bytes(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def digit_png() -> bytes:
    image = Image.new("L", (28, 28))
    image.paste(255, (12, 4, 16, 24))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def json_body(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def images(*values: object) -> dict[str, Any]:
    return {"json": {"images": list(values)}}


def with_value(value: object, at: int = 100) -> list[object]:
    image: list[object] = list(ZERO)
    image[at] = value
    return image


def upload(*files: tuple[str, bytes]) -> dict[str, Any]:
    return {"files": [("images", (name, data, "application/octet-stream")) for name, data in files]}


# (id, path, request, status, reason, where): ``where`` is the index or field named.
CASES: list[tuple[str, str, dict[str, Any], int, str, dict[str, Any]]] = [
    ("wrong-rank", "/predict", images(ZERO, [ZERO]), 400, "invalid_shape", {"index": 1}),
    ("wrong-size", "/predict", images(ZERO, ZERO, [0] * 783), 400, "invalid_shape", {"index": 2}),
    (
        "ragged",
        "/predict",
        images(NESTED, [*NESTED[:27], [0] * 27]),
        400,
        "invalid_shape",
        {"index": 1},
    ),
    ("string", "/predict", images(ZERO, with_value("7")), 400, "non_numeric", {"index": 1}),
    ("null", "/predict", images(with_value(None)), 400, "non_numeric", {"index": 0}),
    ("boolean", "/predict", images(ZERO, with_value(True)), 400, "non_numeric", {"index": 1}),
    (
        "nan",
        "/predict",
        json_body('{"images": [[' + ",".join(["0"] * 783 + ["NaN"]) + "]]}"),
        400,
        "not_finite",
        {"index": 0},
    ),
    (
        "infinity",
        "/predict",
        json_body('{"images": [[' + ",".join(["0"] * 783 + ["-Infinity"]) + "]]}"),
        400,
        "not_finite",
        {"index": 0},
    ),
    ("above-255", "/predict", images(ZERO, with_value(256)), 400, "out_of_range", {"index": 1}),
    ("negative", "/predict", images(with_value(-1)), 400, "out_of_range", {"index": 0}),
    ("empty-batch", "/predict", images(), 400, "empty_batch", {"field": "images"}),
    ("not-a-list", "/predict", {"json": {"images": "zeros"}}, 400, "invalid_type", {}),
    (
        "too-many-json-images",
        "/predict",
        {"json": {"images": [0] * 10_001}},
        413,
        "too_many_images",
        {"field": "images"},
    ),
    ("missing-field", "/predict", {"json": {"image": [ZERO]}}, 400, "missing_field", {}),
    ("invalid-json", "/predict", json_body('{"images": [[0, 0'), 400, "invalid_json", {}),
    (
        "too-many-images",
        "/predict_npy",
        {
            "content": npy_bytes(np.zeros((10_001, 784), np.uint8)),
            "headers": {"content-type": "application/octet-stream"},
        },
        413,
        "too_many_images",
        {"field": "array"},
    ),
    (
        "unsupported-content-type",
        "/predict",
        {"content": b"0,0,0", "headers": {"content-type": "text/csv"}},
        415,
        "unsupported_media_type",
        {"field": "content-type"},
    ),
    (
        "form-instead-of-json",
        "/predict",
        {"data": {"images": "0"}},
        415,
        "unsupported_media_type",
        {},
    ),
    ("json-to-image-upload", "/predict_image", images(ZERO), 415, "unsupported_media_type", {}),
    (
        "undecodable-image",
        "/predict_image",
        upload(("one.png", digit_png()), ("junk.png", b"\x89PNG not really")),
        400,
        "invalid_image",
        {"index": 1},
    ),
    (
        "decompression-bomb",
        "/predict_image",
        upload(("bomb.png", png_claiming(20_000, 20_000))),
        413,
        "too_many_pixels",
        {"index": 0},
    ),
    (
        "no-image-field",
        "/predict_image",
        {"files": [("other", ("a.png", b"x"))]},
        400,
        "missing_field",
        {"field": "images"},
    ),
    (
        "url-instead-of-file",
        "/predict_image",
        {"data": {"images": "http://127.0.0.1:9/x.png"}, "files": [("other", ("a", b"x"))]},
        400,
        "missing_field",
        {"field": "images"},
    ),
    (
        "text-beside-file",
        "/predict_image",
        {"data": {"images": "text"}, **upload(("one.png", digit_png()))},
        400,
        "missing_field",
        {"field": "images"},
    ),
    (
        "multipart-without-boundary",
        "/predict_image",
        {"content": b"garbage", "headers": {"content-type": "multipart/form-data"}},
        400,
        "bad_request",
        {},
    ),
    (
        "url-instead-of-npy",
        "/predict_npy",
        {"data": {"array": "http://example.com/x.npy"}, "files": [("other", ("a", b"x"))]},
        400,
        "missing_field",
        {"field": "array"},
    ),
    (
        "pickled-npy",
        "/predict_npy",
        {"files": [("array", ("a.npy", npy_bytes(np.array([{}] * 2), allow_pickle=True)))]},
        400,
        "pickled_npy",
        {"field": "array"},
    ),
    (
        "npy-wrong-shape",
        "/predict_npy",
        {"files": [("array", ("a.npy", npy_bytes(np.zeros((2, 27, 28), np.uint8))))]},
        400,
        "invalid_shape",
        {"field": "array"},
    ),
    (
        "npy-truncated",
        "/predict_npy",
        {"files": [("array", ("a.npy", npy_bytes(np.zeros((2, 784), np.uint8))[:-5]))]},
        400,
        "invalid_npy",
        {"field": "array"},
    ),
    (
        "not-npy",
        "/predict_npy",
        {"content": b"hello", "headers": {"content-type": "application/octet-stream"}},
        400,
        "invalid_npy",
        {"field": "array"},
    ),
]


@pytest.mark.parametrize(
    ("path", "request_kwargs", "status", "reason", "where"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_gets_its_error_and_service_keeps_serving(
    service_url: str,
    path: str,
    request_kwargs: dict[str, Any],
    status: int,
    reason: str,
    where: dict[str, Any],
) -> None:
    response = httpx.post(f"{service_url}{path}", timeout=30, **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert body["reason"] == reason, body
    assert isinstance(body["error"], str) and body["error"]
    for key, value in where.items():
        assert body[key] == value, body
    assert response.headers["x-model-version"] == "1"
    assert_still_serving(service_url)


def assert_still_serving(service_url: str) -> None:
    response = httpx.post(f"{service_url}/predict", json={"images": [ZERO]}, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_body_over_the_limit_is_413(service_url: str) -> None:
    limit = httpx.get(f"{service_url}/metadata").json()["limits"]["max_body_bytes"]
    response = httpx.post(
        f"{service_url}/predict",
        content=b" " * (limit + 1),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "body_too_large"
    assert_still_serving(service_url)


def test_streamed_body_over_the_limit_is_413(service_url: str) -> None:
    """Without a Content-Length the limit is enforced on the bytes as they arrive."""
    limit = httpx.get(f"{service_url}/metadata").json()["limits"]["max_body_bytes"]
    chunk = b" " * (1 << 20)

    def chunks() -> Any:
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    response = httpx.post(
        f"{service_url}/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "body_too_large"
    assert_still_serving(service_url)


def test_more_than_a_thousand_files_in_one_upload(service_url: str) -> None:
    """Starlette's default form limit (1,000 parts) does not cap an image upload."""
    png = digit_png()
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(1001)]
    response = httpx.post(f"{service_url}/predict_image", files=files, timeout=120)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1001


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [("GET", "/predict", 405, "method_not_allowed"), ("POST", "/nowhere", 404, "not_found")],
)
def test_routing_errors_are_json_objects(
    service_url: str, method: str, path: str, status: int, reason: str
) -> None:
    response = httpx.request(method, f"{service_url}{path}", timeout=10)
    assert response.status_code == status
    assert response.json()["reason"] == reason


GARBAGE: dict[str, bytes] = {
    "deeply-nested": b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge-integer": b'{"images": [[' + b"9" * 5000 + b"]]}",
    "huge-float": b'{"images": [[1e400]]}',
    "utf-16": '{"images": [[0]]}'.encode("utf-16"),
    "random-bytes": bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
    "npy-magic-then-junk": b"\x93NUMPY\x01\x00\xff\xff{'descr': object}",
    "png-magic-then-junk": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    "empty": b"",
}
CONTENT_TYPES = {
    "/predict": "application/json",
    "/predict_npy": "application/octet-stream",
}


@pytest.mark.parametrize("path", CONTENT_TYPES)
@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_a_client_error(service_url: str, path: str, data: bytes) -> None:
    headers = {"content-type": CONTENT_TYPES[path]}
    response = httpx.post(f"{service_url}{path}", content=data, headers=headers, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["reason"], str)


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_image_files_are_client_errors(service_url: str, data: bytes) -> None:
    response = httpx.post(f"{service_url}/predict_image", timeout=30, **upload(("x.png", data)))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["index"] == 0
