"""The standard protocols against the native API, on one server, in the same run.

Three pairs, each a protocol request against the native request it stands in for:

    1,000 images   V2 binary (Triton's extension, binary outputs)  vs  .npy to /predict_npy
    1,000 images   V2 JSON (flat data, JSON outputs)               vs  JSON to /predict
    1 image x 32   V2 JSON                                          vs  JSON to /predict

Each window is closed-loop load from a separate process (``--child``), bodies encoded
before the clock starts, every answer checked for status 200 and its number of labels.
Within a round the two sides of a pair run back to back, in alternating order from round
to round; the table gives the median over rounds of images per second and of the
per-round ratio (protocol / native; the target is >= 0.8).

    python -m load.bench_protocols --model-dir models/mnist [--rounds 3 --seconds 8]

``--in-process`` measures instead the server's own CPU time per request (model call
included) through the app in this process, without network or load generator: a
figure that other load on the machine does not swing.

    python -m load.bench_protocols --model-dir models/mnist --in-process
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from harness.launch import running_service
from load.payloads import load_test_images, npy_bytes

PAIRS = (
    ("1,000 images: V2 binary vs .npy", "v2-binary", "npy", 1000, 4),
    ("1,000 images: V2 JSON vs JSON /predict", "v2-json", "json", 1000, 4),
    ("1 image, 32 clients: V2 JSON vs /predict", "v2-json", "json", 1, 32),
)
TARGET = 0.8
BODIES = 8


@dataclass(frozen=True)
class Body:
    path: str
    content: bytes
    headers: dict[str, str]
    count: int


def v2_header(count: int, *, binary: bool) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "images", "shape": [count, 28, 28], "datatype": "UINT8"}
    if binary:
        tensor["parameters"] = {"binary_data_size": count * 784}
        return {"inputs": [tensor], "parameters": {"binary_data_output": True}}
    return {"inputs": [tensor]}


def build(kind: str, images: np.ndarray) -> Body:
    count = len(images)
    if kind == "npy":
        headers = {"Content-Type": "application/octet-stream"}
        return Body("/predict_npy", npy_bytes(images), headers, count)
    if kind == "json":
        body = orjson.dumps({"images": images.reshape(count, 784).tolist()})
        return Body("/predict", body, {"Content-Type": "application/json"}, count)
    infer = "/v2/models/mnist/infer"
    if kind == "v2-binary":
        head = orjson.dumps(v2_header(count, binary=True))
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        }
        return Body(infer, head + images.tobytes(), headers, count)
    header = v2_header(count, binary=False)
    header["inputs"][0]["data"] = images.ravel().tolist()  # flat, as tritonclient sends it
    return Body(infer, orjson.dumps(header), {"Content-Type": "application/json"}, count)


def labels_in(answer: bytes, headers: Any) -> int:
    """How many labels an answer holds (native predictions or V2 outputs)."""
    length = headers.get("Inference-Header-Content-Length")
    parsed = orjson.loads(answer[: int(length)] if length else answer)
    if "predictions" in parsed:
        return len(parsed["predictions"])
    (label,) = (o for o in parsed["outputs"] if o["name"] == "label")
    return int(label["shape"][0])


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    bodies: itertools.cycle[Body],
    window: tuple[float, float],
    latencies: list[float],
    errors: list[str],
) -> None:
    start, stop = window
    while (sent := time.perf_counter()) < stop:
        body = next(bodies)
        async with session.post(url + body.path, data=body.content, headers=body.headers) as r:
            answer = await r.read()
            ok = r.status == 200 and labels_in(answer, r.headers) == body.count
            problem = None if ok else f"HTTP {r.status}: {answer[:200]!r}"
        if sent < start:
            continue
        if problem is None:
            latencies.append(time.perf_counter() - sent)
        else:
            errors.append(problem)


async def measure(url: str, kind: str, images: int, clients: int, seconds: float) -> dict[str, Any]:
    test = load_test_images()
    bodies = [build(kind, test.window(i * images, images).images) for i in range(BODIES)]
    latencies: list[float] = []
    errors: list[str] = []
    warmup = 2.0
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + warmup
        window = (start, start + seconds)
        await asyncio.gather(
            *(
                _client(session, url, itertools.cycle(bodies[i::clients] or bodies), window,
                        latencies, errors)
                for i in range(clients)
            )
        )  # fmt: skip
        wall = max(time.perf_counter(), window[1]) - start
    return {
        "kind": kind,
        "images_per_s": len(latencies) * images / wall,
        "p50_ms": float(np.median(latencies) * 1000) if latencies else float("nan"),
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def window(url: str, kind: str, images: int, clients: int, seconds: float) -> dict[str, Any]:
    """One measured window in a child process, so the generator's CPU is its own."""
    command = [sys.executable, "-m", "load.bench_protocols", "--child", "--url", url]
    command += ["--kind", kind, "--images", str(images), "--clients", str(clients)]
    command += ["--seconds", str(seconds)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"load child failed: {result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if data["errors"]:
        print(f"  ! {kind}: {data['errors']} errors, first: {data['first_error']}", flush=True)
    return data


def table(rounds: list[list[tuple[dict[str, Any], dict[str, Any]]]]) -> str:
    lines = [
        "| comparison | protocol images/s | native images/s | protocol p50 ms | "
        "native p50 ms | ratio (median of rounds) | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for index, (name, *_rest) in enumerate(PAIRS):
        pairs = [r[index] for r in rounds]
        ours = statistics.median(p[0]["images_per_s"] for p in pairs)
        base = statistics.median(p[1]["images_per_s"] for p in pairs)
        ratio = statistics.median(p[0]["images_per_s"] / p[1]["images_per_s"] for p in pairs)
        p50s = [statistics.median(p[side]["p50_ms"] for p in pairs) for side in (0, 1)]
        verdict = "met" if ratio >= TARGET else "MISSED"
        lines.append(
            f"| {name} | {ours:,.0f} | {base:,.0f} | {p50s[0]:.1f} | {p50s[1]:.1f} | "
            f"{ratio:.2f}x | >= {TARGET}x {verdict} |"
        )
    return "\n".join(lines)


def cpu_per_request(model_dir: Path, rounds: int) -> str:
    """Median CPU milliseconds per request of each kind, through the app in process."""
    import httpx

    from service.app import guarded
    from service.config import ServiceSettings
    from service.metrics import ServiceMetrics
    from service.worker import Worker

    settings = ServiceSettings(model_dir=model_dir)
    worker = Worker(settings, ServiceMetrics(settings.max_batch_images, register=False))
    worker.start(background=False)
    transport = httpx.ASGITransport(app=guarded(worker))
    test = load_test_images()

    async def cpu_ms(kind: str, images: int, count: int) -> float:
        body = build(kind, test.images[:images])
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for index in range(count + 10):  # the first 10 warm up
                if index == 10:
                    started = time.process_time()
                answer = await client.post(body.path, content=body.content, headers=body.headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"{kind}: HTTP {answer.status_code} {answer.text[:200]}")
        return (time.process_time() - started) / count * 1000

    cases = [("1 image", "v2-json", "json", 1, 500)]
    cases += [("1,000 images", "v2-json", "json", 1000, 15)]
    cases += [("1,000 images", "v2-binary", "npy", 1000, 15)]
    lines = [
        "| request | protocol ms | native ms | ratio (native / protocol) |",
        "|---|---:|---:|---:|",
    ]
    try:
        for name, ours, base, images, count in cases:
            found = [
                (asyncio.run(cpu_ms(ours, images, count)), asyncio.run(cpu_ms(base, images, count)))
                for _ in range(rounds)
            ]
            mine = statistics.median(f[0] for f in found)
            theirs = statistics.median(f[1] for f in found)
            ratio = statistics.median(f[1] / f[0] for f in found)
            lines.append(f"| {name}: {ours} vs {base} | {mine:.2f} | {theirs:.2f} | {ratio:.2f}x |")
    finally:
        worker.close()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.bench_protocols", description=__doc__)
    add = parser.add_argument
    add("--model-dir", type=Path, default=Path(os.environ.get("MNIST_MODEL_DIR", "models/mnist")))
    add("--rounds", type=int, default=3, help="rounds to take medians over (default 3)")
    add("--seconds", type=float, default=8.0, help="measured seconds per window (default 8)")
    add("--workers", type=int, default=2, help="service workers (default 2)")
    add("--url", help=argparse.SUPPRESS)
    add("--in-process", action="store_true", help="CPU per request through the app in process")
    add("--child", action="store_true", help=argparse.SUPPRESS)
    add("--kind", help=argparse.SUPPRESS)
    add("--images", type=int, default=1000, help=argparse.SUPPRESS)
    add("--clients", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = asyncio.run(measure(args.url, args.kind, args.images, args.clients, args.seconds))
        print(json.dumps(result))
        return 0
    if args.in_process:
        print(cpu_per_request(args.model_dir, args.rounds))
        return 0
    env = {"MNIST_WORKERS": str(args.workers)}
    with running_service(args.model_dir, env=env) as server:
        rounds = []
        for number in range(args.rounds):
            print(f"round {number + 1} of {args.rounds}", flush=True)
            measured = []
            for name, ours, base, images, clients in PAIRS:
                order = [ours, base] if number % 2 == 0 else [base, ours]
                found = {k: window(server.url, k, images, clients, args.seconds) for k in order}
                measured.append((found[ours], found[base]))
                print(
                    f"  {name}: {found[ours]['images_per_s']:,.0f} vs "
                    f"{found[base]['images_per_s']:,.0f} images/s",
                    flush=True,
                )
            rounds.append(measured)
    print(table(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
