"""``/proc`` readings of a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness.procfs import cpu_seconds, machine_busy_seconds, process_tree, tree_rss


def test_process_tree_memory_and_cpu_come_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
        rss = tree_rss(os.getpid())
        assert rss[os.getpid()] > 10 * 1024 * 1024
        assert cpu_seconds(os.getpid()) > 0.0
        assert machine_busy_seconds() > 0.0
    finally:
        child.kill()
        child.wait()
    assert child.pid not in process_tree(os.getpid())


def test_cpu_use_splits_a_busy_child_from_this_process_and_the_machine() -> None:
    from harness.procfs import CpuSnapshot, cpu_use

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        before = CpuSnapshot.take(child.pid)
        time.sleep(0.5)
        after = CpuSnapshot.take(child.pid)
    finally:
        child.kill()
        child.wait()
    use = cpu_use(before, after)
    assert use.tree is not None and use.tree > 0.05  # the spinning child, not us
    assert use.tree_by_process == [use.tree]
    assert 0.0 <= use.own < use.tree
    assert use.other >= 0.0
    assert cpu_use(before, after, wall=1.0).tree == (after.tree[child.pid] - before.tree[child.pid])
    assert CpuSnapshot.take().tree == {}
