"""Agreement checks done once per run and reused by every worker of that run.

Checking the dense runtime against the signature's answers on the 10,000 test images at
every batch regime (:mod:`runtime.agreement`) takes about 0.8 s, and every worker would
spend it on the same files with the same code, libraries and thread settings, on the
same machine, to reach the same verdict. So ``mnist-serve`` runs the check for the
versions it is about to serve in a process of its own while BentoML starts (its second
core is idle then), and records the verdict in the run directory. A worker that loaded
a version whose record names exactly what it would check (the digests of the weights,
of the stored answers and of the test images, the batch sizes, the tolerance, this code,
NumPy and its BLAS, the BLAS thread count, the interpreter) takes the record's verdict;
any difference and it checks for itself. A worker that finds a check announced but not
recorded yet waits for it, up to :data:`PENDING_WAIT_S`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PENDING_WAIT_S = 5.0
"""Longest a worker waits for an announced check (one killed before recording leaves its
announcement behind; the worker then checks for itself)."""
POLL_S = 0.01
_CODE = ("agreement.py", "dense.py", "checks.py")


def environment() -> dict[str, Any]:
    """What, besides the files, a check's verdict depends on."""
    import numpy as np

    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    here = Path(__file__).parent
    code = hashlib.sha256(b"".join((here / name).read_bytes() for name in _CODE)).hexdigest()
    return {
        "code_sha256": code,
        "numpy": np.__version__,
        "blas": str(blas.get("openblas configuration") or blas.get("name")),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "python": sys.executable,
    }


@dataclass(frozen=True)
class Verdict:
    problem: str | None
    """None when the candidate agreed, else how it differed."""


@dataclass(frozen=True)
class CheckRecords:
    """The verdicts of one run, one file per version, in ``directory``.

    ``wait_s`` is how long :meth:`verdict` waits for an announced check; the checker
    itself uses 0, as it is the one that would record it.
    """

    directory: Path
    wait_s: float = PENDING_WAIT_S

    def _record(self, version: int) -> Path:
        return self.directory / f"{version}.json"

    def _pending(self, version: int) -> Path:
        return self.directory / f"{version}.pending"

    def announce(self, versions: Iterable[int]) -> None:
        """Say that checks of ``versions`` are under way (before the checker starts)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for version in versions:
            self._pending(version).touch()

    def done(self, versions: Iterable[int]) -> None:
        for version in versions:
            self._pending(version).unlink(missing_ok=True)

    def record(self, version: int, key: dict[str, Any], problem: str | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{version}.{os.getpid()}.json"
        partial.write_text(json.dumps({"key": key, "problem": problem}, sort_keys=True))
        partial.replace(self._record(version))  # atomic: a reader sees all of it or nothing

    def verdict(self, version: int, key: dict[str, Any]) -> Verdict | None:
        """The recorded verdict of a check of exactly ``key``, if there is one."""
        deadline = time.monotonic() + self.wait_s
        path = self._record(version)
        while not path.exists() and self._pending(version).exists():
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        problem = stored.get("problem")
        if problem is not None and not isinstance(problem, str):
            return None
        return Verdict(problem)
