"""Scoring chunks through the service over HTTP, with retries that never lose a chunk.

Binary first: a chunk goes as a ``.npy`` multipart upload to ``POST /predict_npy``
(field ``array``); if the service has no such route (404/405) the client switches to
``POST /predict`` with a JSON body, once, for the rest of the job. Image files (a
directory input) go as they are to ``POST /predict_image``, so the service prepares
them exactly as it prepares any upload.

Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and
jitter, up to a limit; any other 4xx stops the job with the offending row and the
server's message.

    BatchError
    ├── ServerRejected     a 4xx: the input is wrong, retrying cannot help
    ├── RetriesExhausted   transient failures outlasted the retry budget
    └── ProtocolViolation  a 200 whose body is not the agreed shape
"""

from __future__ import annotations

import asyncio
import io
import random
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np
import orjson

from mnist_core.errors import MnistError
from mnist_core.sources import Chunk

from .scores import Scores

Transport = Literal["auto", "npy", "json"]
NPY_ROUTE = "/predict_npy"
JSON_ROUTE = "/predict"
IMAGE_ROUTE = "/predict_image"


class BatchError(MnistError):
    """A chunk could not be scored; the job stops (and can be resumed)."""


class ServerRejected(BatchError):
    """The service refused a chunk with a 4xx."""

    def __init__(self, message: str, *, status: int, index: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.index = index


class RetriesExhausted(BatchError):
    """Transient failures went on longer than the retry budget."""


class ProtocolViolation(BatchError):
    """The service answered 200 with a body that is not the agreed shape."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: try ``n`` waits ``base * 2**n`` (capped), times 0.5..1."""

    retries: int = 10
    base_s: float = 0.25
    cap_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.cap_s, self.base_s * 2.0**attempt) * random.uniform(0.5, 1.0)
        return max(backoff, min(retry_after, self.cap_s)) if retry_after else backoff


def error_detail(response: httpx.Response) -> dict[str, Any]:
    """The error object of a 4xx/5xx body: ours is a JSON object, BentoML's own a list of one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"error": response.text[:300].strip() or response.reason_phrase}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        return body
    return {"error": str(body)[:300]}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


class ServiceClient:
    """Scores chunks on the service at ``url``; at most ``concurrency`` requests in flight."""

    def __init__(
        self,
        url: str,
        *,
        transport: Transport = "auto",
        timeout_s: float = 60.0,
        concurrency: int = 4,
        policy: RetryPolicy | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        model_version: int | None = None,
        label: str | None = None,
    ) -> None:
        # The service's per-request choice of version: pinned, a rollout cannot change it.
        params = {"version": str(model_version)} if model_version is not None else {}
        if label is not None:
            params["label"] = label
        self._http = httpx.AsyncClient(
            base_url=url,
            params=params,
            transport=http_transport,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._transport: Transport = transport
        self._policy = policy or RetryPolicy()
        self.retries = 0
        self.fell_back_to_json = False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, chunk: Chunk) -> httpx.Response:
        if chunk.files is not None:
            upload = [
                ("images", (name, data, "application/octet-stream"))
                for name, data in zip(chunk.names or (), chunk.files, strict=True)
            ]
            return await self._http.post(IMAGE_ROUTE, files=upload)
        images = chunk.images
        if self._transport == "json":
            body = orjson.dumps(
                {"images": images.reshape(len(images), -1)}, option=orjson.OPT_SERIALIZE_NUMPY
            )
            return await self._http.post(
                JSON_ROUTE, content=body, headers={"content-type": "application/json"}
            )
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        files_ = {"array": ("chunk.npy", buffer.getvalue(), "application/octet-stream")}
        return await self._http.post(NPY_ROUTE, files=files_)

    async def score(self, chunk: Chunk) -> Scores:
        rows = f"rows {chunk.start}..{chunk.stop - 1}"
        attempt = 0
        while True:
            retry_after = None
            try:
                response = await self._send(chunk)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                status = response.status_code
                if status == 200:
                    return self._parse(response, len(chunk), rows)
                no_route = error_detail(response).get("reason") in (
                    None,
                    "not_found",
                    "method_not_allowed",
                )
                if (
                    no_route
                    and status in (404, 405)
                    and self._transport == "auto"
                    and chunk.files is None
                ):
                    self._transport = "json"
                    self.fell_back_to_json = True
                    continue
                if status != 429 and status < 500:
                    raise self._rejected(response, chunk)
                problem = f"HTTP {status}: {error_detail(response).get('error', '')}"
                retry_after = _retry_after(response)
            if attempt >= self._policy.retries:
                raise RetriesExhausted(
                    f"{rows}: gave up after {attempt} retries; last error: {problem}"
                )
            await asyncio.sleep(self._policy.delay(attempt, retry_after))
            attempt += 1
            self.retries += 1

    @staticmethod
    def _rejected(response: httpx.Response, chunk: Chunk) -> ServerRejected:
        detail = error_detail(response)
        message = str(detail.get("error", "")) or response.reason_phrase
        if detail.get("reason") in ("unknown_version", "unknown_label"):
            return ServerRejected(
                f"rows {chunk.start}..{chunk.stop - 1}: {message}; the rows before are kept. "
                "Rerun with --model-version N --restart to score the whole input with a "
                "version the service serves (GET /models lists them), or have the service "
                "keep serving this one (MNIST_VERSION_POLICY=latest:2 or specific:N)",
                status=response.status_code,
                index=None,
            )
        offset = detail.get("index")
        if isinstance(offset, int) and 0 <= offset < len(chunk):
            index: int | None = chunk.start + offset
            where = f"input {index}"
            if chunk.names is not None:
                where += f" ({chunk.names[offset]})"
        else:
            index = None
            where = f"rows {chunk.start}..{chunk.stop - 1}"
        hint = " (try a smaller --chunk-size)" if response.status_code == 413 else ""
        return ServerRejected(
            f"the service rejected {where} with HTTP {response.status_code}: {message}{hint}",
            status=response.status_code,
            index=index,
        )

    @staticmethod
    def _parse(response: httpx.Response, n: int, rows: str) -> Scores:
        try:
            body = orjson.loads(response.content)
            predictions = body["predictions"]
            labels = np.array([p["label"] for p in predictions], dtype=np.int64)
            # The service computes float32 and writes each number's shortest float32
            # spelling: read as float32, it is the service's value exactly.
            probabilities = np.array([p["probabilities"] for p in predictions], dtype=np.float32)
            version = int(body.get("model_version", response.headers.get("x-model-version")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"{rows}: unexpected response body ({exc!r})") from None
        if len(predictions) != n or probabilities.shape != (n, 10):
            raise ProtocolViolation(
                f"{rows}: {len(predictions)} predictions for {n} images"
                f" (probabilities {probabilities.shape})"
            )
        return Scores(labels=labels, probabilities=probabilities, model_version=version)
