"""``make soak`` in its short mode against a freshly started service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load.protocol_payloads import TF_PREDICT, V2_INFER
from load.soak import growth, main


def test_a_short_soak_reports_every_window_with_memory_and_no_failure(
    trained_model_root: Path, tmp_path: Path
) -> None:
    status = main(
        [
            "--short",
            "--users",
            "8",
            "--model-dir",
            str(trained_model_root),
            "--reports",
            str(tmp_path),
        ]
    )
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert status == 0, summary["problems"]
    windows = summary["windows"]
    assert [w["window"] for w in windows] == [1, 2, 3]
    assert all(w["requests"] > 0 and w["failures"] == 0 for w in windows)
    assert all(w["p50_ms"] <= w["p99_ms"] for w in windows)
    assert all(len(w["worker_rss_mb"]) == 2 for w in windows), windows
    assert summary["failures"] == 0
    rows = (tmp_path / "soak.csv").read_text().splitlines()
    assert len(rows) == 4
    # Every protocol the service speaks was in the mix (Locust's report names each request).
    report = (tmp_path / "soak-locust.html").read_text()
    for name in ("/predict", "/predict_npy", "/predict_image", V2_INFER, TF_PREDICT):
        assert name in report, name


def test_growth_is_judged_per_worker_after_the_first_window() -> None:
    windows = [{1: 500.0, 2: 600.0}, {1: 510.0, 2: 600.0}, {1: 540.0, 2: 610.0}]
    assert growth(windows) == pytest.approx(0.08)
    assert growth([{1: 500.0}, {2: 900.0}]) is None  # the worker was replaced
    assert growth([{1: 500.0}]) is None
