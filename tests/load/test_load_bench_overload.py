"""``python -m load.bench_overload`` end to end against a real service, in miniature.

One worker that admits two requests at a time, windows of a second: this shows the
benchmark loads, sheds, tabulates and judges; the figures themselves come from
``make bench-overload`` (see README, Faults, overload and shutdown).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from load.bench_overload import main


def test_the_overload_benchmark_sheds_tabulates_and_judges(
    trained_model_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MNIST_MAX_CONCURRENCY", "2")  # read by the service and by the bench
    plan = ["--workers", "1", "--rounds", "1", "--seconds", "1", "--warmup", "0.5"]
    # Judged against a bound no run meets, so the verdict's failing side is shown too.
    code = main(["--model-dir", str(trained_model_root), *plan, "--max-ratio", "0.001"])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = [line for line in out.splitlines() if re.match(r"\| 1 \| ", line)]
    assert [row.split("|")[2].strip() for row in rows] == ["saturated (2)", "4x (8)"], out
    shed_per_s = float(rows[1].split("|")[6].replace(",", ""))
    assert shed_per_s > 0
    assert "answers other than 200 or 429 with Retry-After: 0;" in out
    assert re.search(r"p99 ratio 4x / saturated: median [\d.]+ .*bound 0.001: FAIL", out), out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("FAIL: p99 ratio"), out
