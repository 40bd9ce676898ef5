"""The image built and run for real with podman: train into a volume, serve from it on a
read-only root, pick up a new version, stop with work in flight, and what the image holds.

Offline, as on this machine: the base is the Debian bookworm stand-in and the wheels come
from ./wheelhouse (``make image OFFLINE=1``); the Dockerfile is the repository's. The tests
run in order and share one trained volume and one api container. About 5 minutes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import yaml
from engine import REPO, Podman, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.containers

# Grace and model-call delay of the api container: each model call takes at least the
# delay, so requests are surely in flight when it is stopped; the grace is what they get.
GRACE_S = 20
CALL_DELAY_MS = 1500
# What the api container may write on its read-only root: only /tmp (the run directory
# mnist-serve shares with its workers, BentoML's metrics and job store, uploads).
TMPFS = "/tmp:rw,mode=1777,size=256m"
REPORT = REPO / "reports" / "containers.md"


def compose_service(name: str) -> dict[str, Any]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service: dict[str, Any] = compose["services"][name]
    return service


def trainer_script() -> str:
    """The trainer's shell script as docker-compose.yml has it (``$$`` is compose's ``$``)."""
    shell, flag, script = compose_service("trainer")["command"]
    assert (shell, flag) == ("sh", "-c")
    return str(script).replace("$$", "$")


def versions_in(podman: Podman, image: str, volume: str) -> list[str]:
    listing = podman.run_ok(
        "run", "--rm", "-v", f"{volume}:/models:ro", image, "ls", "/models/mnist"
    )
    return sorted(listing.split())


def run_trainer(podman: Podman, image: str, volume: str, data_dir: Path) -> str:
    environment = compose_service("trainer")["environment"]
    env_args = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
    return podman.run_ok(
        "run",
        "--rm",
        *env_args,
        "-v",
        f"{volume}:/models",
        "-v",
        f"{data_dir}:/data:ro",
        image,
        "sh",
        "-c",
        trainer_script(),
        timeout=900,
    )


def test_image_builds_offline_from_the_dockerfile(podman: Podman, build_log: str) -> None:
    from conftest import BASE_IMAGE, IMAGE

    assert f"--build-arg PYTHON_IMAGE={BASE_IMAGE}" in build_log
    assert "--build-arg PIP_NO_INDEX=1" in build_log
    inspected = podman.inspect("image", IMAGE)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["mnist-serve"]
    assert "3000/tcp" in config["ExposedPorts"]
    # Kept only in the docker format (make image passes --format docker to podman).
    assert "/readyz" in " ".join(inspected["Healthcheck"]["Test"])
    print(f"\n{build_log.strip().splitlines()[-1]}")


def test_trainer_trains_once_into_the_volume(
    podman: Podman, image: str, models_volume: str, mnist_data_dir: Path
) -> None:
    data_dir = mnist_data_dir.resolve()
    started = time.monotonic()
    first = run_trainer(podman, image, models_volume, data_dir)
    trained_s = time.monotonic() - started
    assert versions_in(podman, image, models_volume) == ["1"], first[-2000:]
    second = run_trainer(podman, image, models_volume, data_dir)
    assert "already holds a model; not training" in second
    assert versions_in(podman, image, models_volume) == ["1"]
    print(f"\ntrainer container: version 1 in {trained_s:.0f} s; second run: {second.strip()}")


@dataclass(frozen=True)
class Api:
    name: str
    url: str


@pytest.fixture(scope="module")
def api(podman: Podman, image: str, models_volume: str) -> Iterator[Api]:
    """The api container as compose runs it, on a read-only root with /tmp as tmpfs."""
    name = f"mnist-test-api-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman.run_ok(
        "run",
        "--detach",
        "--name",
        name,
        # podman adds tmpfs on /tmp, /var/tmp and /run to --read-only by default; Docker does
        # not, so name the one place the service writes, as a Docker user must.
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        TMPFS,
        "-v",
        f"{models_volume}:/models:ro",
        "-p",
        f"127.0.0.1:{port}:3000",
        "-e",
        "MNIST_WORKERS=1",
        "-e",
        "MNIST_MODEL_POLL_S=1",
        "-e",
        f"MNIST_GRACE_S={GRACE_S}",
        "-e",
        f"MNIST_MODEL_CALL_DELAY_MS={CALL_DELAY_MS}",
        image,
    )
    try:
        yield Api(name, f"http://127.0.0.1:{port}")
    finally:
        podman.remove(name)


def test_api_healthcheck_turns_healthy_as_uid_10001_on_a_read_only_root(
    podman: Podman, api: Api
) -> None:
    started = time.monotonic()

    def healthy() -> bool:
        return podman.run("healthcheck", "run", api.name, timeout=30).returncode == 0

    if not wait_for(healthy, timeout=180, interval=2):
        logs = podman.run("logs", api.name)
        pytest.fail(f"never healthy:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
    healthy_s = time.monotonic() - started
    state = podman.inspect("container", api.name)
    assert state["State"]["Health"]["Status"] == "healthy"
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    # Every process of the container (mnist-serve, its workers), seen from the host, runs
    # as 10001 (the image has no ps(1) for `podman top`).
    main = psutil.Process(state["State"]["Pid"])
    users = [process.uids().real for process in [main, *main.children(recursive=True)]]
    assert len(users) >= 2 and set(users) == {10001}, users
    refused = podman.run("exec", api.name, "touch", "/home/mnist/x")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    print(f"\nhealthy {healthy_s:.0f} s after start; processes as uid 10001: {len(users)}")


def test_predict_from_the_host_labels_real_test_images(
    api: Api, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test_set[0][:500], mnist_test_set[1][:500]
    answer = httpx.post(f"{api.url}/predict", json={"images": images.tolist()}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == "1"
    predicted = np.array([p["label"] for p in answer.json()["predictions"]])
    accuracy = float((predicted == labels).mean())
    assert accuracy > 0.95, accuracy
    print(f"\n/predict from the host: {accuracy:.1%} of 500 test images right")


def test_a_version_published_into_the_volume_is_picked_up(
    podman: Podman, image: str, models_volume: str, api: Api
) -> None:
    # Published as an exporter does: copied under a hidden name, then renamed into place.
    podman.run_ok(
        "run",
        "--rm",
        "-v",
        f"{models_volume}:/models",
        image,
        "sh",
        "-c",
        "cp -a /models/mnist/1 /models/mnist/.2.tmp && mv /models/mnist/.2.tmp /models/mnist/2",
    )
    published = time.monotonic()

    def served() -> list[int]:
        found: list[int] = httpx.get(f"{api.url}/models", timeout=10).json()["served_versions"]
        return found

    assert wait_for(lambda: served() == [2], timeout=60), served()
    picked_up_s = time.monotonic() - published
    answer = httpx.post(
        f"{api.url}/predict", json={"images": [np.zeros((28, 28), int).tolist()]}, timeout=30
    )
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "2"
    print(f"\nversion 2 served {picked_up_s:.1f} s after it was published")


def predicts_in_progress(api: Api) -> float:
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bentoml_service_request_in_progress"
        and sample.labels.get("endpoint") == "/predict"
    )


def test_podman_stop_lets_requests_in_flight_finish_and_exits_0(
    podman: Podman, api: Api, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    body = {"images": mnist_test_set[0][:50].tolist()}
    results: list[httpx.Response | Exception] = []

    def send() -> None:
        try:
            results.append(httpx.post(f"{api.url}/predict", json=body, timeout=60))
        except httpx.HTTPError as exc:
            results.append(exc)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    # Each model call takes CALL_DELAY_MS: stop once the service counts all four in flight.
    assert wait_for(lambda: predicts_in_progress(api) == 4, timeout=30, interval=0.1)
    stopping = time.monotonic()
    stop = podman.run("stop", "--time", str(GRACE_S + 10), api.name, timeout=GRACE_S + 60)
    stopped_s = time.monotonic() - stopping
    for sender in senders:
        sender.join(60)
    assert stop.returncode == 0, stop.stderr
    state = podman.inspect("container", api.name)["State"]
    logs = podman.run("logs", api.name)
    assert state["ExitCode"] == 0, logs.stdout[-3000:] + logs.stderr[-3000:]
    assert stopped_s < GRACE_S
    assert len(results) == 4
    for result in results:
        assert isinstance(result, httpx.Response) and result.status_code == 200, result
    assert "every request in flight finished; stopping" in logs.stdout + logs.stderr
    print(f"\npodman stop: 4 requests in flight answered 200, exit 0 after {stopped_s:.1f} s")


def test_image_size_and_what_the_serving_image_leaves_out(podman: Podman, image: str) -> None:
    size = podman.inspect("image", image)["Size"]
    history = podman.run_ok("history", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    layers = []
    for line in history.splitlines():
        layer_size, created_by = line.split("\t", 1)
        layers.append((layer_size, " ".join(created_by.split())[:110]))
    absent = podman.run_ok(
        "run",
        "--rm",
        image,
        "python",
        "-c",
        "import importlib.util as u, shutil;"
        "print([m for m in ('locust', 'matplotlib', 'pytest') if u.find_spec(m)],"
        " [t for t in ('gcc', 'cc', 'make', 'g++') if shutil.which(t)])",
    )
    assert absent.strip() == "[] []", absent
    REPORT.parent.mkdir(exist_ok=True)
    lines = [f"image {image}: {size / 1e6:.0f} MB", "", "size | layer", "---: | ---"]
    lines += [f"{layer_size} | `{created_by}`" for layer_size, created_by in layers]
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
