"""The deployment files against the live service of the session and a real Prometheus.

Prometheus (the Debian package's server) runs on loopback with the repo's own scrape
config, the discovery swapped for the test server's address and a 1 s scrape interval.
Everything asserted about stored series goes through Prometheus' HTTP API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from deploy_files import REPO, dockerfile_instructions, healthcheck_argv
from prometheus_client.parser import text_string_to_metric_families
from promql import SCRAPE_SERIES, dashboard_queries, load_dashboard, metric_names, with_interval
from server import ServiceProcess, free_port

JOB = "mnist-api"
POLL_S = 0.25
WAIT_S = 60.0
REQUESTS = 12
IMAGES_PER_REQUEST = 5


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """``probe()``'s first truthy answer, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def _scraped_total(url: str, name: str, **labels: str) -> float:
    """Sum of the service's ``/metrics`` samples called ``name`` that carry ``labels``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _predict_requests(url: str, images: np.ndarray) -> None:
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(images), IMAGES_PER_REQUEST):
            chunk = images[start : start + IMAGES_PER_REQUEST]
            response = client.post(f"{url}/predict", json={"images": chunk.tolist()})
            assert response.status_code == 200, response.text


def _bad_request(url: str) -> None:
    """A client mistake, so the error and rejection series have something to show."""
    response = httpx.post(f"{url}/predict", json={"images": [[0] * 783]}, timeout=30)
    assert response.status_code == 400, response.text


def _every_worker_ready(url: str, in_a_row: int = 20) -> None:
    """``/readyz`` answers per worker process: ask on fresh connections until all say 200."""

    def probe() -> bool:
        return all(
            httpx.get(f"{url}/readyz", timeout=10).status_code == 200 for _ in range(in_a_row)
        )

    _wait_for(f"{in_a_row} fresh connections in a row to find /readyz ready", probe)


@pytest.fixture(scope="module")
def traffic_sent(service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Every endpoint family touched once, before anything reads the metrics."""
    _every_worker_ready(service_url)
    images = mnist_test_set[0][:IMAGES_PER_REQUEST]
    _predict_requests(service_url, images)
    _bad_request(service_url)
    return images


def test_dashboard_reads_only_series_the_service_exposes(
    service_url: str, traffic_sent: np.ndarray
) -> None:
    text = httpx.get(f"{service_url}/metrics", timeout=10).text
    exposed: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exposed[sample.name] = family.name
    missing = {}
    for title, expr in dashboard_queries(load_dashboard()):
        for name in metric_names(expr) - SCRAPE_SERIES:
            if name not in exposed:
                missing[name] = title
    assert not missing, f"not in a live /metrics scrape: {missing}"
    # Histogram series are read through their _bucket/_sum/_count samples.
    families = {exposed[name] for _, e in dashboard_queries(load_dashboard()) for name in
                metric_names(e) - SCRAPE_SERIES}  # fmt: skip
    assert {"mnist_batch_images", "bentoml_service_request_duration_seconds"} <= families


@pytest.mark.parametrize("ready", [True, False], ids=["serving", "nothing-listening"])
def test_image_healthcheck_command(service: ServiceProcess, ready: bool) -> None:
    """The Dockerfile's HEALTHCHECK (also compose's) run as is: 0 when ready, else not."""
    (arguments,) = [a for kind, a in dockerfile_instructions() if kind == "HEALTHCHECK"]
    argv = healthcheck_argv(arguments)
    assert argv[0] == "python"
    port = service.url.rsplit(":", 1)[1] if ready else str(free_port())
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env={**os.environ, "MNIST_PORT": port},
        capture_output=True,
        timeout=30,
    )
    assert (result.returncode == 0) is ready, result.stderr


class Prometheus:
    """A Prometheus server this module started; ``query`` returns the result vector."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.client.get("/api/v1/targets").json()["data"][
            "activeTargets"
        ]
        return targets


def _config_for(service_url: str) -> dict[str, Any]:
    """The repo's config, pointed at the test server and scraping every second."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [service_url.removeprefix("http://")]}]
    config["scrape_configs"] = [job]
    return config


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, service_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(_config_for(service_url)))
    address = f"127.0.0.1:{free_port()}"
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [prometheus_bin, f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={address}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Prometheus(f"http://{address}")
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{Path(log_path).read_text()[-3000:]}")
            try:
                return server.client.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for("Prometheus to be ready", ready, timeout=30)
        yield server
    finally:
        server.client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_prometheus_scrapes_the_service_and_stores_the_traffic(
    prometheus: Prometheus,
    service_url: str,
    traffic_sent: np.ndarray,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
) -> None:
    def target_up() -> list[dict[str, Any]]:
        return [
            t for t in prometheus.targets()
            if t["labels"]["job"] == JOB and t["health"] == "up"
        ]  # fmt: skip

    (target,) = _wait_for("the service target to be up", target_up)
    assert target["scrapeUrl"] == f"{service_url}/metrics"
    assert prometheus.value(f'up{{job="{JOB}"}}') == 1.0

    predictions = f'sum(mnist_predictions_total{{job="{JOB}"}})'
    latency = (
        "sum(bentoml_service_request_duration_seconds_count"
        f'{{job="{JOB}", endpoint="/predict", http_response_code="200"}})'
    )
    # Nothing else talks to the server meanwhile: what it says now is what Prometheus
    # must come to hold, before and after the traffic.
    before = {
        predictions: _scraped_total(service_url, "mnist_predictions_total"),
        latency: _scraped_total(
            service_url,
            "bentoml_service_request_duration_seconds_count",
            endpoint="/predict",
            http_response_code="200",
        ),
    }
    assert before[predictions] >= len(traffic_sent)
    for expr, expected in before.items():
        _wait_for(f"{expr} == {expected}", lambda e=expr, x=expected: prometheus.value(e) == x)

    images = mnist_test_set[0][100 : 100 + REQUESTS * IMAGES_PER_REQUEST]
    _predict_requests(service_url, images)

    after = {
        predictions: before[predictions] + len(images),
        latency: before[latency] + REQUESTS,
    }
    for expr, expected in after.items():
        _wait_for(f"{expr} == {expected}", lambda e=expr, x=expected: prometheus.value(e) == x)
    # The histogram is stored whole: its +Inf bucket agrees with its count.
    inf_bucket = latency.replace("_count{", '_bucket{le="+Inf", ')
    assert prometheus.value(inf_bucket) == after[latency]


def test_every_dashboard_query_returns_data(
    prometheus: Prometheus, service_url: str, traffic_sent: np.ndarray
) -> None:
    """Each panel's query, as Grafana sends it, over the traffic just stored."""
    _bad_request(service_url)
    _predict_requests(service_url, traffic_sent)
    queries = dashboard_queries(load_dashboard())
    empty: list[str] = []

    def none_empty() -> bool:
        empty[:] = [
            f"{title}: {expr}"
            for title, expr in queries
            if not prometheus.query(with_interval(expr, "30s"))
        ]
        return not empty

    try:
        _wait_for("every dashboard query to return data", none_empty, timeout=30)
    except AssertionError:
        raise AssertionError("queries without data:\n" + "\n".join(empty)) from None
