"""Server CPU per request, by stage: py-spy samples of every worker under load.

Starts the service (or the constant-answer server, ``--constant``), runs the closed-loop
load generator at ``--concurrency`` clients while ``py-spy`` samples each worker process
(without pausing it), then sorts every sample into one stage by the frames on its stack
(the most specific stage named in :data:`STAGES` wins) and splits the server's measured
CPU time per request in proportion. py-spy samples threads that are runnable, so on a
machine short of cores the shares lean towards code that waits for one; the total per
request is the server's real CPU time, read from ``/proc``. py-spy is a profiling tool,
not a dependency:
``pip install py-spy`` into the environment first.

Run: ``python -m load.profile_stages --model-dir models/mnist --seconds 10``; prints a
markdown table and, with ``--json``, the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from harness.launch import Server, free_port, running_service, start, stop
from harness.procfs import worker_rss_mb

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "model call",
        ("runtime/savedmodel.py", "runtime/litert.py", "runtime/dense.py", "/tensorflow/"),
    ),
    ("our metrics", ("service/metrics.py", "/prometheus_client/")),
    ("JSON decode and checks", ("service/decoding.py", "mnist_core/validation.py")),
    ("batcher and thread hand-off", ("service/batching.py", "concurrent/futures", "threading.py")),
    ("worker (version lease, timeout)", ("service/worker.py", "service/repository.py")),
    ("answer (JSON encode)", ("service/native.py",)),
    ("our middleware", ("service/middleware.py",)),
    ("HTTP stack (uvicorn, Starlette, BentoML, event loop)", ()),
)
"""Stage names and the file fragments whose frames mark them, most specific first."""


IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)",)
"""Innermost frames of a thread that waits for work: sampled as active only while the
thread, just woken, waits for a core (on a busy machine). Left out of the shares."""


def classify(stack: str) -> str | None:
    if stack.endswith(IDLE_LEAVES):
        return None
    for name, markers in STAGES:
        if any(marker in stack for marker in markers):
            return name
    return STAGES[-1][0]


def stage_samples(raw_files: list[Path], leaves: Counter[str] | None = None) -> Counter[str]:
    """Samples per stage from py-spy's ``--format raw`` (collapsed stacks) files; ``leaves``
    collects samples per (stage, innermost three frames) for ``--top``."""
    counts: Counter[str] = Counter()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stage = classify(stack)
                if stage is None:
                    continue
                counts[stage] += int(count)
                if leaves is not None:
                    leaves[stage + " <- " + ";".join(stack.split(";")[-3:])] += int(count)
    return counts


def profile(server: Server, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    workers = sorted(worker_rss_mb(server.pid, min_mb=args.min_worker_mb))
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    duration = int(args.warmup + args.seconds + 1)
    outputs = [work / f"worker-{pid}.txt" for pid in workers]
    spies = [
        subprocess.Popen(
            [
                spy,
                *("record", "--pid", str(pid), "--duration", str(duration)),
                *("--rate", str(args.rate), "--format", "raw", "--nonblocking", "--threads"),
                *("--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(workers, outputs, strict=True)
    ]
    load = subprocess.run(
        [
            sys.executable,
            *("-m", "load.loadgen", "--url", server.url, "--kind", args.kind),
            *("--images", str(args.images)),
            *("--concurrency", str(args.concurrency), "--seconds", str(args.seconds)),
            *("--warmup", str(args.warmup), "--server-pid", str(server.pid)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for process in spies:
        process.wait(timeout=duration + 30)
    result: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
    leaves: Counter[str] = Counter()
    samples = stage_samples([out for out in outputs if out.exists()], leaves)
    total = sum(samples.values()) or 1
    cpu_ms = result["server_cpu"] * result["seconds"] * 1000 / max(result["requests"], 1)
    return {
        "requests_per_s": result["rps"],
        "p99_ms": result["p99_ms"],
        "server_cpu_ms_per_request": cpu_ms,
        "workers": len(workers),
        "samples": total,
        "stages_ms": {name: cpu_ms * samples[name] / total for name, _ in STAGES},
        "top_stacks": [(stack, n / total) for stack, n in leaves.most_common(args.top)],
    }


def markdown(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['requests_per_s']:,.0f} req/s, p99 {figures['p99_ms']:.1f} ms, "
        f"{figures['server_cpu_ms_per_request']:.3f} ms of server CPU per request "
        f"({figures['samples']:,} samples over {figures['workers']} workers)",
        "",
        "| stage | CPU ms per request | share |",
        "|---|---|---|",
    ]
    cpu = figures["server_cpu_ms_per_request"] or 1.0
    for name, ms in figures["stages_ms"].items():
        lines.append(f"| {name} | {ms:.3f} | {ms / cpu:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.profile_stages", description=__doc__)
    parser.add_argument("--model-dir", default=os.environ.get("MNIST_MODEL_DIR", "models/mnist"))
    parser.add_argument("--constant", action="store_true", help="the constant-answer server")
    parser.add_argument("--kind", choices=("single", "json", "npy"), default="single")
    parser.add_argument("--images", type=int, default=1000, help="images a body (json, npy)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runtime", default="signature", help="the service's MNIST_RUNTIME")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--min-worker-mb", type=float, default=100.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest stacks")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mnist-profile-"))
    try:
        if args.constant:
            from load.bench import constant_command

            port = free_port()
            server = start(constant_command(port, args.workers), port=port)
            try:
                figures = profile(server, args, work)
            finally:
                stop(server)
        else:
            env = {"MNIST_WORKERS": str(args.workers), "MNIST_RUNTIME": args.runtime}
            with running_service(args.model_dir, env=env) as server:
                figures = profile(server, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(figures))
    for stack, share in figures["top_stacks"]:
        print(f"{share:6.1%}  {stack}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
