"""The demo page at ``/demo``: draw or upload a digit in a browser and see what the model says.

The page is static HTML, CSS and plain JavaScript shipped inside the package
(``service/static/``, package data), with nothing loaded from elsewhere, so it works
offline. It talks to the service only through the public API any client uses:
``/metadata``, ``/predict_image?prepared=true`` and the training report routes
(:mod:`service.report`).

Only the files named in :data:`ASSETS` are served; a request names one of them, never a
path.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mnist_core.errors import NotFound

PAGE = "demo.html"
ASSETS = {"demo.css": "text/css", "demo.js": "text/javascript"}
HEADERS = {
    # Nothing but our own origin: no CDN, no inline script, no framing by other sites.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("service").joinpath("static", name).read_bytes()


async def page(request: Request) -> Response:
    """The demo page itself."""
    return Response(_read(PAGE), media_type="text/html; charset=utf-8", headers=HEADERS)


async def asset(request: Request) -> Response:
    """The page's stylesheet or script."""
    name = request.path_params["name"]
    media = ASSETS.get(name)
    if media is None:
        raise NotFound(
            f"no demo asset {name!r}; there are " + ", ".join(sorted(ASSETS)), field="name"
        )
    return Response(_read(name), media_type=f"{media}; charset=utf-8", headers=HEADERS)


def routes() -> list[BaseRoute]:
    return [
        Route("/demo", page, methods=["GET"]),
        Route("/demo/{name}", asset, methods=["GET"]),
    ]
