"""Faults a deployment meets: SIGTERM with work in flight, overload, slow clients, a killed
worker, and tracing a request by its id. Each test starts its own real server."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from server import ServiceProcess
from traffic import closed_loop, steady_traffic, wait_until

from harness.procfs import tree_rss


def npy(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, images)
    return buffer.getvalue()


def post_npy(url: str, body: bytes, results: list[httpx.Response | Exception]) -> None:
    try:
        results.append(
            httpx.post(
                f"{url}/predict_npy",
                content=body,
                headers={"content-type": "application/octet-stream"},
                timeout=120,
            )
        )
    except httpx.HTTPError as exc:
        results.append(exc)


def workers_of(server: ServiceProcess) -> list[int]:
    """The worker processes: the ones answering /models (BentoML keeps a few helpers too)."""
    found: set[int] = set()
    for _ in range(60):
        found.add(httpx.get(f"{server.url}/models", timeout=10).json()["worker"]["pid"])
        if len(found) == 2:
            break
    return sorted(found)


def test_sigterm_lets_work_in_flight_finish_and_drops_readiness_at_once(
    trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images = mnist_test_set[0][:5000]
    body = npy(images)
    # A drain delay long enough that the probes below fit in it on a busy machine.
    env = {"MNIST_DRAIN_DELAY_S": "3", "MNIST_GRACE_S": "30"}
    server = ServiceProcess.start(trained_model_root, env, workers=2)
    try:
        reference: list[httpx.Response | Exception] = []
        post_npy(server.url, body, reference)  # the labels every answer must have
        assert isinstance(reference[0], httpx.Response), reference
        labels = [p["label"] for p in reference[0].json()["predictions"]]
        results: list[httpx.Response | Exception] = []
        senders = [
            threading.Thread(target=post_npy, args=(server.url, body, results)) for _ in range(6)
        ]
        for sender in senders:
            sender.start()
        time.sleep(0.05)
        signalled = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        # Probes sent one after another: when each was sent, and what it got. The busy
        # event loop may answer late; what matters is the state each probe found.
        probes: list[tuple[float, int]] = []
        while not probes or probes[-1][1] != 503 or probes[-1][0] < 0.1:
            sent = time.monotonic() - signalled
            probes.append((sent, httpx.get(f"{server.url}/readyz", timeout=5).status_code))
        readiness_dropped = next(sent for sent, status in probes if status == 503)
        # Within the drain delay the server still serves.
        during_sent = time.monotonic() - signalled
        during = httpx.post(
            f"{server.url}/predict", json={"images": [images[0].tolist()]}, timeout=30
        )
        for sender in senders:
            sender.join(60)
        time.sleep(max(0.0, 3.1 - (time.monotonic() - signalled)))
        try:
            after = httpx.post(
                f"{server.url}/predict", json={"images": [images[0].tolist()]}, timeout=10
            )
            refused = after.status_code == 503 and after.json()["reason"] == "shutting_down"
        except httpx.TransportError:
            refused = True  # the listener is closed: refused too
        status = server.process.wait(timeout=40)
        exited = time.monotonic() - signalled
        log = server.log_path.read_text()
    finally:
        server.stop()
    assert readiness_dropped < 0.1, probes
    assert all(status == 503 for sent, status in probes if sent >= 0.1), probes
    assert during_sent < 3, "the probes outlasted the drain delay"
    assert during.status_code == 200
    assert refused
    assert status == 0, log[-3000:]
    assert exited < 3 + 30
    assert len(results) == 6
    for result in results:
        assert isinstance(result, httpx.Response) and result.status_code == 200, result
        assert [p["label"] for p in result.json()["predictions"]] == labels
    assert "every request in flight finished; stopping" in log
    print(f"\nreadiness 503 after {readiness_dropped * 1000:.0f} ms; exit 0 after {exited:.1f} s")


def test_past_the_grace_time_it_exits_anyway_saying_how_many_it_cut(
    trained_model_root: Path,
) -> None:
    env = {"MNIST_GRACE_S": "1", "MNIST_MODEL_CALL_DELAY_MS": "4000", "MNIST_WORKERS": "1"}
    server = ServiceProcess.start(trained_model_root, env, workers=1)
    try:
        results: list[httpx.Response | Exception] = []
        senders = [
            threading.Thread(
                target=post_npy, args=(server.url, npy(np.zeros((3, 28, 28), np.uint8)), results)
            )
            for _ in range(2)
        ]
        for sender in senders:
            sender.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        status = server.process.wait(timeout=30)
        exited = time.monotonic() - signalled
        for sender in senders:
            sender.join(30)
        log = server.log_path.read_text()
    finally:
        server.stop()
    assert status == 1
    assert 1.0 <= exited < 4.0, exited
    assert "grace time of 1 s is over with 2 request(s) still in flight" in log, log[-2000:]


def test_overload_is_shed_with_429_and_keeps_the_latency_of_what_is_served(
    trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images = mnist_test_set[0]
    with ServiceProcess.start(trained_model_root, workers=2) as server:
        closed_loop(server.url, images, 32, 2.0)  # the server's own warm-up
        # Rounds of both, alternating, judged by the median p99s: one 10 s window's p99
        # moves by a quarter on a machine the load generator shares with the server.
        # Each run keeps what was sent after its first 2 s, once every client connected.
        rss_before = sum(tree_rss(server.pid).values())
        rounds = [
            (
                closed_loop(server.url, images, 64, 6.0, warmup=2.0),
                closed_loop(server.url, images, 256, 8.0, warmup=2.0),
            )
            for _ in range(3)
        ]
        rss_after = sum(tree_rss(server.pid).values())
        served = httpx.post(f"{server.url}/predict", json={"images": [[0] * 784]}, timeout=30)
    for saturated, overloaded in rounds:
        assert set(saturated.statuses) <= {200, 429}
        assert set(overloaded.statuses) <= {200, 429}, set(overloaded.statuses)
        assert overloaded.statuses.count(429) > 0
        assert all(
            r is not None
            for s, r in zip(overloaded.statuses, overloaded.retry_after, strict=True)
            if s == 429
        )
    saturated_p99 = statistics.median(s.p99_ms() for s, _ in rounds)
    overloaded_p99 = statistics.median(o.p99_ms() for _, o in rounds)
    print(
        f"\n64 clients: {statistics.median(s.rate() for s, _ in rounds):.0f} req/s, "
        f"p99 {saturated_p99:.1f} ms; 256 clients: "
        f"{statistics.median(o.rate() for _, o in rounds):.0f} req/s served, "
        f"p99 {overloaded_p99:.1f} ms, "
        f"{statistics.median(o.rate(429) for _, o in rounds):.0f} 429/s (medians of 3 rounds); "
        f"RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB"
    )
    # The target, 2x, is measured by ``make bench-overload`` (its generator in a process of
    # its own, medians of rounds). Here the generator shares this process and the two cores
    # with the server, and single rounds have measured up to 2.6x on a busy machine, so the
    # test holds the bound that shows shedding keeps latency bounded at all.
    assert overloaded_p99 <= 3 * saturated_p99
    assert rss_after < 1.2 * rss_before
    assert served.status_code == 200


def test_a_slow_body_gets_408_and_others_are_served_meanwhile(trained_model_root: Path) -> None:
    env = {"MNIST_BODY_TIMEOUT_S": "2"}
    with ServiceProcess.start(trained_model_root, env, workers=1) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4000\r\n\r\n"
            )
            started = time.monotonic()
            answered_meanwhile = 0
            reply = b""
            slow.settimeout(0.05)
            while time.monotonic() - started < 8 and b"\r\n\r\n" not in reply:
                try:
                    slow.sendall(b"[")
                    reply += slow.recv(4096)
                except TimeoutError:
                    pass
                except OSError:
                    break
                if answered_meanwhile < 5:
                    other = httpx.post(
                        f"{server.url}/predict", json={"images": [[0] * 784]}, timeout=5
                    )
                    answered_meanwhile += other.status_code == 200
                time.sleep(0.3)
            took = time.monotonic() - started
            # The head and the body may arrive in separate segments: read the whole body.
            head, _, payload = reply.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            slow.settimeout(2)
            while length is not None and len(payload) < int(length.group(1)):
                more = slow.recv(4096)
                if not more:
                    break
                payload += more
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert json.loads(payload)["reason"] == "body_timeout"
    assert 2.0 <= took < 4.0, took
    assert answered_meanwhile == 5


def test_a_killed_worker_is_replaced_and_only_its_requests_may_fail(
    trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images = mnist_test_set[0][:500]
    with ServiceProcess.start(trained_model_root, workers=2) as server:
        victim, survivor = workers_of(server)
        with steady_traffic(server.url, images, clients=16) as traffic:
            wait_until(lambda: all(c.answers for c in traffic.clients), 60)
            on_victim = sum(c.worker_pid == victim for c in traffic.clients)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            replacement: dict[str, object] = {}

            def replacement_serves() -> bool:
                # A fresh connection each time: either worker may take it.
                status = httpx.get(f"{server.url}/models", timeout=10).json()
                pid = status["worker"]["pid"]
                if pid not in (victim, survivor) and status["served_versions"]:
                    replacement.update(status)
                return bool(replacement)

            wait_until(replacement_serves, 60, step=0.1)
            back = time.monotonic() - killed
            load_seconds = max(
                v["load_seconds"] or 0
                for v in replacement["versions"]  # type: ignore[attr-defined]
            )
            time.sleep(1.0)
            recovered = time.monotonic() - killed
        log = server.log_path.read_text()
    failed = len(traffic.failures)
    print(
        f"\nSIGKILL of worker {victim} ({on_victim} of 16 clients on it): {failed} failed of "
        f"{len(traffic.answers)}; the replacement serving {back:.1f} s "
        f"after the kill (its model load {load_seconds:.2f} s of that)"
    )
    assert failed <= on_victim, [a.error for a in traffic.failures][:5]
    # The target is the model's load time + 5 s (a worker's start: imports, BentoML);
    # 10 s more of slack for a busy machine.
    assert back <= load_seconds + 5.0 + 10.0
    assert "mnist-serve: ready" in log
    assert recovered < 60


def test_every_answer_carries_a_request_id_and_errors_are_logged_with_it(
    trained_model_root: Path,
) -> None:
    with ServiceProcess.start(trained_model_root, {"MNIST_LOG_FORMAT": "json"}) as server:
        mine = httpx.post(
            f"{server.url}/predict",
            json={"images": [[999] * 784]},
            headers={"X-Request-ID": "trace-42"},
            timeout=30,
        )
        generated = httpx.get(f"{server.url}/metadata", timeout=30)
        hostile = httpx.get(
            f"{server.url}/metadata", headers={"X-Request-ID": "x" * 500}, timeout=30
        )
        time.sleep(0.5)
        lines = server.log_path.read_text().splitlines()
    assert mine.headers["x-request-id"] == "trace-42"
    assert len(generated.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 500
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    (entry,) = [e for e in logged if e.get("request_id") == "trace-42"]
    assert entry["status"] == 400 and entry["reason"] == "out_of_range"
    assert entry["path"] == "/predict" and entry["level"] == "warning"
    assert entry["duration_ms"] > 0
