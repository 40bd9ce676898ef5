"""Throughput of batch jobs on the 10,000 MNIST test images: server (binary and JSON) vs --local.

    python -m load.bench_batch [--model-dir models/mnist] [--runs 5] [--workers 2]

Each round times, in this order: the in-process SavedModel alone (the physical
reference: model calls of ``--chunk-size`` images, nothing else), a whole ``--local``
job, and whole jobs through a freshly started ``mnist-serve`` with ``.npy`` and with
JSON bodies, after one untimed warm-up of each. A job is timed from its first read to
its renamed output (reading the gzipped IDX file, scoring, formatting, fsyncing), with
the model already loaded. The
table shows medians over the rounds and ratios to ``--local`` measured in the same run;
the target is server (binary) >= 0.5 x ``--local``. Every job's output must be
byte-identical to the first ``--local`` one, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from batch.cli import LOCAL_PIPELINE
from batch.client import RetryPolicy, ServiceClient, Transport
from batch.journal import Journal
from batch.local import LocalModel
from batch.runner import Job
from batch.scores import Scorer
from harness.launch import running_service
from mnist_core.dataset import DATA_DIR_ENV, FILES, find_file
from mnist_core.rows import header
from mnist_core.sources import open_source

TARGET_RATIO = 0.5


def run_job(images: Path, output: Path, scorer: Scorer, chunk_size: int, concurrency: int) -> float:
    """Seconds for one whole job into ``output`` (replaced if present)."""
    source = open_source(images)
    job_id = {"input": source.fingerprint(), "format": "csv", "labels": None}
    journal = Journal(output, job_id, header("csv", source.key), restart=True)
    job = Job(
        source,
        scorer,
        journal,
        fmt="csv",
        chunk_size=chunk_size,
        concurrency=concurrency,
        show_progress=False,
    )
    try:
        stats = asyncio.run(job.run())
    finally:
        journal.close()
    return stats.seconds


def model_only(model: LocalModel, images: Path, chunk_size: int) -> float:
    """Seconds of model calls alone over the whole set (images already in memory)."""
    chunks = [chunk.images for chunk in open_source(images).chunks(0, chunk_size)]
    started = time.perf_counter()
    for chunk in chunks:
        model.predict(chunk)
    return time.perf_counter() - started


def remote(url: str, transport: Transport, concurrency: int) -> Callable[[], Scorer]:
    def make() -> Scorer:
        return ServiceClient(
            url, transport=transport, concurrency=concurrency, policy=RetryPolicy(retries=3)
        )

    return make


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.bench_batch", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    parser.add_argument(
        "--data-dir", type=Path, default=os.environ.get(DATA_DIR_ENV), help="MNIST IDX folder"
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default: 2)")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir is None:
        print(f"bench_batch: set {DATA_DIR_ENV} or pass --data-dir", file=sys.stderr)
        return 2
    images = find_file(Path(args.data_dir), FILES["test_images"])
    model = LocalModel(args.model_dir)
    count = open_source(images).count
    times: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        out = Path(tmp)
        reference = out / "reference.csv"
        run_job(images, reference, model, args.chunk_size, LOCAL_PIPELINE)
        with running_service(args.model_dir.resolve(), workers=args.workers) as server:
            paths: dict[str, Callable[[Path], float]] = {
                "in-process model (signature calls only)": lambda _: model_only(
                    model, images, args.chunk_size
                ),
                "mnist-batch --local": lambda o: run_job(
                    images, o, model, args.chunk_size, LOCAL_PIPELINE
                ),
            }
            for transport, name in (("npy", "binary .npy"), ("json", "JSON")):
                make = remote(server.url, transport, args.concurrency)  # type: ignore[arg-type]
                paths[f"mnist-batch --url, {name}"] = lambda o, make=make: run_job(  # type: ignore[misc]
                    images, o, make(), args.chunk_size, args.concurrency
                )
            for measure in paths.values():  # warm-up: first model calls, connections
                measure(out / "warm-up.csv")
            for _ in range(args.runs):
                for name, measure in paths.items():
                    output = out / "job.csv"
                    times.setdefault(name, []).append(measure(output))
                    if output.exists():
                        if output.read_bytes() != reference.read_bytes():
                            print(f"bench_batch: {name} wrote a different output", file=sys.stderr)
                            return 1
                        output.unlink()
    load_after = os.getloadavg()
    print(report(times, count, args, load_before[0], load_after[0]))
    return 0


def report(
    times: dict[str, list[float]], count: int, args: argparse.Namespace, before: float, after: float
) -> str:
    local = count / statistics.median(times["mnist-batch --local"])
    lines = [
        f"Batch jobs, {count} MNIST test images, chunks of {args.chunk_size}, "
        f"{args.concurrency} requests in flight, server with {args.workers} workers; "
        f"images/s, median of {args.runs} runs (load average {before:.1f} -> {after:.1f}).",
        "",
        "| path | images/s (median) | runs | x --local |",
        "|---|---:|---|---:|",
    ]
    for name, seconds in times.items():
        rates = [count / s for s in seconds]
        median = statistics.median(rates)
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        lines.append(f"| {name} | {median:,.0f} | {runs} | {median / local:.2f} |")
    binary = count / statistics.median(times["mnist-batch --url, binary .npy"])
    verdict = "met" if binary >= TARGET_RATIO * local else "NOT met"
    lines += [
        "",
        f"Target server (binary) >= {TARGET_RATIO} x --local: {verdict} "
        f"({binary / local:.2f}). All outputs byte-identical to the --local one.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
