"""The app's glue in process: middleware, decoding and the one error path, over ASGI.

The worker serves the session's real SavedModel (loaded once for the module); requests
go through :func:`service.app.guarded`, the same app and guard a worker process serves,
with an ASGI client instead of a socket. The end-to-end tests run the real server.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mnist_core.errors import NotReady
from service.app import guarded
from service.config import ServiceSettings
from service.errors import CatchAll, error_response
from service.metrics import ServiceMetrics
from service.middleware import HttpGuard
from service.worker import Worker

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def worker(trained_model_root: Path) -> Iterator[Worker]:
    settings = ServiceSettings(model_dir=trained_model_root, max_body_bytes=LIMIT, max_images=50)
    worker = Worker(settings, ServiceMetrics(settings.max_batch_images, register=False))
    worker.start(background=False)
    assert worker.ready
    yield worker
    worker.close()


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def rejected(worker: Worker, reason: str) -> float:
    value: float = worker.metrics.rejected.labels(reason=reason)._value.get()
    return value


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_prediction_carries_the_version_in_body_and_header(worker: Worker) -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 10:18, 13:15] = 255
    response = call(
        guarded(worker),
        "POST",
        "/predict_npy",
        content=npy(images),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    body = response.json()
    assert body["model_version"] == 1
    assert len(body["predictions"]) == 3
    assert len({p["label"] for p in body["predictions"]}) == 1


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/predict", "text/csv"), ("/predict_image", "application/json"), ("/predict_npy", "")],
)
def test_a_route_refuses_types_it_does_not_read_with_415(
    worker: Worker, path: str, content_type: str
) -> None:
    before = rejected(worker, "unsupported_media_type")
    headers = {"content-type": content_type} if content_type else {}
    response = call(guarded(worker), "POST", path, content=b"x", headers=headers)
    assert response.status_code == 415
    body = response.json()
    assert body["reason"] == "unsupported_media_type"
    assert body["field"] == "content-type"
    assert rejected(worker, "unsupported_media_type") == before + 1


def test_the_guard_refuses_a_body_over_the_limit_declared_or_streamed(worker: Worker) -> None:
    app = guarded(worker)
    declared = call(
        app,
        "POST",
        "/predict",
        content=b" " * (LIMIT + 1),
        headers={"content-type": "application/json"},
    )

    async def chunks() -> Any:
        for _ in range(LIMIT // 4096 + 2):
            yield b" " * 4096

    streamed = call(
        app, "POST", "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {
            "error": f"request body is larger than the limit of {LIMIT} bytes",
            "reason": "body_too_large",
            "limit": LIMIT,
        }
        assert response.headers["connection"] == "close"


def test_the_guard_checks_content_types_of_framework_routes(worker: Worker) -> None:
    async def submit(_: Request) -> Response:
        return PlainTextResponse("reached")

    inner = Starlette(routes=[Route("/batch/submit", submit, methods=["POST"])])
    app = HttpGuard(
        inner, worker=lambda: worker, content_types={"/batch/submit": ("multipart/form-data",)}
    )
    refused = call(app, "POST", "/batch/submit", json={"file": 1})
    assert refused.status_code == 415
    assert refused.json()["reason"] == "unsupported_media_type"
    accepted = call(app, "POST", "/batch/submit", files={"file": ("a.npy", b"x")})
    assert accepted.text == "reached"


def test_the_guard_hands_our_own_paths_straight_to_our_app(worker: Worker) -> None:
    def app_saying(text: str) -> Starlette:
        async def endpoint(_: Request) -> Response:
            return PlainTextResponse(text)

        paths = ("/predict", "/v2/models/mnist/infer", "/batch/submit")
        return Starlette(routes=[Route(p, endpoint, methods=["POST"]) for p in paths])

    app = HttpGuard(
        app_saying("framework"),
        worker=lambda: worker,
        own=(app_saying("ours"), ("/predict", "/v2/")),
    )
    assert call(app, "POST", "/predict", content=b"{}").text == "ours"
    assert call(app, "POST", "/v2/models/mnist/infer", content=b"{}").text == "ours"
    assert call(app, "POST", "/batch/submit", content=b"{}").text == "framework"
    # Still guarded: the body limit holds on the direct path too.
    refused = call(app, "POST", "/predict", content=b"x" * (LIMIT + 1))
    assert refused.status_code == 413


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            b'[{"error": "task_id is required"}]',
            400,
            {"error": "task_id is required", "reason": "bad_request"},
        ),
        (b"Not Found", 404, {"error": "Not Found", "reason": "not_found"}),
        (
            b'{"detail": [{"loc": ["body", "file"], "msg": "Field required"}]}',
            400,
            {"error": "Field required", "reason": "bad_request", "field": "body.file"},
        ),
        (b"", 405, {"error": "HTTP 405", "reason": "method_not_allowed"}),
    ],
    ids=["bentoml-list", "plain-text", "pydantic-detail", "empty"],
)
def test_framework_4xx_bodies_become_our_error_object(
    worker: Worker, body: bytes, status: int, expected: dict[str, Any]
) -> None:
    async def framework(_: Request) -> Response:
        return Response(body, status_code=status)

    inner = Starlette(routes=[Route("/task", framework, methods=["GET"])])
    before = rejected(worker, expected["reason"])
    response = call(HttpGuard(inner, worker=lambda: worker), "GET", "/task")
    assert response.status_code == status
    assert response.json() == expected
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-model-version"] == "1"
    assert rejected(worker, expected["reason"]) == before + 1


def test_our_error_bodies_pass_the_guard_unchanged_and_are_counted_once(worker: Worker) -> None:
    before = rejected(worker, "out_of_range")
    image = [0] * 784
    image[3] = 300
    response = call(guarded(worker), "POST", "/predict", json={"images": [[0] * 784, image]})
    assert response.status_code == 400
    assert response.json() == {
        "error": "image 1 has pixel values outside 0..255",
        "reason": "out_of_range",
        "index": 1,
    }
    assert rejected(worker, "out_of_range") == before + 1


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [("GET", "/predict", 405, "method_not_allowed"), ("POST", "/nowhere", 404, "not_found")],
)
def test_routing_errors_are_our_error_object(
    worker: Worker, method: str, path: str, status: int, reason: str
) -> None:
    response = call(guarded(worker), method, path)
    assert response.status_code == status
    assert response.json()["reason"] == reason


def test_an_unexpected_exception_is_a_generic_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(_: Request) -> Response:
        raise RuntimeError("secret internals")

    # As create_app places it: inside Starlette's own error middleware, which re-raises.
    app = Starlette(routes=[Route("/broken", broken)], middleware=[Middleware(CatchAll)])
    with caplog.at_level("ERROR", logger="mnist.service"):
        response = call(app, "GET", "/broken")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal error; the server log has the details",
        "reason": "internal",
    }
    assert "secret" not in response.text
    assert "secret internals" in caplog.text


def test_errors_that_invite_a_retry_say_when() -> None:
    response = error_response(NotReady("the model is still loading; retry shortly"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_a_worker_still_loading_answers_not_ready(trained_model_root: Path) -> None:
    settings = ServiceSettings(model_dir=trained_model_root, ready_wait_s=0)
    loading = Worker(settings, ServiceMetrics(settings.max_batch_images, register=False))
    response = call(guarded(loading), "POST", "/predict", json={"images": [[0] * 784]})
    assert response.status_code == 503
    assert response.json()["reason"] == "not_ready"
    assert response.headers["x-model-version"] == "1"
    assert response.headers["retry-after"] == "1"
