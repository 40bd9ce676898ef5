"""The Prometheus config and the Grafana files, checked by promtool and by their structure."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_files import REPO
from promql import dashboard_queries, load_dashboard, metric_names, with_interval

PROMETHEUS_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
PROVISIONING = REPO / "deploy/grafana/provisioning"


def test_promtool_accepts_the_compose_config(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: the same file with a bad scrape interval does not pass."""
    broken = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    broken["global"]["scrape_interval"] = "soon"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


def test_api_replicas_are_discovered_by_name() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "mnist-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": 3000, "refresh_interval": "10s"}
    ]


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule."""
    queries = dashboard_queries(load_dashboard())
    rules = [
        {"record": f"dashboard:query_{i}", "expr": with_interval(expr, "1m")}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboard_is_provisioned_against_the_provisioned_data_source() -> None:
    dashboard = load_dashboard()
    sources = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)) and ref_ids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
    assert dashboard["uid"] and dashboard["title"]


def test_dashboard_covers_every_signal_users_watch() -> None:
    """Each signal of the issue is graphed from the series that measures it."""
    used: dict[str, set[str]] = {}
    for title, expr in dashboard_queries(load_dashboard()):
        for name in metric_names(expr):
            used.setdefault(name, set()).add(title)
    expected = {
        "bentoml_service_request_total",  # request rate, error rate by status
        "bentoml_service_request_duration_seconds_bucket",  # p50/p95/p99 latency
        "mnist_batch_images_bucket",  # images per model call
        "mnist_predictions_total",  # predictions per label
        "mnist_prediction_confidence_bucket",  # confidence
        "bentoml_service_request_in_progress",  # in-flight requests
        "mnist_model_info",  # model version
    }
    assert expected <= set(used), expected - set(used)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (label) (rate(mnist_predictions_total{job="a", x=~"b{1}"}[$__rate_interval]))',
         {"mnist_predictions_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("(sum(rate(a[1m])) or vector(0)) / sum(rate(b_total[1m]))", {"a", "b_total"}),
        ("max by (version) (info) * on (instance) group_left (v) up", {"info", "up"}),
        ('count(up{job="mnist-api"} == 1) offset 5m', {"up"}),
    ],
)  # fmt: skip
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def _yaml_files(folder: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))]


def test_provisioning_files_are_grafana_v1() -> None:
    for document in _yaml_files(PROVISIONING / "datasources") + _yaml_files(
        PROVISIONING / "dashboards"
    ):
        assert document["apiVersion"] == 1
