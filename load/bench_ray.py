"""Throughput of ``mnist-batch --engine ray`` vs ``--local`` and the service; Ray start-up.

    python -m load.bench_ray [--model-dir models/mnist] [--rounds 3] [--input test|train]

Each round, in this order: a fresh local Ray cluster is started (``ray.init``, timed),
a pool of actors loads the model (timed until every actor answers), then whole jobs are
timed on the warm pool, in process (``--local``, model loaded once for the run) and
through a ``mnist-serve`` started once for the run (``.npy`` bodies); the cluster is
stopped at the end of the round. Jobs are the same as in :mod:`load.bench_batch` (from
the first read to the renamed output, model already loaded) and every output must be
byte-identical to the first ``--local`` one. Figures are medians over the rounds; each
ratio is the median of per-round ratios to ``--local`` in the same round.
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
from batch.local import LocalModel
from batch.ray_cluster import RayCluster
from batch.ray_pool import RayPool
from batch.scores import Scorer, Scores
from harness.launch import running_service
from mnist_core.dataset import DATA_DIR_ENV, FILES, find_file
from mnist_core.sources import Chunk, open_source

from .bench_batch import model_only, remote, run_job

LOCAL = "mnist-batch --local"


class Replay:
    """A scorer that answers from a first pass: what the driver alone (reading, formatting,
    journalling) sustains, the ceiling of any engine behind one driver."""

    retries = 0

    def __init__(self, model: LocalModel, images: Path, chunk_size: int) -> None:
        self._answers = {
            chunk.start: model.predict(chunk.images)
            for chunk in open_source(images).chunks(0, chunk_size)
        }

    async def score(self, chunk: Chunk) -> Scores:
        return self._answers[chunk.start]

    async def aclose(self) -> None:
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.bench_ray", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    parser.add_argument(
        "--data-dir", type=Path, default=os.environ.get(DATA_DIR_ENV), help="MNIST IDX folder"
    )
    parser.add_argument("--input", choices=("test", "train"), default="test")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="timed jobs per path and round")
    parser.add_argument("--actors", type=int, help="Ray actors (default: one per CPU)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default: 2)")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="requests to the service")
    return parser


def _check(output: Path, reference: Path, name: str) -> None:
    if output.read_bytes() != reference.read_bytes():
        raise SystemExit(f"bench_ray: {name} wrote a different output")
    output.unlink()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir is None:
        print(f"bench_ray: set {DATA_DIR_ENV} or pass --data-dir", file=sys.stderr)
        return 2
    images = find_file(Path(args.data_dir), FILES[f"{args.input}_images"])
    count = open_source(images).count
    started = time.perf_counter()
    model = LocalModel(args.model_dir)
    local_load = time.perf_counter() - started
    rates: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    startup: dict[str, list[float]] = {"model loaded in process (--local)": [local_load]}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        out = Path(tmp)
        reference = out / "reference.csv"
        run_job(images, reference, model, args.chunk_size, LOCAL_PIPELINE)
        with running_service(args.model_dir.resolve(), workers=args.workers) as server:
            startup["mnist-serve until every worker serves"] = [server.serving_seconds or 0.0]
            make_client = remote(server.url, "npy", args.concurrency)
            for _ in range(args.rounds):
                round_rates = _round(args, images, out, reference, model, make_client, startup)
                for name, rate in round_rates.items():
                    rates.setdefault(name, []).append(rate)
                    ratios.setdefault(name, []).append(rate / round_rates[LOCAL])
    print(report(args, count, rates, ratios, startup, load_before, os.getloadavg()[0]))
    return 0


def _round(
    args: argparse.Namespace,
    images: Path,
    out: Path,
    reference: Path,
    model: LocalModel,
    make_client: Callable[[], Scorer],
    startup: dict[str, list[float]],
) -> dict[str, float]:
    """One round's images/s per path (best of ``--jobs`` jobs each), start-up times added."""
    count = open_source(images).count
    started = time.perf_counter()
    cluster = RayCluster(num_cpus=os.cpu_count())
    cluster.connect()
    cluster_s = time.perf_counter() - started
    pool = RayPool(args.model_dir, cluster, actors=args.actors)
    pool_s = time.perf_counter() - started - cluster_s
    startup.setdefault("Ray: local cluster started (ray.init)", []).append(cluster_s)
    startup.setdefault("Ray: actors ready (model loaded in each)", []).append(pool_s)
    replay = Replay(model, images, args.chunk_size)
    try:
        rates: dict[str, float] = {}
        output = out / "job.csv"
        paths: dict[str, Callable[[], float]] = {
            "in-process model (signature calls only)": lambda: model_only(
                model, images, args.chunk_size
            ),
            "driver alone (model answers replayed)": lambda: run_job(
                images, output, replay, args.chunk_size, LOCAL_PIPELINE
            ),
            LOCAL: lambda: run_job(images, output, model, args.chunk_size, LOCAL_PIPELINE),
            f"mnist-batch --engine ray ({pool.size} actors)": lambda: run_job(
                images, output, pool, args.chunk_size, pool.default_concurrency
            ),
            "mnist-batch --url, binary .npy": lambda: run_job(
                images,
                output,
                make_client(),
                args.chunk_size,
                args.concurrency,
            ),
        }
        for name, measure in paths.items():
            measure()  # warm-up: first calls on each actor, connections
            times = []
            for _ in range(args.jobs):
                times.append(measure())
                if output.exists():
                    _check(output, reference, name)
            rates[name] = count / min(times)
        return rates
    finally:
        asyncio.run(pool.aclose())


def report(
    args: argparse.Namespace,
    count: int,
    rates: dict[str, list[float]],
    ratios: dict[str, list[float]],
    startup: dict[str, list[float]],
    before: float,
    after: float,
) -> str:
    lines = [
        f"Batch jobs on {os.cpu_count()} cores, {count} MNIST {args.input} images, chunks of "
        f"{args.chunk_size}; images/s, median over {args.rounds} rounds of the best of "
        f"{args.jobs} jobs (load average {before:.1f} -> {after:.1f}).",
        "",
        "| path | images/s (median) | rounds | x --local (median of per-round ratios) |",
        "|---|---:|---|---:|",
    ]
    for name, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        ratio = statistics.median(ratios[name])
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {runs} | {ratio:.2f} |")
    lines += ["", "| start-up | seconds (median) | rounds |", "|---|---:|---|"]
    for name, values in startup.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):.1f} | {runs} |")
    ray_job = next(name for name in rates if "--engine ray" in name)
    ray_rate = statistics.median(rates[ray_job])
    ray_start = sum(statistics.median(v) for k, v in startup.items() if k.startswith("Ray:"))
    lines += [
        "",
        f"A whole --engine ray job with its own local cluster: {ray_start:.1f} s of start-up "
        f"+ {count / ray_rate:.2f} s of scoring. All outputs byte-identical to the --local one.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
