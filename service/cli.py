"""Serve the latest exported MNIST model over HTTP (settings: MNIST_* env vars or flags)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import existing_versions, find_model
from runtime.checks import CheckRecords

from .config import ServiceSettings
from .rundir import RUN_DIR_ENV, RunDir
from .shutdown import Shutdown

POLL_SECONDS = 0.2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-serve", description=__doc__)
    parser.add_argument("--model-dir", type=Path, help="model root (env MNIST_MODEL_DIR)")
    parser.add_argument("--host", help="address to listen on (env MNIST_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (env MNIST_PORT)")
    parser.add_argument("--workers", type=int, help="worker processes (env MNIST_WORKERS)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = ServiceSettings(**overrides)
        info = find_model(settings.model_dir)
        on_disk = existing_versions(settings.model_dir)
        chosen = settings.policy.select(on_disk)
        if not chosen:
            raise ModelUnavailable(
                f"version policy {settings.policy} selects none of the versions under "
                f"{settings.model_dir} ({', '.join(map(str, on_disk))})"
            )
    except ValidationError as exc:
        problems = "; ".join(
            f"MNIST_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"mnist-serve: bad setting: {problems}", file=sys.stderr)
        return 2
    except ModelUnavailable as exc:
        print(f"mnist-serve: {exc}", file=sys.stderr)
        return 2
    print(
        f"mnist-serve: starting {settings.workers} worker(s) for {info.path.parent} "
        f"(policy {settings.policy}: versions {', '.join(map(str, chosen))})",
        flush=True,
    )
    # Workers are separate processes started from the service's import string: they read
    # the same settings from the environment, with the model root made absolute.
    resolved = settings.model_copy(update={"model_dir": settings.model_dir.resolve()})
    for name, value in resolved.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            os.environ[f"MNIST_{name.upper()}"] = str(value)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    # glibc gives each thread its own malloc arena; TensorFlow's and the server's threads
    # would otherwise each keep tens of MB resident per worker.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # The dense runtime's matrix products run in OpenBLAS, whose pool would otherwise
    # start a thread per core in every worker: one per worker, like TensorFlow's.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(settings.tf_threads))
    run_dir = RunDir(Path(tempfile.mkdtemp(prefix="mnist-serve-")))
    checker = _start_checks(resolved, run_dir, chosen)
    try:
        return _serve(resolved, run_dir)
    finally:
        if checker is not None and checker.poll() is None:
            checker.kill()
            checker.wait()
        shutil.rmtree(run_dir.path, ignore_errors=True)


def _start_checks(
    settings: ServiceSettings, run: RunDir, versions: list[int]
) -> subprocess.Popen[bytes] | None:
    """Check the dense runtime's files of ``versions`` once for every worker, in a
    process of its own while BentoML starts (:mod:`runtime.checks`)."""
    if settings.runtime != "dense" or settings.data_dir is None:
        return None
    CheckRecords(run.checks_dir).announce(versions)
    checker = subprocess.Popen(
        [sys.executable, "-m", "runtime.dense", "--check-into", str(run.checks_dir)]
        + ["--data-dir", str(settings.data_dir)]
        + [str(settings.model_dir / str(version)) for version in versions],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    # Reaped as soon as it ends, so no defunct process lingers beside the workers.
    threading.Thread(target=checker.wait, name="mnist-check-reaper", daemon=True).start()
    return checker


def _serve(settings: ServiceSettings, run: RunDir) -> int:
    from bentoml._internal.configuration.containers import BentoMLContainer

    from .service import SERVICE

    run.create()
    os.environ[RUN_DIR_ENV] = str(run.path)
    # BentoML wipes its Prometheus directory on start; a private one keeps two servers on
    # one machine (tests, a benchmark beside a dev server) from erasing each other's series.
    BentoMLContainer.prometheus_multiproc_dir.set(str(run.prometheus_dir))
    # Likewise the async-job result store: BentoML deletes and recreates it on every start.
    os.environ["BENTOML_RESULT_STORE"] = str(run.task_store)
    SERVICE.config["workers"] = settings.workers
    # BentoML's own time limit stays behind ours, so a slow request gets our 504 answer.
    traffic = SERVICE.config.setdefault("traffic", {})
    traffic["timeout"] = settings.request_timeout_s + 5
    configure_bentoml(settings, SERVICE.name)

    shutdown = Shutdown(settings, run)
    for attempt in range(1, START_ATTEMPTS + 1):
        failure = StartFailure()
        with failure.watching():
            server = SERVICE.serve_http(host=settings.host, port=settings.port, threaded=True)
            status = _supervise(server, settings, run, shutdown)
        if status is not None:
            return status
        error = failure.error
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            print(f"mnist-serve: {settings.host}:{settings.port} is in use", file=sys.stderr)
            return 1
        again = attempt < START_ATTEMPTS and is_port_race(error)
        print(
            f"mnist-serve: the process manager failed to start "
            f"({type(error).__name__}: {error})" + ("; starting it again" if again else ""),
            file=sys.stderr,
            flush=True,
        )
        if not again:
            return 1
        time.sleep(START_RETRY_S * attempt)
    return 1


START_ATTEMPTS = 3
START_RETRY_S = 0.5


def is_port_race(error: BaseException | None) -> bool:
    """BentoML picks the process manager's two ZeroMQ ports free and releases them before
    binding: another process can take one in between. Such a start is tried again."""
    return type(error).__name__ == "ZMQError" and "Address already in use" in str(error)


class StartFailure:
    """The exception that ended BentoML's process-manager thread during start-up, caught
    instead of printed as a traceback (it is reported in one line)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            # Python names a thread after its target: the ThreadedArbiter's is "_worker".
            arbiter = args.thread is not None and args.thread.name.endswith("(_worker)")
            if arbiter and self.error is None and args.exc_value is not None:
                self.error = args.exc_value
                return
            previous(args)

        threading.excepthook = hook
        try:
            yield
        finally:
            threading.excepthook = previous


def _supervise(
    server: Any, settings: ServiceSettings, run: RunDir, shutdown: Shutdown
) -> int | None:
    """Run until shutdown or failure; the exit status, or None when BentoML's process
    manager stopped before any worker was ready (a failed start)."""
    arbiter_thread: threading.Thread = server.arbiter._thread
    announced = False
    status: int | None = 0
    try:
        while arbiter_thread.is_alive():
            shutdown.install()
            if shutdown.requested.wait(POLL_SECONDS):
                return shutdown.drain()
            if run.failure.exists():
                print(f"mnist-serve: {run.failure.read_text().strip()}", file=sys.stderr)
                return 1
            if not announced and len(run.ready_workers()) >= settings.workers:
                announced = True
                print(
                    f"mnist-serve: ready: {settings.workers} worker(s) serving on "
                    f"http://{settings.host}:{settings.port}",
                    flush=True,
                )
        if not announced and not run.ready_workers():
            status = None
    finally:
        server.stop()
        # A start that failed half-way leaves the listening socket bound; a retry needs it.
        server.arbiter.sockets.close_all()
        # The arbiter's ZeroMQ context keeps two threads alive that would block exit.
        server.arbiter.context.destroy(linger=0)
    return status


def configure_bentoml(settings: ServiceSettings, name: str) -> None:
    """BentoML options that follow from our settings, for this process and the workers."""
    options = [os.environ.get("BENTOML_CONFIG_OPTIONS", "")]
    if not settings.access_log:
        options.append(f"services.{name}.logging.access.enabled=false")
    if not settings.trace_requests:
        # Excluding every URL makes the tracing middleware pass requests straight through.
        options.append(f"services.{name}.tracing.excluded_urls=.")
    os.environ["BENTOML_CONFIG_OPTIONS"] = " ".join(o for o in options if o)


if __name__ == "__main__":
    raise SystemExit(main())
