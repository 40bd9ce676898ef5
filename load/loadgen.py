"""A closed-loop asyncio load generator for the benchmark: N clients, keep-alive, no think time.

It runs as its own process (``python -m load.loadgen ...``) so its CPU time is its own:
the result says how much of one core it used, which shows whether it could have been the
bottleneck. Bodies are encoded before the clock starts. Each response is checked for
status 200 and the number of predictions; the full contract checks belong to the Locust
suite, and would cost the generator more CPU than the server at batch sizes of 1,000.

With ``--obey-retry-after`` a 429 that carries ``Retry-After`` is shed work, not an error:
the client waits as told before it sends again, as a well-behaved client does, and the
refusals are counted apart (``shed``). A 429 without the header stays an error.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import aiohttp
import numpy as np
import orjson

from harness.procfs import CpuSnapshot, cpu_use
from load.payloads import Payload, batch_payloads, load_test_images

BODIES = {"single": 200, "json": 4, "npy": 4}


@dataclass
class LoadResult:
    """One measured window of closed-loop load."""

    kind: str
    concurrency: int
    images_per_request: int
    seconds: float
    requests: int
    errors: int
    rps: float
    images_per_s: float
    p50_ms: float
    p99_ms: float
    generator_cpu: float
    """CPU seconds of the generator per wall second (1.0 is one core)."""
    server_cpu: float | None
    """Cores kept busy by the server's process tree during the window, if its pid is known."""
    server_cpu_by_process: list[float]
    """The same per process of the tree, busiest first."""
    other_cpu: float
    """Cores kept busy by everything else on the machine during the window."""
    first_error: str | None
    shed: int = 0
    """429s with ``Retry-After`` (only counted apart with ``obey_retry_after``)."""


def build_payloads(kind: str, images: int) -> list[Payload]:
    test = load_test_images()
    if kind == "single":
        return batch_payloads(test, [1] * BODIES["single"], "json")
    return batch_payloads(test, [images] * BODIES[kind], kind)


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0
    first_error: str | None = None
    shed: int = 0


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    payloads: Iterator[Payload],
    start: float,
    stop: float,
    tally: _Tally,
    delay: float,
    obey_retry_after: bool = False,
) -> None:
    await asyncio.sleep(delay)
    while (sent := time.perf_counter()) < stop:
        payload = next(payloads)
        problem = None
        retry_after = None
        try:
            async with session.post(url, data=payload.body, headers=payload.headers) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, body, problem = 0, b"", f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        if obey_retry_after and status == 429 and retry_after is not None:
            if sent >= start:
                tally.shed += 1
            await asyncio.sleep(float(retry_after))
            continue
        if problem is None and status != 200:
            problem = f"HTTP {status}: {body[:120]!r}"
        if problem is None:
            answer = orjson.loads(body)
            # Our service answers {"predictions": [...]}; the stock peer a bare list.
            count = len(answer if isinstance(answer, list) else answer.get("predictions", ()))
            if count != len(payload.labels):
                problem = f"{count} predictions for {len(payload.labels)} images"
        if sent < start:
            continue  # warm-up: connections open, batching settles
        if problem is None:
            tally.latencies.append(done - sent)
        else:
            tally.errors += 1
            tally.first_error = tally.first_error or problem


async def measure(
    url: str,
    kind: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    images: int,
    server_pid: int | None = None,
    obey_retry_after: bool = False,
) -> LoadResult:
    payloads = build_payloads(kind, images)
    path = "/predict_npy" if kind == "npy" else "/predict"
    pools = [itertools.cycle(payloads[i::concurrency] or payloads) for i in range(concurrency)]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    tally = _Tally([])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + warmup
        stop = start + seconds
        before = CpuSnapshot(0.0, {}, 0.0, 0.0)

        async def mark_start() -> None:
            nonlocal before
            await asyncio.sleep(max(start - time.perf_counter(), 0.0))
            before = CpuSnapshot.take(server_pid)

        marker = asyncio.create_task(mark_start())
        # Clients join one by one over the first half of the warm-up, as independent
        # clients would: connections opened in the same instant are all accepted by
        # whichever worker wakes first, and keep-alive keeps them there.
        step = warmup / 2 / concurrency
        await asyncio.gather(
            *(
                _client(
                    session, url + path, pools[i], start, stop, tally, i * step, obey_retry_after
                )
                for i in range(concurrency)
            )
        )
        await marker
        after = CpuSnapshot.take(server_pid)
        # Requests in flight at ``stop`` finish after it: count the time they took.
        wall = max(time.perf_counter(), stop) - start
    cpu = cpu_use(before, after, wall)
    latencies = np.array(tally.latencies) * 1000.0
    requests = len(latencies)
    per_request = len(payloads[0].labels)
    return LoadResult(
        kind=kind,
        concurrency=concurrency,
        images_per_request=per_request,
        seconds=round(wall, 3),
        requests=requests,
        errors=tally.errors,
        rps=requests / wall,
        images_per_s=requests * per_request / wall,
        p50_ms=float(np.percentile(latencies, 50)) if requests else float("nan"),
        p99_ms=float(np.percentile(latencies, 99)) if requests else float("nan"),
        generator_cpu=cpu.own,
        server_cpu=cpu.tree,
        server_cpu_by_process=[round(c, 3) for c in cpu.tree_by_process],
        other_cpu=cpu.other,
        first_error=tally.first_error,
        shed=tally.shed,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.loadgen", description=__doc__)
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:3000")
    parser.add_argument("--kind", choices=sorted(BODIES), default="single")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured lead-in")
    parser.add_argument("--images", type=int, default=1000, help="images per batch request")
    parser.add_argument("--server-pid", type=int, help="also report this process tree's CPU")
    parser.add_argument(
        "--obey-retry-after",
        action="store_true",
        help="count 429s with Retry-After as shed (not errors) and wait as they say",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        measure(
            args.url,
            args.kind,
            args.concurrency,
            args.seconds,
            args.warmup,
            args.images,
            args.server_pid,
            args.obey_retry_after,
        )
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
