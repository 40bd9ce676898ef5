"""The admin API: loading and unloading model versions by request, as Triton's repository API.

    POST /models/<version>/load     serve it whatever the policy says (and retry a failed one)
    POST /models/<version>/unload   stop serving it (never the last version serving)

Both need ``Authorization: Bearer <MNIST_ADMIN_TOKEN>``; with no token configured the
API is disabled. A refused request changes nothing. The worker that answers acts at
once and answers with its status; the other workers follow within a poll interval (the
explicit choices are shared through a file, :mod:`service.repository`).
"""

from __future__ import annotations

import asyncio
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core.errors import Conflict, Forbidden, Unauthorized

from .errors import json_response
from .native import parse_version
from .repository import State
from .worker import Worker

WAIT_POLL_S = 0.05


def authorize(request: Request, worker: Worker) -> None:
    """Raise unless the request carries the configured admin token."""
    token = worker.settings.admin_token
    if token is None or not token.get_secret_value():
        raise Forbidden(
            "the admin API is disabled: set MNIST_ADMIN_TOKEN to enable it",
            reason="admin_disabled",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("send the admin token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Forbidden("the admin token is not right")


def _version(request: Request) -> int:
    return parse_version(request.path_params["version"])


async def _settled(worker: Worker, version: int, wanted: set[State]) -> State | None:
    """Wait (up to the request time limit) until ``version`` is in one of ``wanted``.

    A version is available as soon as it has loaded, and served once the repository has
    published it a moment later: an available version counts only once it is served, so
    the answer's ``served_versions`` includes it.
    """
    deadline = time.monotonic() + max(1.0, worker.settings.request_timeout_s - 5)
    while time.monotonic() < deadline:
        entry = worker.repository.state_of(version)
        state = entry.state if entry is not None else None
        published = state is not State.AVAILABLE or version in worker.repository.served
        if state in wanted and published:
            return state
        await asyncio.sleep(WAIT_POLL_S)
    return None


async def load_version(worker: Worker, version: int) -> bool:
    """Serve ``version``; True once it serves, False if still loading at the time limit.

    Also the model repository extension's load (:mod:`service.v2`)."""
    await asyncio.to_thread(worker.repository.request_load, version)
    worker.repository.wake()
    state = await _settled(worker, version, {State.AVAILABLE, State.FAILED})
    entry = worker.repository.state_of(version)
    if state is State.FAILED and entry is not None:
        raise Conflict(
            f"model version {version} failed to load: {entry.error}",
            reason="load_failed",
            version=version,
        )
    return state is State.AVAILABLE


async def unload_version(worker: Worker, version: int) -> bool:
    """Stop serving ``version``; True once it is unloaded, False if still unloading."""
    await asyncio.to_thread(worker.repository.request_unload, version)
    worker.repository.wake()
    return await _settled(worker, version, {State.UNLOADED}) is State.UNLOADED


async def load(request: Request) -> Response:
    worker: Worker = request.app.state.worker
    authorize(request, worker)
    done = await load_version(worker, _version(request))
    return json_response(worker.status(), 200 if done else 202)


async def unload(request: Request) -> Response:
    worker: Worker = request.app.state.worker
    authorize(request, worker)
    done = await unload_version(worker, _version(request))
    return json_response(worker.status(), 200 if done else 202)


def routes() -> list[BaseRoute]:
    return [
        Route("/models/{version}/load", load, methods=["POST"]),
        Route("/models/{version}/unload", unload, methods=["POST"]),
    ]
