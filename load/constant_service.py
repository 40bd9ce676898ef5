"""A constant-answer server on the service's own stack: what HTTP alone costs here.

Same BentoML version, server entry point, worker count, traffic settings, BentoML options
(access log, tracing: from the same ``MNIST_*`` settings) as ``service.service.MnistService``,
and the same way of answering: a Starlette route mounted on the BentoML service reads the
request body; it neither decodes the body nor calls a model, it returns one fixed,
contract-shaped prediction. The service's
single-image throughput is judged as a fraction of this server's, measured in the same
benchmark round.

Run: ``python -m load.constant_service --port 3100 --workers 2`` (ready when /readyz is 200);
:func:`load.bench.constant_command` builds that command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import bentoml
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = orjson.dumps(
    {
        "model_version": 1,
        "predictions": [
            {"label": 7, "confidence": 0.91, "probabilities": [0.01] * 7 + [0.91, 0.01, 0.01]}
        ],
    }
)
HEADERS = {"X-Model-Version": "1"}


async def predict(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json", headers=HEADERS)


@bentoml.service(name="mnist_constant", traffic={"timeout": 60})
class ConstantService:
    """Answers every prediction request with the same single prediction."""


ConstantService.mount_asgi_app(Starlette(routes=[Route("/predict", predict, methods=["POST"])]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.constant_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from _bentoml_impl.server.serving import serve_http
    from bentoml._internal.configuration.containers import BentoMLContainer

    # Workers import the service by module path; under ``python -m`` this module is
    # ``__main__``, so take the class from its importable name.
    from load.constant_service import ConstantService as service
    from service.cli import configure_bentoml
    from service.config import ServiceSettings

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    run_dir = Path(tempfile.mkdtemp(prefix="mnist-constant-"))
    # BentoML wipes its Prometheus directory on start: a private one leaves other servers'.
    BentoMLContainer.prometheus_multiproc_dir.set(str(run_dir / "prometheus"))
    service.config["workers"] = args.workers
    # The service's BentoML options (access log, tracing) follow the same MNIST_* settings.
    configure_bentoml(ServiceSettings(), service.name)
    service.inject_config()  # the service does this through add_asgi_middleware
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    server = serve_http(service, host=args.host, port=args.port, threaded=True)
    # After serve_http: circus installs signal handlers of its own while it starts, which
    # stop the workers but would leave this process waiting forever.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        stop.wait()
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
