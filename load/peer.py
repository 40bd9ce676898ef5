"""Serving a reference BentoML service (the constant-answer server, the stock peer).

Both are started by the benchmarks as ``python -m load.<module> --port N --workers W``;
what they share is how BentoML is started in this process and stopped on a signal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any


def parse_args(prog: str, description: str | None, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


def serve(
    service: Any,
    args: argparse.Namespace,
    *,
    run_prefix: str,
    configure: Callable[[Any], None] | None = None,
) -> int:
    """Serve ``service`` (a ``@bentoml.service`` class, imported by its module path, since
    the workers import it that way) until SIGINT or SIGTERM; 0 when stopped."""
    from _bentoml_impl.server.serving import serve_http
    from bentoml._internal.configuration.containers import BentoMLContainer

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    run_dir = Path(tempfile.mkdtemp(prefix=run_prefix))
    # BentoML wipes its Prometheus directory on start: a private one leaves other servers'.
    BentoMLContainer.prometheus_multiproc_dir.set(str(run_dir / "prometheus"))
    service.config["workers"] = args.workers
    if configure is not None:
        configure(service)
    service.inject_config()
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
