"""A worker's background chores while it serves: shutdown bookkeeping and old job results.

* While the server stops (:mod:`service.cli`), each worker reports how many requests it
  still has in flight, so ``mnist-serve`` knows when all have finished (or how many the
  grace time cut).
* Async-job results live in BentoML's store for ``MNIST_JOB_RESULT_TTL_S`` after they
  finished, then they are deleted: the store stays bounded however many jobs run.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .worker import Worker

log = logging.getLogger("mnist.service")

REPORT_EVERY_S = 0.05
EXPIRE_EVERY_S = 60.0


async def report_inflight_while_stopping(worker: Worker) -> None:
    run_dir = worker.run_dir
    if run_dir is None:
        return
    last: int | None = None
    while True:
        if worker.stopping and worker.inflight != last:
            last = worker.inflight
            await asyncio.to_thread(run_dir.report_inflight, worker.pid, last)
        await asyncio.sleep(REPORT_EVERY_S)


def expire_results(store: Path, ttl_s: float) -> int:
    """Delete results finished more than ``ttl_s`` ago; how many were deleted."""
    if not store.exists():
        return 0
    with sqlite3.connect(store, timeout=5) as connection:
        cursor = connection.execute(
            "DELETE FROM result WHERE completed_at IS NOT NULL "
            "AND completed_at < datetime('now', ?)",
            (f"-{ttl_s:.0f} seconds",),
        )
        return cursor.rowcount


async def expire_job_results(worker: Worker) -> None:
    run_dir = worker.run_dir
    if run_dir is None:
        return
    while True:
        await asyncio.sleep(EXPIRE_EVERY_S)
        try:
            deleted = await asyncio.to_thread(
                expire_results, run_dir.task_store, worker.settings.job_result_ttl_s
            )
        except sqlite3.Error as exc:
            log.warning("async-job results could not be expired: %s", exc)
            continue
        if deleted:
            log.info(
                "deleted %d async-job result(s) older than %.0f s",
                deleted,
                worker.settings.job_result_ttl_s,
            )


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on
# 64-bit systems.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20
_TRIM_THRESHOLD = 1 << 30


def _libc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (the one with ``malloc_trim`` and these settings)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def keep_freed_heap_until_idle() -> bool:
    """Stop glibc handing freed heap back on every ``free``: the idle trim does it instead.

    By default glibc returns the top of the heap to the system as soon as more than a few
    MB of it are free, and serves blocks above its mmap threshold with fresh mappings. A
    1,000-image request allocates and frees some 20 MB of temporaries, so every request
    faulted those pages in again: about 4,600 page faults, a third of the time it takes to
    read 1,000 images of JSON. With the thresholds raised the next request reuses the
    freed pages, and :func:`trim_heap_when_idle` still returns them once no request is
    in flight, so resident memory at rest is the same. True if glibc took both settings.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    )


async def trim_heap_when_idle(worker: Worker) -> None:
    """Give memory freed by finished requests back to the system while the worker idles.

    A 1,000-image request allocates tens of MB that glibc keeps in its heap after they
    are freed (:func:`keep_freed_heap_until_idle` makes it keep them while requests
    arrive); resident memory then stays at its high-water mark. ``malloc_trim`` hands
    the free pages back; it runs only with no request in flight, so no request waits on it.
    """
    every_s = worker.settings.trim_heap_s
    libc = _libc()
    if not every_s or libc is None:
        return
    keep_freed_heap_until_idle()
    trim: Callable[[int], int] = libc.malloc_trim
    while True:
        await asyncio.sleep(every_s)
        if worker.inflight == 0:
            trim(0)


CHORES = (report_inflight_while_stopping, expire_job_results, trim_heap_when_idle)
