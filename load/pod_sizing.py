"""The figures a Kubernetes pod of the service is sized from (deploy/k8s/base/deployment.yaml).

Each round starts ``mnist-serve`` on a free port with ``HOME`` and ``TMPDIR`` pointed at
fresh folders, and measures: process start to the first ``/readyz`` 200 and until every
worker serves (the startupProbe), the resident and proportional memory of the whole
process tree after warm-up and after ``--seconds`` of 1,000-image ``.npy`` requests from
``--clients`` threads (requests and limits: a container's memory is the cgroup's, which
counts shared pages once, so the PSS sum is what it is charged and the RSS sum an upper
bound), the CPU the tree used under that load, and every path the server wrote under
``HOME`` and ``TMPDIR`` (the writable volumes a read-only root filesystem needs).

    python -m load.pod_sizing --model-dir models/mnist --rounds 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness import launch
from harness.procfs import CpuSnapshot, cpu_use, process_tree, rss_bytes

MB = 2**20


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS sum, PSS sum) of the process tree, in MB."""
    tree = process_tree(pid)
    return sum(map(rss_bytes, tree)) / MB, sum(map(pss_bytes, tree)) / MB


def written_paths(root: Path, depth: int = 2) -> list[str]:
    """What the server created under ``root``, to ``depth`` levels."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if len(relative.parts) <= depth:
            found.append(str(relative) + ("/" if path.is_dir() else ""))
    return found


def load(url: str, clients: int, seconds: float) -> int:
    """1,000-image ``.npy`` bodies to ``/predict_npy`` from ``clients`` threads; answered count."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.save(buffer, rng.integers(0, 256, size=(1000, 28, 28), dtype=np.uint8))
    body = buffer.getvalue()
    done = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(slot: int) -> None:
        with httpx.Client(timeout=30.0) as http:
            while time.perf_counter() < deadline:
                answer = http.post(
                    url + "/predict_npy",
                    content=body,
                    headers={"Content-Type": "application/octet-stream"},
                )
                answer.raise_for_status()
                done[slot] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def one_round(model_dir: Path, workers: int, clients: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mnist-pod-") as scratch:
        home, tmp = Path(scratch, "home"), Path(scratch, "tmp")
        home.mkdir()
        tmp.mkdir()
        env = {"HOME": str(home), "TMPDIR": str(tmp)}
        with launch.running_service(model_dir, workers=workers, env=env) as server:
            time.sleep(2.0)  # let the warm-up finish and the allocator settle
            idle_rss, idle_pss = memory_mb(server.pid)
            before = CpuSnapshot.take(server.pid)
            requests = load(server.url, clients, seconds)
            use = cpu_use(before, CpuSnapshot.take(server.pid))
            busy_rss, busy_pss = memory_mb(server.pid)
            written = [f"$HOME/{p}" for p in written_paths(home)]
            written += [f"$TMPDIR/{p}" for p in written_paths(tmp, depth=1)]
            processes = len(process_tree(server.pid))
        return {
            "ready_s": server.ready_seconds,
            "serving_s": server.serving_seconds,
            "idle_rss_mb": idle_rss,
            "idle_pss_mb": idle_pss,
            "busy_rss_mb": busy_rss,
            "busy_pss_mb": busy_pss,
            "cpu_cores": use.tree,
            "images_s": requests * 1000 / seconds,
            "processes": processes,
            "written": written,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.pod_sizing", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    rounds = [
        one_round(args.model_dir.resolve(), args.workers, args.clients, args.seconds)
        for _ in range(args.rounds)
    ]
    print(f"mnist-serve, {args.workers} workers, {args.rounds} rounds (median, max):")
    for key in (
        "ready_s",
        "serving_s",
        "idle_rss_mb",
        "idle_pss_mb",
        "busy_rss_mb",
        "busy_pss_mb",
        "cpu_cores",
        "images_s",
    ):
        values = [float(r[key]) for r in rounds]
        print(f"  {key:12} {statistics.median(values):10.2f} {max(values):10.2f}")
    print(f"  processes    {rounds[0]['processes']}")
    print("written by the server:")
    for path in sorted({p for r in rounds for p in r["written"]}):
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
