"""Publish/swap cycles under load: failed requests, latency during swaps, memory after them.

    python -m load.bench_versions [--model-dir models/mnist] [--cycles 20] [--clients 16]

A fresh two-worker service serves a copy of the newest version under a temporary model
root, watched every ``--poll`` seconds. Closed-loop clients (aiohttp, one keep-alive
connection each) send single test images the whole time. Each cycle holds a steady
window, then publishes the next version (a copy, renamed into place) and counts as "swap"
every request from the publish until every client has been answered by the new version,
plus ``--settle`` seconds. The table gives the failed requests (the target is 0), p50/p99
in steady windows and in swaps, the time until every client saw the new version, and
each worker's resident memory before the first cycle and after the last (the target is
less than 10% growth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from harness.launch import running_service
from harness.procfs import process_tree, rss_bytes
from load.payloads import load_test_images
from mnist_core.modeldir import latest_version_dir


@dataclass
class Record:
    started: float
    seconds: float
    ok: bool
    version: int | None


@dataclass
class Clients:
    records: list[Record] = field(default_factory=list)
    latest: dict[int, int | None] = field(default_factory=dict)
    stop: bool = False


async def client(index: int, url: str, bodies: list[bytes], state: Clients) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        position = index
        while not state.stop:
            body = bodies[position % len(bodies)]
            position += 1
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/predict", data=body, headers={"content-type": "application/json"}
                ) as response:
                    payload = await response.read()
                    header = response.headers.get("x-model-version")
                    ok = response.status == 200 and b'"predictions"' in payload
            except aiohttp.ClientError:
                ok, header = False, None
            version = int(header) if header else None
            state.records.append(Record(started, time.perf_counter() - started, ok, version))
            state.latest[index] = version


def publish(root: Path, source: Path, version: int) -> None:
    incoming = root / f".incoming-{version}"
    shutil.copytree(source, incoming)
    metadata = json.loads((incoming / "metadata.json").read_text())
    (incoming / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    incoming.rename(root / str(version))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def worker_rss_mb(server_pid: int) -> list[float]:
    """Resident MB of each worker: the processes of the tree that hold a model (> 200 MB)."""
    sizes = [rss_bytes(pid) / 2**20 for pid in process_tree(server_pid)]
    return sorted(size for size in sizes if size > 200)


async def cycles(args: argparse.Namespace, url: str, root: Path, source: Path, pid: int) -> int:
    test = load_test_images()
    bodies = [json.dumps({"images": [test.images[i].tolist()]}).encode() for i in range(0, 2000, 7)]
    state = Clients()
    tasks = [asyncio.create_task(client(i, url, bodies, state)) for i in range(args.clients)]
    await asyncio.sleep(args.steady)  # warm-up
    rss_before = worker_rss_mb(pid)
    windows: list[tuple[str, float, float]] = []
    takeovers: list[float] = []
    for cycle in range(args.cycles):
        steady_start = time.perf_counter()
        await asyncio.sleep(args.steady)
        windows.append(("steady", steady_start, time.perf_counter()))
        version = cycle + 2
        publish_start = time.perf_counter()
        await asyncio.to_thread(publish, root, source, version)
        deadline = publish_start + 60
        while any(v != version for v in state.latest.values()):
            if time.perf_counter() > deadline:
                print(f"cycle {cycle + 1}: not every client saw version {version} in 60 s")
                break
            await asyncio.sleep(0.01)
        takeovers.append(time.perf_counter() - publish_start)
        await asyncio.sleep(args.settle)
        windows.append(("swap", publish_start, time.perf_counter()))
        print(
            f"cycle {cycle + 1}/{args.cycles}: version {version}, every client on it after "
            f"{takeovers[-1]:.2f} s",
            flush=True,
        )
    await asyncio.sleep(args.settle)
    rss_after = worker_rss_mb(pid)
    state.stop = True
    await asyncio.gather(*tasks)

    def latencies(kind: str) -> list[float]:
        spans = [(a, b) for k, a, b in windows if k == kind]
        return [r.seconds for r in state.records if any(a <= r.started < b for a, b in spans)]

    failed = sum(not r.ok for r in state.records)
    steady, swap = latencies("steady"), latencies("swap")
    p50_steady, p50_swap = percentile(steady, 50), percentile(swap, 50)
    p99_steady, p99_swap = percentile(steady, 99), percentile(swap, 99)
    growth = [after / before - 1 for before, after in zip(rss_before, rss_after, strict=False)]
    rows = [
        ("requests", f"{len(state.records)}", ""),
        ("failed requests", f"{failed}", "PASS" if failed == 0 else "FAIL"),
        ("p50 steady / swap (ms)", f"{p50_steady:.1f} / {p50_swap:.1f}", ""),
        ("p99 steady / swap (ms)", f"{p99_steady:.1f} / {p99_swap:.1f}",
         f"x{p99_swap / p99_steady:.2f}"),
        ("every client on the new version (s)",
         f"median {statistics.median(takeovers):.2f}, max {max(takeovers):.2f}", ""),
        ("worker RSS before (MB)", ", ".join(f"{v:.0f}" for v in rss_before), ""),
        ("worker RSS after (MB)", ", ".join(f"{v:.0f}" for v in rss_after), ""),
        ("RSS growth", ", ".join(f"{g:+.1%}" for g in growth),
         "PASS" if growth and max(growth) < 0.10 else "FAIL"),
    ]  # fmt: skip
    print(f"\n{args.cycles} publish/swap cycles, {args.clients} clients, poll {args.poll} s\n")
    print("| figure | value | verdict |\n|---|---|---|")
    for name, value, verdict in rows:
        print(f"| {name} | {value} | {verdict} |")
    return 0 if failed == 0 and growth and max(growth) < 0.10 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.bench_versions", description=__doc__)
    parser.add_argument("--model-dir", default="models/mnist", help="the version to copy from")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--steady", type=float, default=3.0, help="seconds per steady window")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after each takeover")
    parser.add_argument("--poll", type=float, default=0.5, help="MNIST_MODEL_POLL_S")
    args = parser.parse_args(argv)
    source = latest_version_dir(args.model_dir)
    if source is None:
        print(f"no model version under {args.model_dir}: run `make train` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mnist-versions-") as tmp:
        root = Path(tmp) / "mnist"
        root.mkdir()
        publish(root, source, 1)
        env = {"MNIST_MODEL_POLL_S": str(args.poll)}
        with running_service(root, workers=2, env=env) as server:
            return asyncio.run(cycles(args, server.url, root, root / "1", server.pid))


if __name__ == "__main__":
    sys.exit(main())
