"""A worker keeps freed heap while requests arrive, and gives it back once it idles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter each time: glibc's settings are per process and would
# otherwise change the test runner's own allocator. It churns through the temporaries
# of a large request (three 8 MB blocks, allocated, written and freed) five times and
# counts the page faults of the last four, then trims and reads resident memory.
CHURN = """
import ctypes, json, resource, sys
from service.lifecycle import keep_freed_heap_until_idle

kept = keep_freed_heap_until_idle() if sys.argv[1] == "keep" else None

def churn():
    blocks = [bytearray(8 << 20) for _ in range(3)]
    del blocks

def rss_kb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
held = rss_kb()
ctypes.CDLL(None).malloc_trim(0)
print(json.dumps({"kept": kept, "faults": faults, "held_kb": held, "trimmed_kb": rss_kb()}))
"""


def churn(mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_request_memory_is_reused_without_page_faults_and_trimmed_when_idle() -> None:
    default, kept = churn("default"), churn("keep")
    assert kept["kept"] is True
    # glibc's defaults give most of the 24 MB back on every free and fault it in again
    # (about 4,500 page faults a round). Kept, the next round reuses the same pages.
    assert default["faults"] > 4 * 3000
    assert kept["faults"] < default["faults"] / 20
    # Kept memory is really held until the trim, which hands it back.
    assert kept["held_kb"] - kept["trimmed_kb"] > 20_000
