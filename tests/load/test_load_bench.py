"""The benchmark's parts against real servers: load generator, constant server, report.

Windows are a fraction of a second: these tests show the harness measures what it says,
not how fast anything is (that is ``make bench``'s table).
"""

from __future__ import annotations

import asyncio
import os
import urllib.request

import orjson
import pytest
from shedding import shedding_server

from harness.launch import free_port, start, stop
from harness.procfs import process_tree
from load.bench import constant_command
from load.checks import check_predictions
from load.loadgen import LoadResult, measure
from load.report import Plan, render_markdown, runtime_rounds, targets


def _measure(url: str, kind: str, concurrency: int, server_pid: int | None) -> LoadResult:
    return asyncio.run(
        measure(url, kind, concurrency, seconds=0.5, warmup=0.1, images=200, server_pid=server_pid)
    )


@pytest.mark.parametrize(("kind", "concurrency", "images"), [("single", 4, 1), ("npy", 2, 200)])
def test_loadgen_measures_a_real_service(
    service: object, service_url: str, kind: str, concurrency: int, images: int
) -> None:
    pid = service.pid  # type: ignore[attr-defined]
    result = _measure(service_url, kind, concurrency, pid)
    assert result.errors == 0, result.first_error
    assert result.requests > 0
    assert result.images_per_request == images
    assert result.images_per_s == pytest.approx(result.rps * images)
    assert 0 < result.p50_ms <= result.p99_ms
    assert 0 < result.generator_cpu < 1.5
    assert result.server_cpu is not None and result.server_cpu > 0
    assert sum(result.server_cpu_by_process) == pytest.approx(result.server_cpu, abs=0.01)
    assert len(result.server_cpu_by_process) == len(process_tree(pid))


def test_loadgen_counts_errors_with_the_first_reason(service_url: str) -> None:
    result = _measure(service_url + "/nowhere", "single", 2, None)
    assert result.requests == 0
    assert result.errors > 0
    assert result.first_error is not None and result.first_error.startswith("HTTP 404")


@pytest.mark.parametrize("obey", [True, False])
def test_loadgen_counts_429s_with_retry_after_as_shed_when_told(obey: bool) -> None:
    # The stand-in sheds every 4th request (Retry-After: 1) and fails every 10th with a 503.
    with shedding_server() as url:
        result = asyncio.run(
            measure(url, "single", 4, seconds=1.5, warmup=0.1, images=1, obey_retry_after=obey)
        )
    assert result.requests > 0
    answers = result.requests + result.errors
    if obey:
        # Each client waits 1 s after a 429: about one per client in the window, and none of
        # them an error; only the 503s are.
        assert 1 <= result.shed <= 2 * 4, result
        assert result.first_error is None or result.first_error.startswith("HTTP 503"), result
    else:
        # A quarter of the answers are 429s and a tenth 503s, all of them errors here.
        assert result.shed == 0
        assert result.errors > 0.2 * answers, result


def test_constant_server_answers_within_the_contract() -> None:
    port = free_port()
    server = start(constant_command(port, workers=1), port=port, ready_timeout=90)
    try:
        request = urllib.request.Request(
            server.url + "/predict",
            data=orjson.dumps({"images": [[0] * 784]}),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            verdict = check_predictions(
                response.status,
                response.read(),
                [7],
                model_version_header=response.headers["X-Model-Version"],
            )
        assert verdict.correct == 1
        assert server.ready_seconds is not None and server.ready_seconds > 0
        assert server.serving_seconds is not None
        assert server.serving_seconds >= server.ready_seconds
    finally:
        stop(server)
    assert server.process.returncode is not None
    assert server.pid not in process_tree(os.getpid())


PLAN = Plan(
    rounds=2,
    seconds=1.0,
    warmup=0.1,
    model_seconds=0.1,
    concurrency=(1, 32),
    batch_images=1000,
    batch_concurrency=4,
    workers=2,
)


def _window(rps: float, p99: float = 10.0, images: int = 1) -> dict[str, float | int | None]:
    return {
        "rps": rps,
        "images_per_s": rps * images,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "generator_cpu": 0.2,
        "server_cpu": 1.5,
        "server_cpu_by_process": [0.8, 0.7, 0.0],
        "other_cpu": 0.1,
        "errors": 0,
        "requests": int(rps),
    }


def _round(single_32: float, npy: float) -> dict[str, object]:
    memory = {
        "processes": 3,
        "total_mb": 1100.0,
        "per_worker_mb": 550.0,
        "largest_process_mb": 500.0,
        "median_worker_mb": 500.0,
    }
    return {
        "model": {"1": 2000.0, "32": 50_000.0, "1024": 170_000.0},
        "model_rss_mb": 480.0,
        "constant": {"1": _window(1000.0), "32": _window(2000.0)},
        "single": {
            "1": _window(500.0, p99=2.5),
            "32": {**_window(single_32, p99=25.0), "batch_histogram": {"1": 10, "2": 30}},
        },
        "json": _window(60.0, p99=300.0, images=1000),
        "npy": _window(npy, p99=100.0, images=1000),
        "cold_start_s": 2.0,
        "serving_s": 2.3,
        "stock": {
            "serving_s": 4.6,
            "single": {"1": _window(100.0), "32": _window(700.0, p99=300.0)},
            "json": _window(7.0, p99=900.0, images=1000),
            "npy": _window(30.0, p99=200.0, images=1000),
            "memory_loaded": {**memory, "median_worker_mb": 650.0},
        },
        "memory_warm": memory,
        "memory_loaded": memory,
    }


def test_targets_judge_medians_of_per_round_ratios() -> None:
    # single-image ratios 0.65 and 0.55 (median 0.6: pass); .npy ratios 0.66 and 0.74 (0.7).
    rounds = [_round(1300.0, 112.0), _round(1100.0, 126.0)]
    verdicts = {t["key"]: t for t in targets(rounds, PLAN)}
    single = verdicts["single_ratio"]
    assert single["measured"] == pytest.approx(0.6)
    assert single["passed"]
    npy = verdicts["npy"]
    assert npy["measured"] == pytest.approx(0.7)
    assert npy["passed"]
    json_row = verdicts["json"]
    assert json_row["measured"] == pytest.approx(60_000 / 170_000)
    assert json_row["passed"]

    slow = [_round(900.0, 40.0), _round(900.0, 40.0)]
    failed = {t["key"] for t in targets(slow, PLAN) if not t["passed"]}
    assert failed == {"single_ratio", "npy"}


def test_markdown_table_shows_every_figure_and_verdict() -> None:
    rounds = [_round(1300.0, 120.0), _round(900.0, 40.0)]
    result = {
        "started": "2026-01-01 10:00:00",
        "machine": {"cpus": 2},
        "targets": targets(rounds, PLAN),
    }
    text = render_markdown(result, rounds, PLAN)
    for heading in ("Reference", "Constant-answer", "single-image", "1000-image", "memory"):
        assert heading in text
    assert "| 1024 | 170,000 |" in text
    assert "| 32 | 2,000 |" in text  # the constant server at 32 clients
    assert "| cold start, process start to the first /readyz 200 | 2.00 s |" in text
    assert "(every worker serving) | 2.30 s |" in text
    assert "| single image, 32 clients, req/s | 700 | 1,100 | 1.57 x |" in text
    assert "| cold start, every worker serving | 4.60 s | 2.30 s | 0.50 x |" in text
    assert "| 2 | 30 | 75.0% |" in text  # images per model call at 32 clients
    assert "and ran it | 480 MB |" in text
    assert "FAIL" in text and "pass" in text
    assert "| 1.50 (0.80) |" in text


def test_each_other_runtime_gets_its_own_tables_and_verdicts() -> None:
    """A runtime beside the first is judged against its own in-process model and bare
    process, with the constant server of the same round."""
    rounds = [_round(1300.0, 120.0), _round(900.0, 40.0)]
    for r in rounds:
        view = _round(1500.0, 150.0)
        r["runtimes"] = {
            "dense": {
                "runtime": "dense",
                **{k: view[k] for k in ("single", "json", "npy", "memory_warm", "memory_loaded")},
                "model": {"1": 20_000.0, "32": 100_000.0, "1024": 200_000.0},
                "model_rss_mb": 100.0,
                "cold_start_s": 1.0,
                "serving_s": 1.2,
            }
        }
    dense_rounds = runtime_rounds(rounds, "dense")
    verdicts = {t["key"]: t for t in targets(dense_rounds, PLAN)}
    assert verdicts["single_ratio"]["measured"] == pytest.approx(0.75)
    assert verdicts["npy"]["measured"] == pytest.approx(150_000 / 200_000)
    assert verdicts["memory"]["measured"] == pytest.approx(5.0)
    assert verdicts["cold_start"]["passed"]
    result = {"started": "2026-01-01 10:00:00", "machine": {"cpus": 2}}
    text = render_markdown({**result, "targets": targets(rounds, PLAN)}, rounds, PLAN)
    assert "## Service on the dense runtime: single-image requests" in text
    assert "## Targets, dense runtime" in text
    assert "| 1024 | 200,000 |" in text  # the dense runtime's own in-process reference
    assert "(every worker serving) | 1.20 s |" in text


def test_memory_is_judged_once_idle_after_the_load_and_both_figures_are_shown() -> None:
    """Right after the load a worker still holds the last batch's freed heap; the target
    is judged on the RSS it settles to once idle, and the report shows both."""
    rounds = [_round(1300.0, 120.0), _round(1100.0, 126.0)]
    for r in rounds:
        r["memory_loaded"] = {**r["memory_loaded"], "median_worker_mb": 552.0}  # 1.15 x 480
        r["memory_idle"] = {**r["memory_loaded"], "median_worker_mb": 504.0}  # 1.05 x 480
        r["stock"]["memory_idle"] = r["stock"]["memory_loaded"]
    memory = {t["key"]: t for t in targets(rounds, PLAN)}["memory"]
    assert memory["measured"] == pytest.approx(504.0 / 480.0)
    assert memory["passed"]
    text = render_markdown({"started": "x", "machine": {"cpus": 2}, "targets": []}, rounds, PLAN)
    assert "| RSS per worker right after load | 650 MB | 552 MB |" in text
    assert "| RSS per worker after load, idle 3 s | 650 MB | 504 MB |" in text

    for r in rounds:
        del r["memory_idle"]  # rounds from before the idle figure: judged right after load
    memory = {t["key"]: t for t in targets(rounds, PLAN)}["memory"]
    assert memory["measured"] == pytest.approx(552.0 / 480.0)
    assert not memory["passed"]
