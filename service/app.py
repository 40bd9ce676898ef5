"""The service's own ASGI app: every route we answer ourselves, and the one error path.

:func:`create_app` builds a Starlette app from the routes and the exception handlers of
:mod:`service.errors`. In a BentoML worker it is mounted on the service and gets the
worker when BentoML has built the service instance; in process (tests) it is handed a
worker directly, and wrapped with :class:`~service.middleware.HttpGuard` by
:func:`guarded`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import admin, demo, lifecycle, native, openapi, report, tfserving, v2
from .errors import CatchAll, exception_handlers, json_response
from .middleware import HttpGuard
from .worker import Worker

OWN_PREFIXES = ("/predict", "/v2/", "/v1/models/")
"""Path prefixes only :func:`create_app`'s routes serve (BentoML has none of its own
under them): the prediction endpoints of every protocol."""

WorkerSource = Callable[[], Worker | None]
SpecSource = Callable[[], dict[str, Any]]


def create_app(
    worker: Worker | WorkerSource, *, bentoml_spec: SpecSource | None = None
) -> Starlette:
    """Our routes over ``worker`` (or a function giving it, once BentoML has built it)."""

    document: dict[str, Any] = {}

    async def docs(request: Request) -> Response:
        if not document:  # built once per worker, on first request
            settings = request.app.state.worker.settings
            document.update(openapi.document(bentoml_spec() if bentoml_spec else {}, settings))
        return json_response(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if callable(worker) and not isinstance(worker, Worker):
            app.state.worker = worker()
        served = app.state.worker
        chores = (
            [asyncio.create_task(chore(served)) for chore in lifecycle.CHORES] if served else []
        )
        yield
        for task in chores:
            task.cancel()
        await asyncio.gather(*chores, return_exceptions=True)

    app = Starlette(
        routes=[
            *native.routes(),
            *admin.routes(),
            *report.routes(),
            *demo.routes(),
            *v2.routes(),  # the standard protocols, beside the native API
            *tfserving.routes(),
            Route("/docs.json", docs, methods=["GET"]),
        ],
        exception_handlers=exception_handlers(),
        middleware=[Middleware(CatchAll)],
        lifespan=lifespan,
    )
    if isinstance(worker, Worker):
        app.state.worker = worker
    return app


def guarded(worker: Worker) -> HttpGuard:
    """The app as one worker process serves it, guard included, for in-process use."""
    return HttpGuard(create_app(worker), worker=lambda: worker)
