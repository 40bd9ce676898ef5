"""A step load for Locust: users rise in steps, and every step is measured on its own.

Loaded beside the user classes (``locust -f load/locustfile.py,load/stepload.py``), it
adds ``StepLoadShape``, which holds each user count of ``--step-load-users`` for
``--step-load-seconds``, and a recorder that measures each step after ``--step-load-settle``
(new users connect and the batcher settles): responses by outcome (passed, shed with 429,
connection errors and timeouts, 5xx, other failures), latency percentiles, images, and the
CPU of Locust, of the server's process tree (``--step-load-server-pid``) and of the rest of the
machine, read as ``make bench`` reads them. The steps go to ``--step-load-file`` (JSON) as each
ends, so a run cut short keeps what it measured.

``--step-load-weights InteractiveUser=8,BatchUser=1`` is the mix: only the user classes
named, with these weights, from any locustfile loaded (without it, the locustfiles' own
mix). Images are counted from the request context key ``images``; a request without it
counts as one image.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import numpy as np
from locust import LoadTestShape, events
from locust.env import Environment

from harness.procfs import CpuSnapshot, cpu_use
from load.steps import StepPlan, StepRecord, parse_mix

log = logging.getLogger("load.stepload")


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("Step load (capacity runs)")
    group.add_argument("--step-load-users", default="", help="users of each step, e.g. 2,4,8,16")
    group.add_argument("--step-load-seconds", type=float, default=10.0, help="length of each step")
    group.add_argument(
        "--step-load-settle",
        type=float,
        default=-1.0,
        help="unmeasured start of each step (default: a quarter of the step)",
    )
    group.add_argument("--step-load-file", default="", help="write the measured steps here (JSON)")
    group.add_argument(
        "--step-load-level",
        action="store_true",
        help="allow steps of equal users (the back-to-back windows of a soak run)",
    )
    group.add_argument("--step-load-server-pid", type=int, default=0, help="server to read CPU of")
    group.add_argument(
        "--step-load-weights", default="", help="the mix: Name=weight,... (only these classes)"
    )


@dataclass
class _Window:
    """Responses completed while one step is measured."""

    step: int
    users: int
    cpu: CpuSnapshot
    latencies: list[float] = field(default_factory=list)
    by_name: dict[str, list[float]] = field(default_factory=dict)
    ok: int = 0
    shed: int = 0
    shed_retry_after: int = 0
    connection_errors: int = 0
    server_errors: int = 0
    other_errors: int = 0
    images: int = 0

    def add(
        self, name: str, milliseconds: float, response: Any, context: Any, failed: bool
    ) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        if status == 429:
            self.shed += 1
            headers = getattr(response, "headers", None) or {}
            self.shed_retry_after += headers.get("Retry-After") is not None
            return
        self.latencies.append(milliseconds)
        self.by_name.setdefault(name, []).append(milliseconds)
        if not failed:
            self.ok += 1
            images = context.get("images") if isinstance(context, dict) else None
            self.images += images if isinstance(images, int) else 1
        elif status == 0:
            self.connection_errors += 1
        elif status >= 500:
            self.server_errors += 1
        else:
            self.other_errors += 1

    def close(
        self, cpu: CpuSnapshot, users_running: int, users_by_class: dict[str, int]
    ) -> StepRecord:
        use = cpu_use(self.cpu, cpu)
        answered = np.asarray(self.latencies)

        def pct(q: float) -> float | None:
            return round(float(np.percentile(answered, q)), 2) if answered.size else None

        return StepRecord(
            step=self.step,
            users=self.users,
            users_running=users_running,
            seconds=round(cpu.at - self.cpu.at, 3),
            requests=len(self.latencies) + self.shed,
            ok=self.ok,
            shed=self.shed,
            shed_retry_after=self.shed_retry_after,
            connection_errors=self.connection_errors,
            server_errors=self.server_errors,
            other_errors=self.other_errors,
            images=self.images,
            p50_ms=pct(50),
            p95_ms=pct(95),
            p99_ms=pct(99),
            max_ms=round(float(answered.max()), 2) if answered.size else None,
            server_cpu=None if use.tree is None else round(use.tree, 3),
            server_cpu_busiest=round(use.tree_by_process[0], 3) if use.tree_by_process else None,
            generator_cpu=round(use.own, 3),
            other_cpu=round(use.other, 3),
            users_by_class=users_by_class,
            by_name={
                name: {"requests": len(v), "p99_ms": round(float(np.percentile(v, 99)), 2)}
                for name, v in sorted(self.by_name.items())
            },
        )


def _sleep_until(deadline: float) -> None:
    # gevent's timers run on the loop's cached clock, which can lag behind: check the
    # real clock and sleep again rather than open or close a window early.
    while (left := deadline - time.perf_counter()) > 0:
        gevent.sleep(min(left, 0.5))


class StepRecorder:
    """Opens and closes each step's window on the shape's clock and keeps the records."""

    def __init__(self, environment: Environment, plan: StepPlan, start: float) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.plan = plan
        self.start = start
        self.server_pid: int | None = getattr(options, "step_load_server_pid", 0) or None
        self.path = Path(options.step_load_file) if options and options.step_load_file else None
        self.window: _Window | None = None
        self.steps: list[StepRecord] = []
        self.finished = False

    def run(self) -> None:
        try:
            for index, users in enumerate(self.plan.users):
                self._measure(index, users)
        finally:
            self.finished = True

    def _measure(self, index: int, users: int) -> None:
        runner = self.environment.runner
        opens, closes = (self.start + offset for offset in self.plan.window(index))
        _sleep_until(opens)
        # The shape applies a step on its next tick (Locust ticks once a second) and
        # spawning takes a while: measure only once every user of the step is running.
        while runner is not None and runner.user_count != users and time.perf_counter() < closes:
            gevent.sleep(0.05)
        self.window = _Window(index + 1, users, CpuSnapshot.take(self.server_pid))
        _sleep_until(closes)
        window, self.window = self.window, None
        running = runner.user_count if runner is not None else 0
        by_class = dict(runner.user_classes_count) if runner is not None else {}
        record = window.close(CpuSnapshot.take(self.server_pid), running, by_class)
        self.steps.append(record)
        self._write()
        log.info(
            "step %d: %d users, %.0f req/s passed, p99 %s ms, errors %d, shed %d, server CPU %s",
            record.step,
            record.users,
            record.ok_rps,
            record.p99_ms,
            record.errors,
            record.shed,
            record.server_cpu,
        )

    def _write(self) -> None:
        if self.path is None:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps([s.to_dict() for s in self.steps], indent=1) + "\n")
        os.replace(temporary, self.path)


PLAN: StepPlan | None = None
RECORDER: StepRecorder | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global PLAN
    options = environment.parsed_options
    if options is None:
        return
    settle = options.step_load_settle
    try:
        PLAN = StepPlan.parse(
            options.step_load_users,
            options.step_load_seconds,
            None if settle < 0 else settle,
            level=options.step_load_level,
        )
        weights = parse_mix(options.step_load_weights)
    except ValueError as exc:
        raise SystemExit(f"step load: {exc}") from None
    # This runs after the locustfile's own init listener (that file is loaded first), so
    # a mix given here replaces the one its weight options made.
    if not weights:
        return
    classes = environment.available_user_classes or {
        user_class.__name__: user_class for user_class in environment.user_classes
    }
    if unknown := sorted(set(weights) - set(classes)):
        raise SystemExit(f"--step-load-weights: no user class {', '.join(unknown)} in this run")
    for name, weight in weights.items():
        classes[name].weight = weight
    environment.user_classes[:] = [classes[n] for n, w in weights.items() if w > 0]
    if not environment.user_classes:
        raise SystemExit("--step-load-weights: every user class has weight 0")


@events.request.add_listener
def _on_request(
    name: str,
    response_time: float,
    response: Any = None,
    context: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    window = RECORDER.window if RECORDER is not None else None
    if window is not None:
        window.add(name, response_time, response, context, exception is not None)


class StepLoadShape(LoadTestShape):
    """Holds each user count of ``--step-load-users`` for ``--step-load-seconds``, then stops."""

    def tick(self) -> tuple[int, float] | None:
        global RECORDER
        if RECORDER is None:
            if self.runner is None or PLAN is None:
                return None
            RECORDER = StepRecorder(self.runner.environment, PLAN, start=self.start_time)
            gevent.spawn(RECORDER.run)
        if RECORDER.finished:
            return None
        plan = RECORDER.plan
        index = min(int(self.get_run_time() // plan.seconds), len(plan.users) - 1)
        return plan.users[index], plan.spawn_rate(index)
