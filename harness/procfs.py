"""Readings of ``/proc``: a process tree, its resident memory and CPU time, the machine's load.

Linux only; the launcher, the benchmarks and the tests read servers they started this way.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ")".
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    children = _children()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes of every process in ``pid``'s tree."""
    return {p: rss_bytes(p) for p in process_tree(pid)}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); index 0 here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters read at one instant: this process, each process of a tree, the machine."""

    own: float
    tree: dict[int, float]
    machine: float
    at: float
    """``time.perf_counter()`` when read."""

    @classmethod
    def take(cls, tree_pid: int | None = None) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        tree = {pid: cpu_seconds(pid) for pid in process_tree(tree_pid)} if tree_pid else {}
        own = usage.ru_utime + usage.ru_stime
        return cls(own, tree, machine_busy_seconds(), time.perf_counter())


@dataclass(frozen=True)
class CpuUse:
    """Cores kept busy between two snapshots (1.0 is one core)."""

    own: float
    """This process (the load generator)."""
    tree: float | None
    """The watched process tree (the server), None when no tree was watched."""
    tree_by_process: list[float]
    """The same per process of the tree, busiest first."""
    other: float
    """Everything else on the machine."""


def cpu_use(before: CpuSnapshot, after: CpuSnapshot, wall: float | None = None) -> CpuUse:
    """What each party used between ``before`` and ``after``, per second of ``wall``.

    ``wall`` defaults to the time between the snapshots. Per process of the tree, so a
    reader can see whether the load spread over the workers (keep-alive connections stay
    with the worker that accepted them).
    """
    seconds = wall if wall is not None else after.at - before.at
    seconds = max(seconds, 1e-9)
    own = (after.own - before.own) / seconds
    split = sorted(
        ((after.tree[pid] - before.tree.get(pid, 0.0)) / seconds for pid in after.tree),
        reverse=True,
    )
    tree = sum(split) if after.tree else None
    machine = (after.machine - before.machine) / seconds
    return CpuUse(own, tree, split, max(machine - own - (tree or 0.0), 0.0))


BENTOML_WORKER = b"_bentoml_impl.worker."
"""In the command line of every BentoML worker (``python -m _bentoml_impl.worker.service``)."""


def is_bentoml_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return BENTOML_WORKER in f.read()
    except OSError:
        return False


def worker_rss_mb(pid: int, min_mb: float = 200.0) -> dict[int, float]:
    """Resident MB of the worker processes of ``pid``'s tree, the ones that hold a model.

    BentoML's workers are known by their command line. For a tree without them, the
    processes over ``min_mb``: helper processes are small, a worker with TensorFlow and
    its model is hundreds of MB (a worker without TensorFlow is not, hence the command
    line first).
    """
    tree = process_tree(pid)
    workers = [p for p in tree if is_bentoml_worker(p)]
    if workers:
        return {p: rss_bytes(p) / 2**20 for p in workers}
    sizes = {p: rss_bytes(p) / 2**20 for p in tree}
    return {p: size for p, size in sizes.items() if size > min_mb}
