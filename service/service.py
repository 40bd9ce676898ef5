"""The BentoML service: process glue between BentoML's server and our app.

BentoML runs the worker processes, ``/livez``, ``/readyz``, ``/metrics``, the docs page
and the async-job task; each worker builds one :class:`MnistService`, which reads the
settings once and builds the :class:`~service.worker.Worker` that our app
(:mod:`service.app`, mounted here) serves every other route with. If the model cannot
be loaded the worker reports why and exits, and ``mnist-serve`` stops with that message
(:mod:`service.cli`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, NoReturn

import bentoml
from starlette.responses import Response

from mnist_core.errors import ModelUnavailable

from . import jobs, logs, multipart
from .app import OWN_PREFIXES, create_app
from .config import ServiceSettings
from .metrics import ServiceMetrics
from .middleware import HttpGuard
from .rundir import RunDir
from .worker import Worker

log = logging.getLogger("mnist.service")


@bentoml.service(name="mnist", traffic={"timeout": 60})
class MnistService:
    """MNIST digit recognition: JSON, image and .npy inputs, adaptively batched."""

    def __init__(self) -> None:
        settings = ServiceSettings()
        logs.configure(settings.log_format)
        try:
            self.worker = Worker(
                settings,
                ServiceMetrics(settings.max_batch_images),
                on_failure=_die,
                run_dir=RunDir.from_env(),
            )
        except ModelUnavailable as exc:
            _die(str(exc))
        self.worker.on_ready = _announce
        self.worker.start()

    def __is_ready__(self) -> bool:
        return self.worker.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def _unload(self) -> None:
        """Versions are unloaded before the process ends (after its requests finished)."""
        self.worker.close()
        log.info("worker %d stopped; its model versions are unloaded", os.getpid())

    @bentoml.task(  # type: ignore[untyped-decorator]
        route="/batch", input_spec=jobs.JobUpload, output_spec=jobs.JobRows
    )
    async def batch(self, file: Any, format: str) -> Response:
        """Async job: score an uploaded .npy or IDX file into mnist-batch's output rows."""
        return await jobs.run(self.worker, file, format)


SERVICE: bentoml.Service[Any] = MnistService
"""The decorated service (mypy sees the bare class through BentoML's decorator)."""


_worker: Worker | None = None


def current_worker() -> Worker | None:
    """This process's worker, once BentoML has built the service instance."""
    global _worker
    if _worker is None:  # asked on every request: looked up until found, then kept
        try:
            instance = bentoml.get_current_service()
        except bentoml.exceptions.BentoMLException:
            return None
        _worker = getattr(instance, "worker", None)
    return _worker


# BentoML still parses the task's multipart upload: without URL fetching, errors as 400s.
multipart.install()
APP = create_app(current_worker, bentoml_spec=lambda: SERVICE.openapi_spec.asdict())
SERVICE.add_asgi_middleware(
    HttpGuard,
    worker=current_worker,
    content_types={"/batch/submit": ("multipart/form-data",)},
    own=(APP, OWN_PREFIXES),
)
SERVICE.mount_asgi_app(APP)


def _announce(worker: Worker) -> None:
    """One line per worker once it serves, and a marker ``mnist-serve`` counts."""
    settings = worker.settings
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"mnist-serve: worker {os.getpid()} serving model version {worker.version} on {url}",
        file=sys.stderr,
        flush=True,
    )
    if worker.run_dir is not None:
        (worker.run_dir.ready_dir / str(os.getpid())).touch()


def _die(message: str) -> NoReturn:
    """Report why the model cannot be served and end this worker process."""
    run_dir = RunDir.from_env()
    if run_dir is not None:
        run_dir.failure.write_text(message + "\n")  # mnist-serve prints it and stops
    else:
        print(f"mnist-serve: {message}", file=sys.stderr, flush=True)
    os._exit(3)
