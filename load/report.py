"""The benchmark's verdicts and its markdown table, computed from the per-round figures."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.launch import SERVING_PROBES

Round = dict[str, Any]

# The targets were set on a machine where the SavedModel did 169,000 images/s at batch
# 1,024; absolute throughput targets are held as that ratio, so they scale with the host.
REFERENCE_MODEL_1024 = 169_000.0
JSON_TARGET_IMAGES_S = 25_000.0


@dataclass(frozen=True)
class Plan:
    """How long and how often the benchmark measures."""

    rounds: int
    seconds: float
    warmup: float
    model_seconds: float
    concurrency: tuple[int, ...]
    batch_images: int
    batch_concurrency: int
    workers: int


def median(rounds: list[Round], pick: Callable[[Round], float]) -> float:
    return float(statistics.median(pick(r) for r in rounds))


def _top(plan: Plan) -> str:
    return str(max(plan.concurrency))


def _model_1024(r: Round) -> float:
    return float(r["model"]["1024"])


def targets(rounds: list[Round], plan: Plan) -> list[dict[str, Any]]:
    """One entry per target: what was measured, the threshold, and whether it passed."""
    top = _top(plan)
    json_ratio = JSON_TARGET_IMAGES_S / REFERENCE_MODEL_1024
    rows = [
        {
            "key": "single_ratio",
            "target": f"single image, {top} clients: >= 0.55 x constant-answer server",
            "measured": median(
                rounds, lambda r: r["single"][top]["rps"] / r["constant"][top]["rps"]
            ),
            "threshold": 0.55,
            "higher_is_better": True,
        },
        {
            "key": "single_p99",
            "target": f"single image, {top} clients: p99 <= 50 ms",
            "measured": median(rounds, lambda r: r["single"][top]["p99_ms"]),
            "threshold": 50.0,
            "higher_is_better": False,
        },
        {
            "key": "json",
            "target": f"{plan.batch_images}-image JSON: >= 25,000 images/s"
            f" (held as {json_ratio:.3f} x model at batch 1,024)",
            "measured": median(rounds, lambda r: r["json"]["images_per_s"] / _model_1024(r)),
            "threshold": json_ratio,
            "higher_is_better": True,
        },
        {
            "key": "npy",
            "target": f"{plan.batch_images}-image .npy: >= 0.5 x model at batch 1,024",
            "measured": median(rounds, lambda r: r["npy"]["images_per_s"] / _model_1024(r)),
            "threshold": 0.5,
            "higher_is_better": True,
        },
        {
            "key": "cold_start",
            "target": "cold start <= 4 s (process start until every worker serves)",
            "measured": median(rounds, lambda r: r["serving_s"]),
            "threshold": 4.0,
            "higher_is_better": False,
        },
        {
            "key": "memory",
            "target": "resident memory after load <= 600 MB per worker",
            "measured": median(rounds, lambda r: r["memory_loaded"]["per_worker_mb"]),
            "threshold": 600.0,
            "higher_is_better": False,
        },
    ]
    for row in rows:
        if row["higher_is_better"]:
            row["passed"] = row["measured"] >= row["threshold"]
        else:
            row["passed"] = row["measured"] <= row["threshold"]
    return rows


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _window_cells(rounds: list[Round], pick: Callable[[Round], dict[str, Any]]) -> list[str]:
    """p50, p99 and the three CPU figures of one kind of load window."""
    return [
        _n(median(rounds, lambda r: pick(r)["p50_ms"]), 1),
        _n(median(rounds, lambda r: pick(r)["p99_ms"]), 1),
        _n(median(rounds, lambda r: pick(r)["generator_cpu"]), 2),
        _n(median(rounds, lambda r: pick(r)["server_cpu"]), 2)
        + f" ({_n(median(rounds, lambda r: pick(r)['server_cpu_by_process'][0]), 2)})",
        _n(median(rounds, lambda r: pick(r)["other_cpu"]), 2),
    ]


WINDOW_HEADER = "p50 ms | p99 ms | gen CPU | server CPU (busiest process) | other CPU |"


def render_markdown(result: dict[str, Any], rounds: list[Round], plan: Plan) -> str:
    lines = [
        "# Benchmark",
        "",
        f"{result['started']}, revision {result.get('revision', 'unknown')},"
        f" {result['machine']['cpus']} CPUs, {plan.workers} service"
        f" workers; medians of {plan.rounds} round(s) of {plan.seconds:g} s windows;"
        " ratios are medians of per-round ratios to the reference measured in the same"
        " round. CPU columns are cores kept busy during the measured window (1.0 = one"
        " core): `gen` the load generator, `server` the server's process tree (in brackets"
        " its busiest process: near the total means one worker took all the connections),"
        " `other`"
        " everything else on the machine (noise from neighbours).",
        "",
        "## Reference: the SavedModel in process",
        "",
        "| batch | images/s |",
        "|---|---|",
    ]
    for batch in rounds[0]["model"]:
        lines.append(_row([batch, _n(median(rounds, lambda r, b=batch: r["model"][b]))]))

    lines += [
        "",
        "## Constant-answer server (BentoML, same settings): single-image requests",
        "",
        "| clients | req/s | " + WINDOW_HEADER,
        "|---|---|---|---|---|---|---|",
    ]
    for c in (str(c) for c in plan.concurrency):
        rps = _n(median(rounds, lambda r, c=c: r["constant"][c]["rps"]))
        lines.append(_row([c, rps, *_window_cells(rounds, lambda r, c=c: r["constant"][c])]))

    lines += [
        "",
        "## Service: single-image requests",
        "",
        "| clients | req/s | ratio to constant | " + WINDOW_HEADER,
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in (str(c) for c in plan.concurrency):
        rps = _n(median(rounds, lambda r, c=c: r["single"][c]["rps"]))
        ratio = _n(
            median(rounds, lambda r, c=c: r["single"][c]["rps"] / r["constant"][c]["rps"]), 2
        )
        lines.append(_row([c, rps, ratio, *_window_cells(rounds, lambda r, c=c: r["single"][c])]))

    lines += [
        "",
        f"## Service: {plan.batch_images}-image requests ({plan.batch_concurrency} clients)",
        "",
        "| body | images/s | ratio to model at batch 1,024 | " + WINDOW_HEADER,
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("json", "JSON `/predict`"), ("npy", ".npy `/predict_npy`")):
        rate = _n(median(rounds, lambda r, k=kind: r[k]["images_per_s"]))
        ratio = _n(median(rounds, lambda r, k=kind: r[k]["images_per_s"] / _model_1024(r)), 3)
        lines.append(_row([label, rate, ratio, *_window_cells(rounds, lambda r, k=kind: r[k])]))

    lines += [
        "",
        "## Service: start-up and memory",
        "",
        "| figure | value |",
        "|---|---|",
        _row(
            [
                "cold start, process start to the first /readyz 200",
                _n(median(rounds, lambda r: r["cold_start_s"]), 2) + " s",
            ]
        ),
        _row(
            [
                f"cold start, process start until {SERVING_PROBES} predictions in a row on"
                " new connections succeed (every worker serving)",
                _n(median(rounds, lambda r: r["serving_s"]), 2) + " s",
            ]
        ),
    ]
    lines.append(
        _row(
            [
                "reference: RSS of a bare process that loaded TensorFlow and the model, and ran it",
                _n(median(rounds, lambda r: r["model_rss_mb"])) + " MB",
            ]
        )
    )
    for key, label in (("memory_warm", "after warm-up"), ("memory_loaded", "after load")):
        total = median(rounds, lambda r, k=key: r[k]["total_mb"])
        per_worker = median(rounds, lambda r, k=key: r[k]["per_worker_mb"])
        largest = median(rounds, lambda r, k=key: r[k]["largest_process_mb"])
        processes = rounds[-1][key]["processes"]
        lines.append(
            _row(
                [
                    f"RSS {label}: {_n(total)} MB over {processes} processes",
                    f"{_n(per_worker)} MB per worker (largest process {_n(largest)} MB)",
                ]
            )
        )

    errors = sum(
        window["errors"]
        for r in rounds
        for window in [*r["constant"].values(), *r["single"].values(), r["json"], r["npy"]]
    )
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | threshold | verdict |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        verdict = "pass" if t["passed"] else "FAIL"
        lines.append(_row([t["target"], _n(t["measured"], 3), _n(t["threshold"], 3), verdict]))
    lines += ["", f"Failed requests during the benchmark: {errors}.", ""]
    return "\n".join(lines)
