"""BentoML's OpenAPI document describes every endpoint, with examples where JSON is sent."""

from __future__ import annotations

import httpx


def test_openapi_documents_every_endpoint(service_url: str) -> None:
    response = httpx.get(f"{service_url}/docs.json", timeout=30)
    assert response.status_code == 200, response.text
    spec = response.json()
    paths = spec["paths"]
    for path in ("/predict", "/predict_image", "/predict_npy", "/metadata"):
        assert "post" in paths[path], path
        assert paths[path]["post"].get("description"), path
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert len(schema["example"]["images"][0]) == 784
    upload = paths["/predict_image"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert httpx.get(f"{service_url}/", timeout=30).status_code == 200
