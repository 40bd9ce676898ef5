"""The training report of a served version, read-only: the PNGs the training job wrote.

    GET /models/<version>/report          which report files this version has, with URLs
    GET /models/<version>/report/<name>   one of them (image/png)

Only the names in :data:`~mnist_core.modeldir.REPORT_FILES` are ever opened, and only in
the directory of a version this worker serves: a request names a file from that fixed
list, never a path, so nothing else on disk can be reached through it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core.errors import NotFound
from mnist_core.modeldir import REPORT_FILES

from .errors import json_response
from .native import parse_version
from .worker import Worker

CACHE = "public, max-age=3600"
"""A version's files never change once published (versions are immutable)."""


def _version_dir(request: Request) -> tuple[int, Path]:
    worker: Worker = request.app.state.worker
    number = worker.repository.resolve(parse_version(request.path_params["version"]))
    entry = worker.repository.state_of(number)
    if entry is None or entry.info is None:  # served versions always have their info
        raise NotFound(f"model version {number} is not served", reason="unknown_version")
    return number, entry.info.path


def present(directory: Path) -> list[str]:
    """The report files ``directory`` holds, in the training job's order."""
    return [name for name in REPORT_FILES if (directory / name).is_file()]


async def listing(request: Request) -> Response:
    """The report files of a served version and where to get them."""
    number, directory = _version_dir(request)
    files = [
        {"name": name, "url": f"/models/{number}/report/{name}"} for name in present(directory)
    ]
    return json_response({"version": number, "files": files})


async def report_file(request: Request) -> Response:
    """One report PNG of a served version."""
    number, directory = _version_dir(request)
    name = request.path_params["name"]
    if name not in REPORT_FILES:
        raise NotFound(
            f"no report file {name!r}; the report has " + ", ".join(REPORT_FILES),
            field="name",
        )
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(
            f"model version {number} has no {name} (trained with --no-report?)", field="name"
        ) from None
    return Response(data, media_type="image/png", headers={"Cache-Control": CACHE})


def routes() -> list[BaseRoute]:
    return [
        Route("/models/{version}/report", listing, methods=["GET"]),
        Route("/models/{version}/report/{name}", report_file, methods=["GET"]),
    ]
