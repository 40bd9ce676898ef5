"""Overload: the latency of what the service still answers at a multiple of its saturation.

One service (``--workers``, 2) on a free port. Each round runs, back to back in alternating
order, single-image closed-loop load at the saturating concurrency (every worker at its
``MNIST_MAX_CONCURRENCY``: 64 for two workers of 32) and at ``--factor`` (4) times it,
from ``load.loadgen`` in its own process, clients obeying ``Retry-After``. It reports each
window's answered req/s, p50/p99 of the 200s, 429s per second, errors (any answer but a
200 or a 429 with ``Retry-After``) and the server's CPU, then the median over rounds of the
per-round p99 ratio (overloaded / saturated) against ``--max-ratio`` (2), and the
process tree's resident memory before and after. Exit status 1 when the ratio is over the
bound, any window had errors, or nothing was shed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from harness.launch import Server, running_service
from harness.procfs import tree_rss
from load.bench import run_child

MB = 1024 * 1024


def window(server: Server, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    args = ["--url", server.url, "--kind", "single", "--concurrency", str(clients)]
    args += ["--seconds", str(seconds), "--warmup", str(warmup), "--server-pid", str(server.pid)]
    return run_child("load.loadgen", *args, "--obey-retry-after")


def row(label: str, number: int, found: dict[str, Any]) -> str:
    shed_rate = found["shed"] / found["seconds"]
    busiest = max(found["server_cpu_by_process"], default=0.0)
    return (
        f"| {number} | {label} ({found['concurrency']}) | {found['rps']:,.0f} | "
        f"{found['p50_ms']:.1f} | {found['p99_ms']:.1f} | {shed_rate:,.0f} | "
        f"{found['errors']} | {found['server_cpu'] or 0:.2f} ({busiest:.2f}) | "
        f"{found['generator_cpu']:.2f} | "
        f"{found['other_cpu']:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.bench_overload", description=__doc__)
    add = parser.add_argument
    add("--model-dir", type=Path, default=Path(os.environ.get("MNIST_MODEL_DIR", "models/mnist")))
    add("--workers", type=int, default=2, help="service workers (default 2)")
    add("--saturating", type=int, help="saturating clients (default: workers x max concurrency)")
    add("--factor", type=float, default=4.0, help="overload as a multiple of it (default 4)")
    add("--rounds", type=int, default=3, help="rounds to take medians over (default 3)")
    add("--seconds", type=float, default=8.0, help="measured seconds per window (default 8)")
    add("--warmup", type=float, default=2.0, help="unmeasured lead-in per window (default 2)")
    add("--max-ratio", type=float, default=2.0, help="bound on the p99 ratio (default 2)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.factor <= 1:
        parser.error("--rounds must be at least 1 and --factor above 1")
    saturating = args.saturating
    if saturating is None:
        from service.config import ServiceSettings

        saturating = args.workers * ServiceSettings().max_concurrency
    overloaded = round(saturating * args.factor)

    lines = [
        "| round | window (clients) | req/s answered | p50 ms | p99 ms | 429/s | errors "
        "| server CPU (busiest process) | generator CPU | other CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    env = {"MNIST_WORKERS": str(args.workers)}
    with running_service(args.model_dir, env=env) as server:
        window(server, saturating // 2, 2.0, 1.0)  # the server's own warm-up
        rss_before = sum(tree_rss(server.pid).values())
        for number in range(1, args.rounds + 1):
            order = [saturating, overloaded] if number % 2 else [overloaded, saturating]
            found = {
                clients: window(server, clients, args.seconds, args.warmup) for clients in order
            }
            print(
                f"round {number} of {args.rounds}: p99 {found[saturating]['p99_ms']:.1f} ms at "
                f"{saturating}, {found[overloaded]['p99_ms']:.1f} ms at {overloaded}",
                flush=True,
            )
            rounds.append((found[saturating], found[overloaded]))
            lines.append(row("saturated", number, found[saturating]))
            lines.append(row(f"{args.factor:g}x", number, found[overloaded]))
        rss_after = sum(tree_rss(server.pid).values())

    ratios = [o["p99_ms"] / s["p99_ms"] for s, o in rounds]
    ratio = statistics.median(ratios)
    errors = sum(s["errors"] + o["errors"] for s, o in rounds)
    shed = sum(o["shed"] for _, o in rounds)
    growth = rss_after / rss_before - 1
    failed = []
    if ratio > args.max_ratio:
        failed.append(f"p99 ratio {ratio:.2f} over {args.max_ratio:g}")
    if errors:
        first = next(w["first_error"] for pair in rounds for w in pair if w["errors"])
        failed.append(f"{errors} answers neither 200 nor 429 with Retry-After (first: {first})")
    if not shed:
        failed.append(f"nothing was shed at {overloaded} clients")
    print("\n".join(lines))
    print(
        f"\np99 ratio {args.factor:g}x / saturated: median {ratio:.2f} (rounds: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"); bound {args.max_ratio:g}: {'FAIL' if failed else 'pass'}\n"
        f"answers other than 200 or 429 with Retry-After: {errors}; shed: {shed}\n"
        f"server RSS {rss_before / MB:,.0f} MB -> {rss_after / MB:,.0f} MB ({growth:+.1%})"
    )
    for reason in failed:
        print(f"FAIL: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
