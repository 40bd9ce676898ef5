"""Stopping ``mnist-serve`` without dropping requests: drain, finish, then exit.

On SIGTERM (or Ctrl-C):

1. readiness (``/readyz`` and the protocols' readiness) says 503 at once, while requests
   are still served for ``MNIST_DRAIN_DELAY_S``: load balancers see the replica leave
   before its listener closes (Kubernetes keeps routing to a pod for a moment after
   SIGTERM);
2. then new requests get 503 (``shutting_down``) and the requests in flight get up to
   ``MNIST_GRACE_S`` to finish; each worker reports its count (:mod:`service.lifecycle`);
3. the workers stop (unloading their versions) and the server exits 0; past the grace
   time it stops them anyway and exits 1, saying how many requests it cut.

A second signal skips what is left of the drain delay and the grace time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType

from .config import ServiceSettings
from .rundir import RunDir

POLL_S = 0.05
EXIT_CUT = 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Shutdown:
    """The signal handler and the drain sequence of one server run."""

    def __init__(self, settings: ServiceSettings, run_dir: RunDir) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        """(Re)install the handlers: the process manager sets its own while it starts."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) != self._on_signal:
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            self.hurry.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.run_dir.draining.touch()  # readiness drops now, not at the next poll
        self.requested.set()

    def drain(self) -> int:
        """Steps 1 and 2; the exit status. The caller then stops the workers."""
        settings, run = self.settings, self.run_dir
        delay, grace = settings.drain_delay_s, settings.grace_s
        _say(f"{self.signal_name}: readiness is 503; serving on for {delay:g} s (drain delay)")
        self.hurry.wait(delay)
        run.stopping.touch()
        workers = {pid for pid in run.ready_workers() if _alive(pid)}
        _say(f"taking no new requests; up to {grace:g} s for those in flight to finish")
        deadline = time.monotonic() + grace
        counts: dict[int, int | None] = {}
        while True:
            workers = {pid for pid in workers if _alive(pid)}
            counts = run.inflight(workers)
            if all(count == 0 for count in counts.values()):
                _say("every request in flight finished; stopping")
                return 0
            if time.monotonic() >= deadline or self.hurry.is_set():
                break
            time.sleep(POLL_S)
        cut = sum(count or 0 for count in counts.values())
        _say(
            f"grace time of {grace:g} s is over with {cut} request(s) still in flight; "
            "stopping anyway: they are cut"
        )
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return EXIT_CUT


def _say(message: str) -> None:
    print(f"mnist-serve: {message}", file=sys.stderr, flush=True)
