"""``/proc`` readings of a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys

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
