"""The run directory ``mnist-serve`` shares with its workers: how they tell each other things.

``mnist-serve`` makes a fresh directory per run and names it to the workers in
``MNIST_SERVE_RUN_DIR``. Files, not sockets: each is written once or atomically, and
read with a ``stat``, so a worker that restarts finds the current state.

    failure            a worker that could not load any version writes why; the server stops
    ready/<pid>        a worker serves
    versions.json      explicit version loads and unloads (service.repository)
    checks/            derived runtimes' agreement verdicts, made once a run (runtime.checks)
    draining           shutdown began: readiness says 503, requests are still served
    stopping           the drain delay is over: new requests get 503
    inflight/<pid>     while stopping, each worker's count of requests still in flight
    prometheus/        BentoML's metrics of this run
    tasks.db           BentoML's async-job store of this run
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUN_DIR_ENV = "MNIST_SERVE_RUN_DIR"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def from_env(cls) -> RunDir | None:
        value = os.environ.get(RUN_DIR_ENV)
        return cls(Path(value)) if value else None

    def create(self) -> None:
        for folder in (self.ready_dir, self.inflight_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def failure(self) -> Path:
        return self.path / "failure"

    @property
    def ready_dir(self) -> Path:
        return self.path / "ready"

    @property
    def checks_dir(self) -> Path:
        return self.path / "checks"

    @property
    def control_file(self) -> Path:
        return self.path / "versions.json"

    @property
    def draining(self) -> Path:
        return self.path / "draining"

    @property
    def stopping(self) -> Path:
        return self.path / "stopping"

    @property
    def inflight_dir(self) -> Path:
        return self.path / "inflight"

    @property
    def prometheus_dir(self) -> Path:
        return self.path / "prometheus"

    @property
    def task_store(self) -> Path:
        return self.path / "tasks.db"

    def ready_workers(self) -> set[int]:
        return {int(p.name) for p in self.ready_dir.iterdir() if p.name.isdigit()}

    def report_inflight(self, pid: int, count: int) -> None:
        """Atomically, so the server never reads half a number."""
        temporary = self.inflight_dir / f".{pid}"
        temporary.write_text(str(count))
        temporary.replace(self.inflight_dir / str(pid))

    def inflight(self, pids: set[int]) -> dict[int, int | None]:
        """Each live worker's last report (None: not reported yet)."""
        found: dict[int, int | None] = {}
        for pid in pids:
            try:
                found[pid] = int((self.inflight_dir / str(pid)).read_text())
            except (OSError, ValueError):
                found[pid] = None
        return found
