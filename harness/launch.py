"""Start a server as a subprocess on a free 127.0.0.1 port, wait for ``/readyz``, stop it.

Used by ``make load``, ``make bench`` and the tests, so the service is started one way.
The process runs in its own session (process group): stopping it signals that group and
nothing else; its descendants are found through :mod:`harness.procfs`.
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
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .procfs import process_tree

READY_PATH = "/readyz"
PROBE_PATH = "/predict"
PROBE_BODY = b'{"images": [[' + b",".join([b"0"] * 784) + b"]]}"
# Each worker answers /readyz for itself, so the first 200 says one worker is ready. Fresh
# connections spread over the workers: this many successes in a row means all serve.
SERVING_PROBES = 16


class LaunchError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its log."""


@dataclass
class Server:
    """A running server process and what was measured while it started."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    started_at: float = field(default_factory=time.perf_counter)
    ready_seconds: float | None = None
    """Process start to the first ``/readyz`` 200."""
    serving_seconds: float | None = None
    """Process start until every worker answered predictions (see :func:`wait_serving`)."""
    temporary_log: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command() -> list[str]:
    """``mnist-serve`` from the running interpreter's environment."""
    script = Path(sys.executable).with_name("mnist-serve")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]


def _get_status(url: str, timeout: float, body: bytes | None = None) -> int | None:
    """Status of a GET (or a JSON POST of ``body``) on a new connection; None if refused."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def spawn(
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Server:
    """Run ``command`` with ``env`` added to ours, in its own session; do not wait for it."""
    temporary_log = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="mnist-server-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(
        process,
        f"http://127.0.0.1:{port}",
        log_path,
        started_at=started,
        temporary_log=temporary_log,
    )


def start(
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    log_path: Path | None = None,
) -> Server:
    """:func:`spawn`, then return once ``/readyz`` answers 200 and every worker serves."""
    server = spawn(command, port=port, env=env, log_path=log_path)
    try:
        wait_ready(server, ready_timeout)
        wait_serving(server, ready_timeout)
    except BaseException:
        stop(server)
        raise
    return server


def wait_ready(server: Server, timeout: float) -> None:
    deadline = server.started_at + timeout
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise LaunchError(
                f"server exited with code {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        if _get_status(server.url + READY_PATH, timeout=1.0) == 200:
            server.ready_seconds = time.perf_counter() - server.started_at
            return
        time.sleep(0.02)
    raise LaunchError(f"server not ready after {timeout:.0f} s:\n" + server.log_tail())


def wait_serving(server: Server, timeout: float) -> None:
    """Wait until ``SERVING_PROBES`` predictions in a row, each on a new connection, got 200."""
    deadline = server.started_at + timeout
    in_a_row = 0
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise LaunchError(
                f"server exited with code {server.process.returncode} while starting:\n"
                + server.log_tail()
            )
        if _get_status(server.url + PROBE_PATH, timeout=5.0, body=PROBE_BODY) == 200:
            in_a_row += 1
            if in_a_row == SERVING_PROBES:
                server.serving_seconds = time.perf_counter() - server.started_at
                return
        else:
            in_a_row = 0
            time.sleep(0.02)
    raise LaunchError(f"not every worker serving after {timeout:.0f} s:\n" + server.log_tail())


def stop(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it.

    The process manager may move workers into process groups of their own, so the
    server's descendants are noted first and any that outlive it are killed by PID.
    """
    descendants = [pid for pid in process_tree(server.pid) if pid != server.pid]
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(5.0)
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if server.temporary_log:
        server.log_path.unlink(missing_ok=True)


def service_env(
    model_dir: str | Path, port: int, workers: int | None = None, **extra: str
) -> dict[str, str]:
    """The ``MNIST_*`` settings of ``mnist-serve`` for a local run."""
    env = {
        "MNIST_MODEL_DIR": str(model_dir),
        "MNIST_HOST": "127.0.0.1",
        "MNIST_PORT": str(port),
        **extra,
    }
    if workers is not None:
        env["MNIST_WORKERS"] = str(workers)
    return env


@contextlib.contextmanager
def running_service(
    model_dir: str | Path,
    *,
    workers: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    log_path: Path | None = None,
) -> Iterator[Server]:
    """``mnist-serve`` on a free port for the duration of the ``with`` block."""
    port = free_port()
    server = start(
        serve_command(),
        port=port,
        env={**service_env(model_dir, port, workers), **(env or {})},
        ready_timeout=ready_timeout,
        log_path=log_path,
    )
    try:
        yield server
    finally:
        stop(server)
