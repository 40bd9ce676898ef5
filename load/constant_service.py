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

import os
import sys
from typing import Any

import bentoml
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from load import peer

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
    args = peer.parse_args("python -m load.constant_service", __doc__, argv)
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # Workers import the service by module path; under ``python -m`` this module is
    # ``__main__``, so take the class from its importable name.
    from load.constant_service import ConstantService as service
    from service.cli import configure_bentoml
    from service.config import ServiceSettings

    def configure(service: Any) -> None:
        # The service's BentoML options (access log, tracing) follow the same MNIST_* settings.
        configure_bentoml(ServiceSettings(), service.name)

    return peer.serve(service, args, run_prefix="mnist-constant-", configure=configure)


if __name__ == "__main__":
    sys.exit(main())
