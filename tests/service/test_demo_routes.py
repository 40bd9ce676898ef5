"""The routes the demo page uses, over HTTP against the session's real server.

``/demo`` and its two assets, ``/predict_image?prepared=true`` (the prepared 28x28
image beside each prediction) and the read-only training report of a served version,
which opens only the report's own files.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_core.images import to_mnist
from mnist_core.modeldir import REPORT_FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_of(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_page_and_its_assets_are_served_and_load_nothing_from_elsewhere(
    service_url: str,
) -> None:
    page = httpx.get(f"{service_url}/demo", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sorted(linked) == ["/", "/demo/demo.css", "/demo/demo.js"]
    for name, media in (("demo.css", "text/css"), ("demo.js", "text/javascript")):
        asset = httpx.get(f"{service_url}/demo/{name}", timeout=10)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media)
        assert "http://" not in asset.text and "https://" not in asset.text
    missing = httpx.get(f"{service_url}/demo/service.py", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["reason"] == "not_found"


def test_prepared_returns_the_image_the_model_was_given(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test_set
    files = [("images", (f"{i}.png", png_of(images[i]), "image/png")) for i in range(3)]
    plain = httpx.post(f"{service_url}/predict_image", files=files, timeout=30)
    shown = httpx.post(f"{service_url}/predict_image?prepared=true", files=files, timeout=30)
    assert plain.status_code == shown.status_code == 200, shown.text
    for index, (without, prediction) in enumerate(
        zip(plain.json()["predictions"], shown.json()["predictions"], strict=True)
    ):
        assert "prepared" not in without
        prepared = np.array(prediction["prepared"])
        assert prepared.shape == (28, 28)
        expected = to_mnist(png_of(images[index]), max_pixels=10**6)
        assert np.array_equal(prepared, expected)
        assert prediction["label"] == without["label"] == labels[index]


@pytest.mark.parametrize("value", ["yes", "2", ""])
def test_a_prepared_value_that_is_not_a_boolean_is_a_400_naming_it(
    service_url: str, value: str
) -> None:
    files = {"images": ("a.png", png_of(np.full((28, 28), 255, np.uint8)), "image/png")}
    response = httpx.post(
        f"{service_url}/predict_image", params={"prepared": value}, files=files, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["field"] == "prepared"


def test_the_training_report_of_the_served_version(
    service_url: str, trained_model_root: Path
) -> None:
    listing = httpx.get(f"{service_url}/models/1/report", timeout=10)
    assert listing.status_code == 200
    body = listing.json()
    assert body["version"] == 1
    assert [f["name"] for f in body["files"]] == list(REPORT_FILES)
    for entry in body["files"]:
        picture = httpx.get(f"{service_url}{entry['url']}", timeout=10)
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/png"
        assert picture.content == (trained_model_root / "1" / entry["name"]).read_bytes()
        assert picture.content.startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/models/1/report/metadata.json", 404, "not_found"),
        ("/models/1/report/saved_model.pb", 404, "not_found"),
        ("/models/1/report/..%2Fmetadata.json", 404, "not_found"),
        ("/models/1/report/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", 404, "not_found"),
        ("/models/1/report/../../metadata", 404, "not_found"),
        ("/models/7/report", 404, "unknown_version"),
        ("/models/7/report/confusion_matrix.png", 404, "unknown_version"),
        ("/models/51465891863883838075184475013120/report", 404, "unknown_version"),
        ("/models/x/report", 400, "invalid_version"),
        ("/models/0/report/learning_curves.png", 400, "invalid_version"),
    ],
)
def test_nothing_but_the_report_of_a_served_version_can_be_read(
    service_url: str, path: str, status: int, reason: str
) -> None:
    response = httpx.get(f"{service_url}{path}", timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason
    assert not response.content.startswith(PNG_MAGIC)


def test_a_version_too_large_to_exist_is_a_404_not_a_500(service_url: str) -> None:
    response = httpx.post(
        f"{service_url}/predict",
        params={"version": "29092551510796160894078497587200"},
        json={"images": [[0] * 784]},
        timeout=30,
    )
    assert response.status_code == 404, response.text
    assert response.json()["reason"] == "unknown_version"


def test_the_openapi_document_describes_the_page_the_report_and_prepared(
    service_url: str,
) -> None:
    paths = httpx.get(f"{service_url}/docs.json", timeout=30).json()["paths"]
    for path in ("/demo", "/demo/{name}", "/models/{version}/report"):
        assert paths[path]["get"]["description"], path
    picture = paths["/models/{version}/report/{name}"]["get"]
    assert "image/png" in picture["responses"]["200"]["content"]
    names = [p for p in picture["parameters"] if p["name"] == "name"]
    assert names[0]["schema"]["enum"] == list(REPORT_FILES)
    parameters = paths["/predict_image"]["post"]["parameters"]
    assert any(p["name"] == "prepared" and p["schema"]["type"] == "boolean" for p in parameters)
