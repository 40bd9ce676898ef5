"""Measure the service against the raw model and a constant-answer server on this machine.

Each round measures, in order: the SavedModel in process (the physical reference), the
constant-answer BentoML server (what HTTP alone costs), the stock-BentoML peer, then a
freshly started service (cold start, memory, single-image and 1,000-image traffic) on
each runtime asked for, each with its own in-process reference. Every figure is the median
over rounds of that figure, and every ratio the median of the per-round ratios to the
reference measured in the same round. Writes ``reports/bench.md`` and ``bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.launch import Server, free_port, running_service, start, stop
from harness.procfs import tree_rss, worker_rss_mb
from load import histogram
from load.report import IDLE_S, Plan, render_markdown, runtime_rounds, targets
from mnist_core.modeldir import latest_version_dir
from runtime.runtimes import RUNTIMES

MB = 1024 * 1024


def constant_command(port: int, workers: int) -> list[str]:
    """The constant-answer server of :mod:`load.constant_service` (imports BentoML: a child)."""
    module = "load.constant_service"
    return [sys.executable, "-m", module, "--port", str(port), "--workers", str(workers)]


def stock_command(port: int, workers: int) -> list[str]:
    """The stock-BentoML peer of :mod:`load.stock_service` (its model: ``MNIST_STOCK_MODEL``)."""
    module = "load.stock_service"
    return [sys.executable, "-m", module, "--port", str(port), "--workers", str(workers)]


def plan_from_args(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(
        rounds=args.rounds or (1 if quick else 3),
        seconds=args.seconds or (2.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if quick else 2.0),
        model_seconds=args.model_seconds or (0.5 if quick else 3.0),
        concurrency=tuple(int(c) for c in args.concurrency.split(",")),
        batch_images=args.batch_images,
        batch_concurrency=args.batch_concurrency,
        workers=args.workers or _default_workers(),
    )


def _default_workers() -> int:
    from service.config import ServiceSettings

    return ServiceSettings().workers


def run_child(module: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON of its last output line."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def load_window(server: Server, plan: Plan, kind: str, concurrency: int) -> dict[str, Any]:
    """One loadgen run in its own process; it also reads the server tree's CPU use."""
    args = ["--url", server.url, "--kind", kind, "--concurrency", str(concurrency)]
    args += ["--seconds", str(plan.seconds), "--warmup", str(plan.warmup)]
    args += ["--images", str(plan.batch_images), "--server-pid", str(server.pid)]
    result = run_child("load.loadgen", *args)
    if result["errors"]:
        print(f"  ! {result['errors']} errors, first: {result['first_error']}", flush=True)
    return result


def memory(server: Server, workers: int) -> dict[str, Any]:
    rss = tree_rss(server.pid)
    total = sum(rss.values())
    workers_mb = sorted(worker_rss_mb(server.pid).values(), reverse=True)
    return {
        "worker_mb": workers_mb,
        "median_worker_mb": workers_mb[len(workers_mb) // 2] if workers_mb else 0.0,
        "processes": len(rss),
        "total_mb": total / MB,
        "per_worker_mb": total / MB / workers,
        "largest_process_mb": max(rss.values()) / MB,
        "process_mb": sorted((v / MB for v in rss.values()), reverse=True),
    }


@contextmanager
def constant_server(plan: Plan, log_dir: Path) -> Iterator[Server]:
    port = free_port()
    server = start(
        constant_command(port, plan.workers),
        port=port,
        log_path=log_dir / "bench-constant-server.log",
    )
    try:
        yield server
    finally:
        stop(server)


@contextmanager
def stock_server(plan: Plan, model_dir: Path, log_dir: Path) -> Iterator[Server]:
    version_dir = latest_version_dir(model_dir)
    port = free_port()
    server = start(
        stock_command(port, plan.workers),
        port=port,
        env={"MNIST_STOCK_MODEL": str(version_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
        log_path=log_dir / "bench-stock-server.log",
    )
    try:
        yield server
    finally:
        stop(server)


BATCH_HISTOGRAM = "mnist_batch_images"


def in_process(plan: Plan, model_dir: Path, runtime: str) -> dict[str, Any]:
    """The model on ``runtime`` in a bare process: images/s per batch size and its RSS."""
    model = run_child(
        "load.model_speed",
        *("--model-dir", str(model_dir), "--seconds", str(plan.model_seconds)),
        *("--runtime", runtime),
    )
    return {"model": model["images_per_s"], "model_rss_mb": model["rss_mb"]}


def measure_service(plan: Plan, model_dir: Path, log_dir: Path, runtime: str) -> dict[str, Any]:
    """A freshly started service on ``runtime``: cold start, memory, every load window."""
    out: dict[str, Any] = {"runtime": runtime}
    env = {"MNIST_WORKERS": str(plan.workers), "MNIST_RUNTIME": runtime}
    log_path = log_dir / f"bench-server-{runtime}.log"
    with running_service(model_dir, env=env, log_path=log_path) as server:
        out["cold_start_s"] = server.ready_seconds
        out["serving_s"] = server.serving_seconds
        run_child(
            "load.loadgen",
            *("--url", server.url, "--kind", "single", "--concurrency", "8"),
            *("--seconds", "1", "--warmup", "0"),
        )
        out["memory_warm"] = memory(server, plan.workers)
        out["single"] = {}
        for c in plan.concurrency:
            before = histogram.scrape(server.url, BATCH_HISTOGRAM)
            out["single"][str(c)] = load_window(server, plan, "single", c)
            calls = histogram.window(before, histogram.scrape(server.url, BATCH_HISTOGRAM))
            out["single"][str(c)]["batch_histogram"] = calls
        out["json"] = load_window(server, plan, "json", plan.batch_concurrency)
        out["npy"] = load_window(server, plan, "npy", plan.batch_concurrency)
        out["memory_loaded"] = memory(server, plan.workers)
        time.sleep(IDLE_S)
        out["memory_idle"] = memory(server, plan.workers)
    return out


def measure_round(
    plan: Plan, model_dir: Path, log_dir: Path, runtimes: tuple[str, ...] = ("signature",)
) -> dict[str, Any]:
    """One round: the references, then the service on each runtime (the first at the top
    level of the round, the others under ``runtimes``, each with its own in-process model)."""
    primary, *others = runtimes
    print(f"  model in process ({primary})", flush=True)
    out: dict[str, Any] = in_process(plan, model_dir, primary)

    print("  constant-answer server", flush=True)
    with constant_server(plan, log_dir) as server:
        out["constant"] = {str(c): load_window(server, plan, "single", c) for c in plan.concurrency}

    print("  stock BentoML peer", flush=True)
    with stock_server(plan, model_dir, log_dir) as server:
        stock: dict[str, Any] = {"serving_s": server.serving_seconds}
        stock["single"] = {str(c): load_window(server, plan, "single", c) for c in plan.concurrency}
        stock["json"] = load_window(server, plan, "json", plan.batch_concurrency)
        stock["npy"] = load_window(server, plan, "npy", plan.batch_concurrency)
        stock["memory_loaded"] = memory(server, plan.workers)
        time.sleep(IDLE_S)
        stock["memory_idle"] = memory(server, plan.workers)
        out["stock"] = stock

    print(f"  service ({primary} runtime)", flush=True)
    out.update(measure_service(plan, model_dir, log_dir, primary))
    out["runtimes"] = {}
    for runtime in others:
        print(f"  model in process and service ({runtime} runtime)", flush=True)
        view = in_process(plan, model_dir, runtime)
        view.update(measure_service(plan, model_dir, log_dir, runtime))
        out["runtimes"][runtime] = view
    return out


def source_revision() -> str:
    """The git commit measured, marked when the working tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with uncommitted changes" if dirty else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.bench", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="one short round, to try the harness out")
    add("--rounds", type=int, help="rounds to take medians over (default 3, quick 1)")
    add("--seconds", type=float, help="measured seconds per load window (default 10)")
    add("--warmup", type=float, help="unmeasured seconds before each window (default 2)")
    add("--model-seconds", type=float, help="seconds per in-process batch size (default 3)")
    add("--concurrency", default="1,8,32", help="single-image clients (default: %(default)s)")
    add("--batch-images", type=int, default=1000, help="images per batch request")
    add("--batch-concurrency", type=int, default=4, help="clients sending batch requests")
    add("--workers", type=int, help="service workers (default: the service's own default)")
    add(
        "--runtimes",
        default="signature,dense",
        help="service runtimes to measure, the first in the main tables (default: %(default)s)",
    )
    add(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("MNIST_MODEL_DIR", "models/mnist")),
        help="model root (default: %(default)s)",
    )
    add("--reports", type=Path, default=Path("reports"), help="output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if latest_version_dir(args.model_dir) is None:
        print(f"bench: no model version under {args.model_dir}: run `make train`", file=sys.stderr)
        return 2
    if not os.environ.get("MNIST_DATA_DIR"):
        print("bench: MNIST_DATA_DIR must point at the MNIST IDX files", file=sys.stderr)
        return 2
    plan = plan_from_args(args)
    runtimes = tuple(r for r in args.runtimes.split(",") if r)
    unknown = set(runtimes) - set(RUNTIMES)
    if not runtimes or unknown:
        print(f"bench: runtimes are among {', '.join(RUNTIMES)}", file=sys.stderr)
        return 2
    args.reports.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rounds = []
    for index in range(plan.rounds):
        print(f"round {index + 1} of {plan.rounds}", flush=True)
        rounds.append(measure_round(plan, args.model_dir, args.reports, runtimes))
    result = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "revision": source_revision(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "plan": asdict(plan),
        "rounds": rounds,
    }
    result["targets"] = targets(rounds, plan)
    result["targets_by_runtime"] = {
        runtime: targets(runtime_rounds(rounds, runtime), plan) for runtime in runtimes[1:]
    }
    (args.reports / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render_markdown(result, rounds, plan)
    (args.reports / "bench.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
