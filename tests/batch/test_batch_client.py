"""The HTTP client's retry, rejection and fallback rules.

The service is faked at the HTTP boundary (``httpx.MockTransport``) because the real one
never answers 429, 503, a dropped connection or a missing route on cue; the real server
is exercised end to end in ``test_batch_service.py``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest

from batch.client import (
    ProtocolViolation,
    RetriesExhausted,
    RetryPolicy,
    ServerRejected,
    ServiceClient,
    Transport,
)
from batch.scores import Scores
from mnist_core.sources import Chunk

FAST = RetryPolicy(retries=4, base_s=0.001, cap_s=0.002)
IMAGES = np.arange(5 * 784, dtype=np.int64).reshape(5, 28, 28).astype(np.uint8)


def sent_images(request: httpx.Request) -> np.ndarray:
    body = request.content
    if request.url.path == "/predict":
        return np.array(orjson.loads(body)["images"], dtype=np.uint8)
    return np.load(io.BytesIO(body[body.index(b"\x93NUMPY") :]), allow_pickle=False)


def answer(n: int, version: int = 4) -> httpx.Response:
    """A well-formed answer: image i gets label i % 10 with probability 0.91."""
    predictions = []
    for i in range(n):
        probabilities = [0.01] * 10
        probabilities[i % 10] = 0.91
        predictions.append({"label": i % 10, "confidence": 0.91, "probabilities": probabilities})
    return httpx.Response(200, json={"model_version": version, "predictions": predictions})


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Outcome:
    client: ServiceClient
    requests: list[httpx.Request]
    scores: Scores | None
    error: Exception | None


def score(handler: Handler, chunk: Chunk, transport: Transport = "auto") -> Outcome:
    log: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        log.append(request)
        return handler(request)

    client = ServiceClient(
        "http://batch.test",
        policy=FAST,
        transport=transport,
        http_transport=httpx.MockTransport(recording),
    )

    async def run() -> Outcome:
        try:
            return Outcome(client, log, await client.score(chunk), None)
        except Exception as exc:
            return Outcome(client, log, None, exc)
        finally:
            await client.aclose()

    return asyncio.run(run())


def flaky(failures: list[httpx.Response | Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return answer(len(sent_images(request)))

    return handler


def test_transient_failures_are_retried_until_an_answer() -> None:
    failures: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"error": "overloaded"}),
        httpx.Response(429, headers={"retry-after": "0"}, json={"error": "slow down"}),
        httpx.ReadTimeout("slow"),
    ]
    out = score(flaky(failures), Chunk(10, IMAGES), transport="npy")
    assert out.error is None and out.scores is not None
    assert out.client.retries == 4
    assert len(out.requests) == 5
    assert out.scores.labels.tolist() == [0, 1, 2, 3, 4]
    assert out.scores.model_version == 4
    np.testing.assert_array_equal(sent_images(out.requests[-1]), IMAGES)


def test_retries_stop_at_the_limit() -> None:
    always = [httpx.Response(500, json={"error": "boom"}) for _ in range(10)]
    out = score(flaky(always), Chunk(10, IMAGES))
    assert isinstance(out.error, RetriesExhausted)
    assert "rows 10..14: gave up after 4 retries" in str(out.error)
    assert "HTTP 500: boom" in str(out.error)
    assert len(out.requests) == 5


@pytest.mark.parametrize(
    "body",
    [
        {"error": "image 3 has pixels outside 0..255", "reason": "out_of_range", "index": 3},
        [{"error": "image 3 has pixels outside 0..255", "index": 3}],  # BentoML's own shape
    ],
)
def test_a_4xx_is_not_retried_and_names_the_input(body: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=body)

    out = score(handler, Chunk(40, IMAGES))
    assert isinstance(out.error, ServerRejected)
    assert out.error.index == 43
    assert str(out.error) == (
        "the service rejected input 43 with HTTP 400: image 3 has pixels outside 0..255"
    )
    assert len(out.requests) == 1


def test_a_4xx_for_a_file_names_the_file_and_413_suggests_smaller_chunks() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/predict_image":
            return httpx.Response(400, json={"error": "unreadable", "index": 1})
        return httpx.Response(413, text="too big")

    chunk = Chunk(7, IMAGES[:0], names=("a.png", "b.png"), files=(b"x", b"y"))
    error = score(handler, chunk).error
    assert str(error) == "the service rejected input 8 (b.png) with HTTP 400: unreadable"
    error = score(handler, Chunk(0, IMAGES)).error
    assert isinstance(error, ServerRejected) and error.index is None
    assert str(error).endswith("HTTP 413: too big (try a smaller --chunk-size)")


def test_without_a_binary_route_the_client_falls_back_to_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/predict_npy":
            return httpx.Response(404, json={"error": "not found"})
        assert request.headers["content-type"] == "application/json"
        return answer(len(sent_images(request)))

    out = score(handler, Chunk(0, IMAGES))
    assert out.scores is not None
    assert out.client.fell_back_to_json
    assert out.client.retries == 0
    assert [r.url.path for r in out.requests] == ["/predict_npy", "/predict"]
    np.testing.assert_array_equal(sent_images(out.requests[1]), IMAGES.reshape(5, 784))
    assert out.scores.labels.tolist() == [0, 1, 2, 3, 4]


def test_a_single_image_is_sent_once() -> None:
    # The service's model runtime keeps one-image calls bit-stable; the client sends as is.
    out = score(flaky([]), Chunk(3, IMAGES[:1]))
    assert out.scores is not None
    assert len(sent_images(out.requests[0])) == 1
    assert out.scores.labels.tolist() == [0]
    assert out.scores.probabilities.shape == (1, 10)


def test_a_wrong_number_of_predictions_is_a_protocol_violation() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer(len(sent_images(request)) - 1)

    error = score(handler, Chunk(0, IMAGES)).error
    assert isinstance(error, ProtocolViolation)
    assert "4 predictions for 5 images" in str(error)


def test_backoff_grows_and_is_capped_with_jitter() -> None:
    policy = RetryPolicy(retries=10, base_s=0.5, cap_s=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, so clients do not retry in lockstep
    assert policy.delay(0, retry_after=3.0) == 3.0
