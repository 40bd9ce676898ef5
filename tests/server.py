"""Starting and stopping the real ``mnist-serve`` as a subprocess for tests and benchmarks.

    with ServiceProcess.start(model_root, env={"MNIST_WORKERS": "1"}) as server:
        httpx.post(f"{server.url}/predict", json={"images": [...]})

The server listens on a free 127.0.0.1 port, runs in its own process group, and is
stopped by that group's id: SIGTERM, then SIGKILL after a timeout; its worker processes
are noted by PID beforehand and killed should any survive. Its output goes to a log
file, shown when start-up fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message holds its log tail."""


class ServiceProcess:
    """A running ``mnist-serve``: ``url``, ``pid``, ``log_path``; ``stop()`` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

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
        full_env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "MNIST_MODEL_DIR": str(model_root),
            "MNIST_HOST": "127.0.0.1",
            "MNIST_PORT": str(port),
            "MNIST_WORKERS": str(workers),
            **(env or {}),
        }
        fd, log_name = tempfile.mkstemp(prefix="mnist-serve-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service.cli"],
                cwd=REPO,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the workers
            )
        return cls(process, f"http://127.0.0.1:{port}", Path(log_name))

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
        started = time.monotonic()
        deadline = started + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerFailed(
                        f"mnist-serve exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ServerFailed(f"mnist-serve not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """End the server's process group: SIGTERM, then SIGKILL after ``timeout``.

        The workers run in process groups of their own (the process manager puts them
        there); they are noted first and killed by PID should any outlive the server.
        """
        workers = _descendants(self.process.pid)
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                worker.wait(timeout)
            with contextlib.suppress(psutil.Error):
                worker.kill()
        self.log_path.unlink(missing_ok=True)
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


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
