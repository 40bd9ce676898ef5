"""``make load`` end to end: Locust against a real server, judged from its own reports.

Each run is a few seconds of load; the first starts its own service exactly as
``make load`` does, the second points Locust at a path the service does not serve.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load.run import main

SHORT = ["--users", "6", "--spawn-rate", "6", "--duration", "4s"]
KINDS = {"/predict [1 image]", "/predict [batch JSON]", "/predict_npy [batch]"}


def _summary(reports: Path, name: str = "load") -> dict[str, object]:
    data: dict[str, object] = json.loads((reports / f"{name}-summary.json").read_text())
    return data


def test_make_load_against_a_fresh_service_passes_and_writes_reports(
    tmp_path: Path, trained_model_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One user of each kind at least: 6 users over weights 2:2:2.
    mix = ["--", "--interactive-weight", "2", "--batch-weight", "2", "--upload-weight", "2"]
    code = main(["--model-dir", str(trained_model_root), "--reports", str(tmp_path), *SHORT, *mix])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "service ready at http://127.0.0.1:" in out
    assert "every worker serving after" in out
    assert (tmp_path / "load.html").stat().st_size > 10_000
    summary = _summary(tmp_path)
    assert summary["passed"] is True
    rows = {row["name"]: row for row in summary["requests"]}  # type: ignore[attr-defined]
    assert KINDS | {"/predict_image [PNG]", "Aggregated"} <= set(rows)
    assert all(row["requests"] > 0 and row["failures"] == 0 for row in rows.values())
    # The CSV report agrees with the summary, to the last request.
    csv_text = (tmp_path / "load_stats.csv").read_text()
    assert f",Aggregated,{rows['Aggregated']['requests']},0," in csv_text
    accuracy = summary["accuracy"]
    assert accuracy["images"] > 1_000  # type: ignore[index]
    assert accuracy["accuracy"] > 0.95  # type: ignore[index]


def test_load_against_a_wrong_path_exits_non_zero_with_the_reason(
    tmp_path: Path, service_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{service_url}/no-such-prefix"
    code = main(["--url", url, "--reports", str(tmp_path), *SHORT[:4], "--duration", "2s"])
    captured = capsys.readouterr()
    assert code == 1
    assert "requests failed" in captured.err
    summary = _summary(tmp_path)
    assert summary["passed"] is False
    reasons = " ".join(f["Error"] for f in summary["failures"])  # type: ignore[attr-defined]
    assert "HTTP 404" in reasons
    assert (tmp_path / "load_stats.csv").exists()
    assert (tmp_path / "load.html").exists()


def test_load_exits_non_zero_when_p99_exceeds_the_limit(
    tmp_path: Path, service_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A limit no real request can meet: the run has no failures but still fails.
    limit = ["--max-p99-ms", "0.001"]
    singles_only = ["--", "--batch-weight", "0", "--upload-weight", "0"]
    short = ["--users", "2", "--spawn-rate", "2", "--duration", "2s"]
    code = main(["--url", service_url, "--reports", str(tmp_path), *limit, *short, *singles_only])
    assert code == 1
    assert "p99" in capsys.readouterr().err
    summary = _summary(tmp_path)
    assert summary["requests"][-1]["failures"] == 0  # type: ignore[index]
