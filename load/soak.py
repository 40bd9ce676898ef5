"""Soak: mixed traffic at saturation for a long time, watched minute by minute.

    python -m load.soak                       # 10 minutes against a fresh service
    python -m load.soak --short               # CI: 3 windows of 10 s
    python -m load.soak --url http://127.0.0.1:3000 --server-pid 1234 --minutes 30

Locust runs the locustfile's whole mix (single images, 1,000-image JSON and ``.npy``,
image uploads, and every protocol user the locustfile has) with ``--users`` users, as
back-to-back windows of the step recorder (:mod:`load.stepload`, one window a minute).
Beside it, the resident memory of each worker is read at the end of every window. The
table gives, per window: requests, failures, 429s, p50/p99 and the workers' RSS. The run
passes when no request failed and no worker's RSS grew by 10% or more after the first
window. Writes ``<reports>/<name>.json`` and ``<name>.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.launch import LaunchError
from harness.procfs import worker_rss_mb
from load.capacity import read_steps, run_locust, target
from load.steps import StepPlan, StepRecord

MAX_GROWTH = 0.10
# The locustfile leaves the standard-protocol users out unless asked; a soak covers every
# protocol the service speaks (options after -- come later and win).
EVERY_PROTOCOL = ["--v2-weight", "1", "--tfserving-weight", "1"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.soak", description=__doc__)
    add = parser.add_argument
    add("--url", help="soak this running server instead of starting one")
    add("--server-pid", type=int, help="with --url: the server whose workers' memory to read")
    add("--model-dir", default=os.environ.get("MNIST_MODEL_DIR", "models/mnist"))
    add("--workers", type=int, help="MNIST_WORKERS of the started service")
    add("--users", type=int, default=32, help="concurrent users: saturation (default: 32)")
    add("--minutes", type=float, default=10.0, help="length of the run (default: 10)")
    add("--window-seconds", type=float, default=60.0, help="one row per window (default: 60)")
    add("--short", action="store_true", help="3 windows of 10 s, for CI")
    add("--mix", default="", help="user classes by name and weight (default: the locustfile's)")
    add("--reports", type=Path, default=Path("reports"))
    add("--name", default="soak")
    add("--timeout", type=float, help="kill Locust after this many seconds")
    add("locust_args", nargs="*", help="after --: more Locust options")
    return parser


class MemoryWatch:
    """The workers' RSS at the end of each window (a sample every second, the last kept)."""

    def __init__(self, pid: int | None, window: float) -> None:
        self.pid, self.window = pid, window
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.pid and not self.stop.wait(1.0):
            self.samples.append((time.monotonic() - self.started, worker_rss_mb(self.pid)))

    def at_window_ends(self, windows: int) -> list[dict[int, float]]:
        ends = []
        for index in range(windows):
            end = (index + 1) * self.window
            before = [rss for at, rss in self.samples if at <= end + 1.0]
            ends.append(before[-1] if before else {})
        return ends


def growth(rss: list[dict[int, float]]) -> float | None:
    """Largest growth of any worker after the first window (None if unknown)."""
    if len(rss) < 2 or not rss[0]:
        return None
    first, last = rss[0], rss[-1]
    common = set(first) & set(last)
    if not common:
        return None  # every worker was replaced: their memory cannot be compared
    return max(last[p] / first[p] - 1 for p in common)


def rows(steps: list[StepRecord], rss: list[dict[int, float]]) -> list[dict[str, Any]]:
    found = []
    for step, memory in zip(steps, rss, strict=False):
        found.append(
            {
                "window": step.step,
                "requests": step.ok + step.errors + step.shed,
                "failures": step.errors,
                "shed_429": step.shed,
                "req_per_s": round(step.ok_rps, 1),
                "p50_ms": step.p50_ms,
                "p99_ms": step.p99_ms,
                "worker_rss_mb": {str(p): round(v) for p, v in sorted(memory.items())},
            }
        )
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.short:
        args.minutes, args.window_seconds = 0.5, 10.0
    windows = max(1, round(args.minutes * 60 / args.window_seconds))
    # The first window opens once every user runs; later ones follow back to back.
    plan = StepPlan((args.users,) * windows, args.window_seconds, 0.0, level=True)
    args.timeout = args.timeout or windows * args.window_seconds + 180
    args.locust_args = [*EVERY_PROTOCOL, *args.locust_args]
    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-soak-") as scratch:
        steps_file = Path(scratch) / "steps.json"
        try:
            with target(args, reports) as (url, server_pid):
                watch = MemoryWatch(server_pid, args.window_seconds)
                watch.thread.start()
                try:
                    code = run_locust(args, url, server_pid, plan, steps_file)
                finally:
                    watch.stop.set()
                steps = read_steps(steps_file)
        except LaunchError as exc:
            print(f"soak: {exc}", file=sys.stderr)
            return 2
    table = rows(steps, watch.at_window_ends(len(steps)))
    grew = growth([r["worker_rss_mb"] for r in table])
    failures = sum(r["failures"] for r in table)
    problems = []
    if not table:
        problems.append(f"no window was measured (Locust exit code {code})")
    if failures:
        problems.append(f"{failures} request(s) failed")
    if grew is not None and grew >= MAX_GROWTH:
        problems.append(f"a worker's RSS grew {grew:.1%} after the first window")
    summary = {
        "users": args.users,
        "windows": table,
        "requests": sum(r["requests"] for r in table),
        "failures": failures,
        "rss_growth_after_first_window": grew,
        "passed": not problems,
        "problems": problems,
    }
    (reports / f"{args.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    with (reports / f"{args.name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "window",
                "requests",
                "failures",
                "shed_429",
                "req_per_s",
                "p50_ms",
                "p99_ms",
                "worker_rss_mb",
            ]
        )
        for r in table:
            memory = " ".join(f"{p}:{v}" for p, v in r["worker_rss_mb"].items())
            writer.writerow(
                [
                    r["window"],
                    r["requests"],
                    r["failures"],
                    r["shed_429"],
                    r["req_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    memory,
                ]
            )
    print(
        f"\n{'window':>6} {'requests':>9} {'failed':>6} {'429':>5} {'req/s':>7} {'p50 ms':>7}"
        f" {'p99 ms':>7}  worker RSS MB"
    )
    for r in table:
        memory = ", ".join(f"{v}" for v in r["worker_rss_mb"].values())
        p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "n/a"
        p99 = f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "n/a"
        print(
            f"{r['window']:>6} {r['requests']:>9} {r['failures']:>6} {r['shed_429']:>5}"
            f" {r['req_per_s']:>7} {p50:>7} {p99:>7}  {memory}"
        )
    shown = "n/a" if grew is None else f"{grew:+.1%}"
    print(
        f"\nrequests {summary['requests']}, failures {failures}, RSS growth after the first "
        f"window {shown}; reports: {reports / args.name}.json, .csv"
    )
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
