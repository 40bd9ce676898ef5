"""Start-up: no usable model fails fast and clearly; not ready until the model is warm."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from server import REPO, ServiceProcess


def empty(root: Path) -> None:
    root.mkdir(parents=True)


def missing_weights(root: Path) -> None:
    (root / "1").mkdir(parents=True)
    (root / "1" / "saved_model.pb").write_bytes(b"\x08\x01")
    (root / "1" / "metadata.json").write_text('{"version": 1}')


def unreadable_metadata(root: Path) -> None:
    (root / "2" / "variables").mkdir(parents=True)
    (root / "2" / "saved_model.pb").write_bytes(b"\x08\x01")
    (root / "2" / "metadata.json").write_text("{not json")


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda root: None, "no model found"),
        (empty, "no model found"),
        (missing_weights, "variables is missing"),
        (unreadable_metadata, "unreadable metadata.json"),
    ],
    ids=["no-directory", "empty-directory", "missing-weights", "bad-metadata"],
)
def test_no_model_fails_fast_with_one_clear_line(
    tmp_path: Path, prepare: Callable[[Path], None], problem: str
) -> None:
    root = tmp_path / "models" / "mnist"
    prepare(root)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "--model-dir", str(root)],
        cwd=REPO,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mnist-serve: ") and problem in lines[0]
    assert "make train" in lines[0] and "mnist-train" in lines[0]


def test_corrupt_model_stops_the_server_with_the_reason(
    tmp_path: Path, trained_model_root: Path
) -> None:
    root = tmp_path / "mnist"
    shutil.copytree(trained_model_root / "1", root / "1")
    (root / "1" / "saved_model.pb").write_bytes(b"this is not a protocol buffer")
    server = ServiceProcess.launch(root)
    try:
        returncode = server.process.wait(timeout=120)
        log = server.log_path.read_text()
    finally:
        server.stop()
    assert returncode == 1
    reported = [line for line in log.splitlines() if line.startswith("mnist-serve: model ")]
    assert len(reported) == 1, log
    assert "could not be loaded" in reported[0] and "make train" in reported[0]


def test_not_ready_until_the_model_is_loaded(trained_model_root: Path) -> None:
    # With no grace period a request to a loading worker is refused at once.
    server = ServiceProcess.launch(trained_model_root, {"MNIST_READY_WAIT_S": "0"})
    refused = 0
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                assert server.process.poll() is None, server.log_tail()
                try:
                    ready = client.get(f"{server.url}/readyz")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if ready.status_code == 200:
                    break
                assert ready.status_code == 503
                assert client.get(f"{server.url}/livez").status_code == 200
                early = client.post(f"{server.url}/predict", json={"images": [[0] * 784]})
                if early.status_code == 503:
                    assert early.json()["reason"] == "not_ready"
                    assert early.headers["x-model-version"] == "1"
                    refused += 1
                time.sleep(0.05)
            else:
                pytest.fail(f"never ready:\n{server.log_tail()}")
        assert refused > 0, "/readyz and /predict were never seen refusing while loading"
        answer = httpx.post(f"{server.url}/predict", json={"images": [[0] * 784]}, timeout=30)
        assert answer.status_code == 200
    finally:
        server.stop()


def test_requests_during_loading_wait_for_the_model(trained_model_root: Path) -> None:
    server = ServiceProcess.launch(trained_model_root)
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < deadline:
                assert server.process.poll() is None, server.log_tail()
                try:
                    if client.get(f"{server.url}/livez").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert client.get(f"{server.url}/readyz").status_code == 503
            early = client.post(f"{server.url}/predict", json={"images": [[0] * 784]})
            assert early.status_code == 200, early.text
            assert client.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()


NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} |WARNING: All log messages before absl|To enable the)")


def test_start_is_quiet_and_says_when_every_worker_serves(service: ServiceProcess) -> None:
    """The session's server (two workers) logs no TensorFlow C++ lines and one ready line."""
    deadline = time.monotonic() + 30
    while "mnist-serve: ready" not in (log := service.log_path.read_text(errors="replace")):
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    lines = log.splitlines()
    assert not [line for line in lines if NATIVE_LOG.match(line)], log
    workers = [line for line in lines if re.match(r"mnist-serve: worker \d+ serving", line)]
    assert len(workers) == 2, log
    assert all(line.endswith(f"model version 1 on {service.url}") for line in workers), workers
    ready = [line for line in lines if line.startswith("mnist-serve: ready")]
    assert ready == [f"mnist-serve: ready: 2 worker(s) serving on {service.url}"]
    # The harness asked /readyz while the workers loaded: those 503s are answers, not errors.
    assert not [line for line in lines if "/readyz -> 503" in line], log


def test_a_port_in_use_fails_with_one_line_and_a_failing_status(
    trained_model_root: Path,
) -> None:
    """BentoML's process manager dies in its own thread; mnist-serve says why and exits 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "--model-dir", str(trained_model_root)],
            cwd=REPO,
            env={**os.environ, "BENTOML_DO_NOT_TRACK": "true", "MNIST_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"mnist-serve: 127.0.0.1:{port} is in use" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_a_taken_process_manager_port_is_tried_again() -> None:
    """The start-up race BentoML leaves open (its ZeroMQ ports are chosen free, released,
    then bound) is recognised from the real error; other failures are not retried."""
    import zmq

    from service.cli import is_port_race

    context = zmq.Context()
    first, second = context.socket(zmq.REP), context.socket(zmq.REP)
    try:
        port = first.bind_to_random_port("tcp://127.0.0.1")
        with pytest.raises(zmq.ZMQError) as raised:
            second.bind(f"tcp://127.0.0.1:{port}")
        assert is_port_race(raised.value)
        assert not is_port_race(OSError(98, "Address already in use"))
        assert not is_port_race(None)
    finally:
        first.close(linger=0)
        second.close(linger=0)
        context.term()
