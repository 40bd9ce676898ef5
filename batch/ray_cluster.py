"""Joining a Ray cluster for a scoring job, or starting one on this machine for its duration.

Ray is an optional extra (``pip install 'mnist-serving[ray]'``); this module is the only
place that imports it for the first time, so the rest of ``mnist-batch`` works without it.

Three cases, decided by ``address``:

- ``None`` and Ray already initialised in this process (a test module's cluster, a
  notebook): use it, and leave it running afterwards;
- ``None`` otherwise: start a local cluster of ``num_cpus`` CPUs (``ray.init``) and stop it
  when the job ends;
- ``"auto"``, ``HOST:PORT`` or ``ray://HOST:PORT``: join that cluster as a driver (the
  KubeRay ``RayJob`` runs ``--ray-address auto`` on the head node) and disconnect after.

Usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says otherwise: the machines
this runs on have no internet, and a batch job has no business reporting home.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType, TracebackType
from typing import Any

from mnist_core.errors import MnistError

USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
LOOPBACK = "127.0.0.2"
"""Where a cluster started for one job listens for its own processes. Ray replaces
127.0.0.1 by the machine's network address, so another address of the loopback range
keeps a one-machine job's traffic on this machine."""
INSTALL_HINT = "install the ray extra: pip install -c constraints.txt -e '.[ray]'"


class RayUnavailable(MnistError):
    """Ray is not installed, or the cluster cannot be reached."""

    reason = "ray_unavailable"


def import_ray() -> ModuleType:
    """``import ray`` with usage statistics off; :class:`RayUnavailable` if not installed."""
    os.environ.setdefault(USAGE_STATS_ENV, "0")
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            f"--engine ray needs Ray, which is not installed; {INSTALL_HINT}"
        ) from None
    return ray


class RayCluster:
    """A connection to a Ray cluster for one job: ``with RayCluster(...) as ray: ...``."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.started = False
        """True when this job initialised Ray (and so shuts it down at the end)."""
        self.ray = import_ray()

    def connect(self) -> ModuleType:
        ray = self.ray
        if self.address is None and ray.is_initialized():
            return ray
        options: dict[str, Any] = {
            # Actors' output (TensorFlow's start-up chatter) would tear through the
            # progress bar; failures come back as exceptions, and the logs stay in the
            # session's log folder.
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if self.address is None:
            options.update(
                num_cpus=self.num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                _node_ip_address=LOOPBACK,
            )
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local cluster"
            raise RayUnavailable(f"cannot start or join Ray ({where}): {exc}") from None
        self.started = True
        return ray

    def cpus(self) -> float:
        """CPUs the cluster has now (an autoscaling cluster may grow later)."""
        return float(self.ray.cluster_resources().get("CPU", 0.0))

    def close(self) -> None:
        if self.started:
            self.started = False
            self.ray.shutdown()

    def __enter__(self) -> ModuleType:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
