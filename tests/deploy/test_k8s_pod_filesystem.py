"""The service runs as the pods run it: a read-only root, writable only where emptyDirs are.

deploy/k8s/base/deployment.yaml sets ``readOnlyRootFilesystem`` and mounts emptyDirs at
``/tmp`` and at ``$HOME`` only. Here the real ``mnist-serve`` starts in a mount namespace
of its own (``unshare``, root only) whose root is remounted read-only, with one tmpfs
for ``TMPDIR`` and ``HOME``: it must become ready and answer predictions. Anything that
writes elsewhere (the literal ``/tmp`` too, which is read-only here) fails the start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from harness import launch

SCRIPT = """
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=1777,size=512m tmpfs "$SCRATCH"
mkdir "$SCRATCH/tmp" "$SCRATCH/home"
mount -o remount,bind,ro /
if touch /mnist-rootfs-probe 2>/dev/null; then
  rm -f /mnist-rootfs-probe; echo "root is writable" >&2; exit 3
fi
export TMPDIR="$SCRATCH/tmp" HOME="$SCRATCH/home"
exec "$@"
"""


def _can_unshare() -> str | None:
    """Why a private read-only mount namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (CI runs as root)"
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount is not allowed here: {probe.stderr.strip()}"
    return None


def test_service_serves_from_a_read_only_root(trained_model_root: Path, tmp_path: Path) -> None:
    reason = _can_unshare()
    if reason:
        pytest.skip(f"the read-only root check did not run: {reason}")
    scratch = tmp_path / "writable"
    scratch.mkdir()
    port = launch.free_port()
    env = {
        **launch.service_env(trained_model_root, port, workers=2),
        "SCRATCH": str(scratch),
    }
    command = [
        "unshare", "--mount", "--propagation", "private",
        "bash", "-c", SCRIPT, "mnist-serve", *launch.serve_command(),
    ]  # fmt: skip
    server = launch.spawn(command, port=port, env=env)
    try:
        launch.wait_ready(server, timeout=120)
        launch.wait_serving(server, timeout=120)
        body = {"images": [[0] * 784]}
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["label"] in range(10)
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200
    finally:
        launch.stop(server)
    # The namespace's tmpfs went with it: nothing reached the real folder.
    assert list(scratch.iterdir()) == []
