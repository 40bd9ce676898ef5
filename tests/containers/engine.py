"""podman, driven through its command line as a user would, for the container tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# containers.conf on this kind of machine (CI writes it): default ulimits cannot be raised
# here and crun fails on the cgroup layout, so runc without default ulimits.
CONF_HINT = (
    "podman needs /etc/containers/containers.conf with [containers] default_ulimits = [] "
    'and [engine] runtime = "runc" here; .ci/run writes it'
)


@dataclass(frozen=True)
class Podman:
    path: str

    @classmethod
    def require(cls) -> Podman:
        path = shutil.which("podman")
        if path is None:
            pytest.fail("podman is not installed: apt-get install podman runc; .ci/run does")
        engine = cls(path)
        info = engine.run("info", "--format", "{{.Host.OCIRuntime.Name}}")
        if info.returncode != 0:
            pytest.fail(f"podman info failed: {info.stderr[-2000:]}\n{CONF_HINT}")
        return engine

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def run_ok(self, *args: str, timeout: float = 300) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result.stdout

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = json.loads(self.run_ok(kind, "inspect", name))
        assert isinstance(found, dict)
        return found

    def make_image(self, image: str) -> subprocess.CompletedProcess[str]:
        """The README's offline build: ``make image OFFLINE=1`` with podman."""
        return subprocess.run(
            ["make", "--no-print-directory", "image", "OFFLINE=1", f"IMAGE={image}"],
            cwd=REPO,
            env={**os.environ, "ENGINE": self.path},
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )

    def remove(self, container: str) -> None:
        self.run("rm", "--force", "--time", "0", container, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Polls ``check`` until it holds or ``timeout`` seconds pass (a bounded loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
