"""Running ``mnist-batch`` from tests: in process, or as a driver process to interrupt.

Shared by the service, local and Ray batch tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from server import REPO

from batch.cli import main
from batch.journal import record_path

IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"
JOB_TIMEOUT_S = 300


@dataclass(frozen=True)
class Run:
    status: int
    output: Path
    stdout: str
    stderr: str


def run_main(args: list[str], output: Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*args, "-o", str(output), "-q"])
    return Run(status, output, out.getvalue(), err.getvalue())


def reported_accuracy(stdout: str) -> tuple[int, int]:
    match = re.search(r"^accuracy +[0-9.]+ \((\d+) of (\d+) labelled rows\)$", stdout, re.M)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def start_client(command: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def committed_rows(output: Path) -> int:
    try:
        return int(json.loads(record_path(output).read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_rows(output: Path, rows: int, process: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        done = committed_rows(output)
        if done >= rows:
            return done
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError(f"fewer than {rows} rows committed in {JOB_TIMEOUT_S} s")


@contextlib.contextmanager
def stopped_at_exit(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
