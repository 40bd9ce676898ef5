"""The real ``mnist-serve`` as a subprocess, for tests: a thin face on :mod:`harness.launch`.

    with ServiceProcess.start(model_root, env={"MNIST_WORKERS": "1"}) as server:
        httpx.post(f"{server.url}/predict", json={"images": [...]})

The server listens on a free 127.0.0.1 port in its own process group and is stopped by
that group's id (SIGTERM, then SIGKILL), its workers by PID should any survive; its
output goes to a log file, shown when start-up fails. ``make load`` and ``make bench``
start servers through the same functions.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from harness import launch
from harness.launch import free_port

__all__ = ["REPO", "ServerFailed", "ServiceProcess", "free_port"]

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0

ServerFailed = launch.LaunchError
"""The server exited or did not become ready; the message holds its log tail."""


class ServiceProcess:
    """A running ``mnist-serve``: ``url``, ``pid``, ``process``, ``log_path``; ``stop()``."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.server = launch.Server(process, url, log_path, temporary_log=True)

    @classmethod
    def _wrap(cls, server: launch.Server) -> ServiceProcess:
        wrapped = cls.__new__(cls)
        wrapped.server = server
        return wrapped

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.server.process

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    @property
    def pid(self) -> int:
        return self.server.pid

    @classmethod
    def launch(
        cls,
        model_root: str | Path,
        env: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        workers: int = 1,
    ) -> ServiceProcess:
        """Start the server without waiting for it (see :meth:`wait_ready`)."""
        port = port or free_port()
        settings = launch.service_env(model_root, port, workers)
        server = launch.spawn(launch.serve_command(), port=port, env={**settings, **(env or {})})
        return cls._wrap(server)

    @classmethod
    def start(
        cls,
        model_root: str | Path,
        env: Mapping[str, str] | None = None,
        *,
        workers: int = 1,
        timeout: float = READY_TIMEOUT_S,
    ) -> ServiceProcess:
        """Start the server and wait until ``/readyz`` answers 200."""
        server = cls.launch(model_root, env, workers=workers)
        try:
            server.wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until ``/readyz`` said 200; raises ServerFailed on exit or timeout."""
        started = time.perf_counter()
        self.server.started_at = started
        launch.wait_ready(self.server, timeout)
        return time.perf_counter() - started

    def log_tail(self, lines: int = 40) -> str:
        return self.server.log_tail(lines) or "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """End the server (see :func:`harness.launch.stop`); its exit status."""
        launch.stop(self.server, timeout)
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
