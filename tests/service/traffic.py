"""Steady traffic against a test server, recorded request by request.

Each client is a thread with its own keep-alive connection, so it stays on the worker
that accepted it (``/models`` on that connection says which); it sends real test images
to ``POST /predict`` until stopped, or until ``max_seconds``, and records every answer:
a failure is anything but a 200 with one well-formed prediction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class Answer:
    at: float
    status: int
    version: int | None
    correct: bool
    error: str | None = None


@dataclass
class Client:
    index: int
    worker_pid: int | None = None
    answers: list[Answer] = field(default_factory=list)

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200 or not a.correct]

    def versions(self) -> list[int]:
        return [a.version for a in self.answers if a.version is not None]

    def first_seen(self, version: int) -> float | None:
        return next((a.at for a in self.answers if a.version == version), None)


@dataclass
class Traffic:
    clients: list[Client]
    stop: threading.Event

    @property
    def answers(self) -> list[Answer]:
        return [a for c in self.clients for a in c.answers]

    @property
    def failures(self) -> list[Answer]:
        return [a for c in self.clients for a in c.failures]

    def workers(self) -> set[int]:
        return {c.worker_pid for c in self.clients if c.worker_pid is not None}

    def all_see(self, version: int) -> bool:
        """Every client's latest answer came from ``version``."""
        return all(c.answers and c.answers[-1].version == version for c in self.clients)


def _run(
    client: Client,
    url: str,
    images: np.ndarray,
    stop: threading.Event,
    deadline: float,
    path: str,
) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=url, timeout=30, limits=limits) as http:
        try:
            client.worker_pid = http.get("/models").json()["worker"]["pid"]
        except (httpx.HTTPError, KeyError, ValueError):
            client.worker_pid = None
        position = client.index
        while not stop.is_set() and time.monotonic() < deadline:
            index = position % len(images)
            position += 7
            body = {"images": [images[index].tolist()]}
            try:
                response = http.post(path, json=body)
            except httpx.HTTPError as exc:
                client.answers.append(Answer(time.monotonic(), 0, None, False, repr(exc)))
                continue
            version_header = response.headers.get("x-model-version")
            version = int(version_header) if version_header else None
            error = None if response.status_code == 200 else response.text[:200]
            correct = error is None and _well_formed(response.json())
            answer = Answer(time.monotonic(), response.status_code, version, correct, error)
            client.answers.append(answer)


def _well_formed(body: dict[str, object]) -> bool:
    """One prediction whose label is its most probable digit (any version's answer is)."""
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != 1:
        return False
    probabilities = predictions[0]["probabilities"]
    return len(probabilities) == 10 and predictions[0]["label"] == int(np.argmax(probabilities))


@contextmanager
def steady_traffic(
    url: str,
    images: np.ndarray,
    *,
    clients: int = 16,
    max_seconds: float = 120.0,
    path: str = "/predict",
) -> Iterator[Traffic]:
    """``clients`` threads sending single images for the duration of the block."""
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds
    traffic = Traffic([Client(i) for i in range(clients)], stop)
    threads = [
        threading.Thread(target=_run, args=(c, url, images, stop, deadline, path))
        for c in traffic.clients
    ]
    for thread in threads:
        thread.start()
    try:
        yield traffic
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def wait_until(predicate: object, timeout: float, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` was true; AssertionError after ``timeout``."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


@dataclass
class Closed:
    """What a closed-loop run of many clients saw."""

    statuses: list[int]
    latencies: list[float]
    retry_after: list[str | None]
    seconds: float

    def p99_ms(self, status: int = 200) -> float:
        values = [lat for s, lat in zip(self.statuses, self.latencies, strict=True) if s == status]
        return float(np.percentile(values, 99) * 1000) if values else float("nan")

    def rate(self, status: int = 200) -> float:
        return self.statuses.count(status) / self.seconds


def closed_loop(
    url: str, images: np.ndarray, clients: int, seconds: float, *, warmup: float = 0.0
) -> Closed:
    """``clients`` asyncio clients (one connection each) sending single images for ``seconds``.

    A client told 429 waits as ``Retry-After`` says before it sends again. Requests sent
    in the first ``warmup`` seconds (while every client opens its connection) are not kept.
    """
    import asyncio

    import aiohttp

    bodies = [
        ('{"images": [' + json.dumps(images[i].reshape(-1).tolist()) + "]}").encode()
        for i in range(min(len(images), 200))
    ]
    found = Closed([], [], [], seconds - warmup)

    async def one(index: int, deadline: float) -> None:
        connector = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            position = index
            while time.monotonic() < deadline:
                body = bodies[position % len(bodies)]
                position += 1
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"{url}/predict", data=body, headers={"content-type": "application/json"}
                    ) as response:
                        await response.read()
                        status, retry = response.status, response.headers.get("retry-after")
                except (TimeoutError, aiohttp.ClientError):
                    status, retry = 0, None
                if time.monotonic() >= kept_from:
                    found.statuses.append(status)
                    found.latencies.append(time.perf_counter() - started)
                    found.retry_after.append(retry)
                if status == 429 and retry is not None:
                    await asyncio.sleep(float(retry))  # what Retry-After asks of a client

    kept_from = time.monotonic() + warmup

    async def run() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(one(i, deadline) for i in range(clients)))

    asyncio.run(run())
    return found
