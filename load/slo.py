"""A capacity run's steps judged against a service level objective, and the verdict.

Pure: the step records (:class:`load.steps.StepRecord`) come from :mod:`load.stepload`,
one per user count; the verdict goes to :mod:`load.capacity_report`. A step meets the
objective when its p99 latency, its error ratio and its shed ratio are all within the
limits. Shed requests (HTTP 429, the service's own load shedding) are counted apart from
errors: refusing work it cannot do in time is how a service should degrade, so they do
not count against the error budget, but they have a limit of their own, or a service
that sheds half its traffic would "meet" a latency objective at any load. Latency
percentiles leave the shed requests out for the same reason: they are answered at once
and would flatter the percentiles of the work actually done.
"""

from __future__ import annotations

from dataclasses import dataclass

from load.steps import StepRecord

# Locust runs in one gevent thread: near a full core it, not the server, sets the pace.
GENERATOR_SATURATED_CPU = 0.9
# Other processes keeping this much of the machine busy take CPU the server would use.
BUSY_NEIGHBOURS_CPU = 0.5


@dataclass(frozen=True)
class Slo:
    """The objective every step is held to."""

    p99_ms: float
    max_error_ratio: float
    max_shed_ratio: float


@dataclass(frozen=True)
class Breach:
    """One way a step missed the objective."""

    kind: str
    """``latency``, ``errors``, ``shedding`` or ``no answers``."""
    detail: str


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def judge(step: StepRecord, slo: Slo) -> list[Breach]:
    """Every way ``step`` missed ``slo``; empty when it met it."""
    if step.requests == 0:
        return [Breach("no answers", "no response completed in the window")]
    breaches = []
    if step.p99_ms is None:
        breaches.append(Breach("latency", "no request was answered (all shed)"))
    elif step.p99_ms > slo.p99_ms:
        breaches.append(Breach("latency", f"p99 {step.p99_ms:,.0f} ms > {slo.p99_ms:,.0f} ms"))
    if step.error_ratio > slo.max_error_ratio:
        breaches.append(
            Breach("errors", f"errors {_pct(step.error_ratio)} > {_pct(slo.max_error_ratio)}")
        )
    if step.shed_ratio > slo.max_shed_ratio:
        breaches.append(
            Breach("shedding", f"shed {_pct(step.shed_ratio)} > {_pct(slo.max_shed_ratio)}")
        )
    return breaches


@dataclass(frozen=True)
class Verdict:
    """The answer of a capacity run."""

    capacity: StepRecord | None
    """The highest step below the break that met the objective (None: none did)."""
    breaking: StepRecord | None
    """The first step that missed it, confirmed by the next (None: the knee lies beyond
    the run)."""
    breaches: list[Breach]
    """How the breaking step missed the objective."""
    degradation: str
    """Past the break: ``shed`` (429s, errors within budget), ``queued`` (no errors, no
    shedding: latency only), ``errors`` (timeouts, 5xx or broken answers beyond budget),
    or ``none`` (it never broke)."""
    graceful: bool | None
    """True when the service shed load with 429s past the break without exceeding the
    error budget; None when it never broke."""
    lines: list[str]
    """The verdict in words, one finding per line."""
    notes: list[str]
    """What makes the figures less trustworthy (a saturated generator, noise)."""


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _degradation(past: list[StepRecord], slo: Slo) -> tuple[str, bool | None, str]:
    if not past:
        return "none", None, ""
    failing = [s for s in past if s.error_ratio > slo.max_error_ratio]
    if failing:
        worst = max(failing, key=lambda s: s.error_ratio)
        kinds = [
            f"{count:,} {label}"
            for count, label in (
                (worst.connection_errors, "timeouts or connection errors"),
                (worst.server_errors, "5xx"),
                (worst.other_errors, "other failures"),
            )
            if count
        ]
        detail = (
            f"past the knee: NOT graceful: {', '.join(kinds)} at {worst.users} users"
            f" (errors {_pct(worst.error_ratio)} > {_pct(slo.max_error_ratio)})"
        )
        return "errors", False, detail
    shed = sum(s.shed for s in past)
    if shed:
        requests = sum(s.requests for s in past)
        with_header = sum(s.shed_retry_after for s in past)
        detail = (
            f"past the knee: degraded gracefully: shed {_pct(shed / requests)} of requests"
            f" with 429 ({with_header:,} of {shed:,} with Retry-After), errors within"
            f" {_pct(slo.max_error_ratio)}"
        )
        return "shed", True, detail
    top = past[-1]
    p99 = "n/a" if top.p99_ms is None else f"{top.p99_ms:,.0f} ms"
    detail = (
        "past the knee: no errors, but no load shedding either: requests queued"
        f" (p99 {p99} at {top.users} users); clients that do not wait would time out"
    )
    return "queued", False, detail


def verdict(steps: list[StepRecord], slo: Slo) -> Verdict:
    """Capacity, breaking step, and how the service behaved past it.

    The break is the first missed step that the next step misses too (or the last step):
    one missed step followed by a met one, at more load, is noise on a shared machine,
    not a knee. It is named in the notes, and the capacity is the highest step that met
    the objective below the break.
    """
    judged = [(step, judge(step, slo)) for step in steps]
    missed = [bool(breaches) for _, breaches in judged]
    first_bad = next(
        (i for i, m in enumerate(missed) if m and (i + 1 == len(missed) or missed[i + 1])),
        None,
    )
    below = judged if first_bad is None else judged[:first_bad]
    met_below = [step for step, breaches in below if not breaches]
    capacity = met_below[-1] if met_below else None
    breaking: StepRecord | None = None
    breaches: list[Breach] = []
    past: list[StepRecord] = []
    if first_bad is not None:
        breaking, breaches = judged[first_bad]
        past = steps[first_bad:]
    degradation, graceful, degradation_line = _degradation(past, slo)

    lines = []
    if capacity is not None:
        lines.append(
            f"capacity: {capacity.ok_rps:,.0f} req/s ({capacity.images_per_s:,.0f} images/s)"
            f" at p99 <= {slo.p99_ms:,.0f} ms with {capacity.users} users"
            f" (step {capacity.step}: p99 {capacity.p99_ms or 0:,.0f} ms,"
            f" errors {_pct(capacity.error_ratio)}, shed {_pct(capacity.shed_ratio)},"
            f" server CPU {_cpu(capacity.server_cpu)})"
        )
    elif steps:
        lines.append("capacity: none: no step below the break met the SLO")
    else:
        lines.append("capacity: none: no step was measured")
    if breaking is not None:
        kinds = sorted({b.kind for b in breaches})
        lines.append(
            f"breaks at step {breaking.step}, {breaking.users} users, on {' and '.join(kinds)}:"
            f" {'; '.join(b.detail for b in breaches)}"
        )
    elif steps:
        lines.append(
            f"did not break up to {steps[-1].users} users: the knee lies beyond the last step"
        )
    if degradation_line:
        lines.append(degradation_line)

    notes = []
    for label, step in (("capacity", capacity), ("breaking", breaking)):
        if step is not None and step.generator_cpu >= GENERATOR_SATURATED_CPU:
            notes.append(
                f"Locust used {step.generator_cpu:.2f} of a core at the {label} step: the"
                " load generator may be the limit, not the service"
            )
        if step is not None and step.other_cpu >= BUSY_NEIGHBOURS_CPU:
            notes.append(
                f"other processes kept {step.other_cpu:.2f} cores busy at the {label} step:"
                " the knee is this machine's at that moment, not the service's alone"
            )
    blips = [step.users for step, breaches in below if breaches]
    if blips:
        notes.append(
            "missed the SLO at " + ", ".join(str(u) for u in blips) + " users but met it at"
            " the next step: taken as noise, not as the break"
        )
    if first_bad is not None:
        again = [step.users for step, breaches in judged[first_bad + 1 :] if not breaches]
        if again:
            notes.append(
                "met the SLO again after the break at "
                + ", ".join(str(u) for u in again)
                + " users: the machine is noisy or the SLO sits at the edge"
            )
    if steps and steps[-1].users_by_class:
        full = set(steps[-1].users_by_class)
        partial = [s for s in steps if {k for k, v in s.users_by_class.items() if v} < full]
        if partial:
            ran = sorted(k for k, v in partial[0].users_by_class.items() if v)
            notes.append(
                "the mix was not complete at "
                + ", ".join(str(s.users) for s in partial)
                + f" users (at {partial[0].users} only {', '.join(ran)} ran): too few"
                " users for every class of the mix, a lighter load than the later steps"
            )
    short = [s.users for s in steps if s.users_running < s.users]
    if short:
        notes.append(f"not every user was running by the end of the steps at {short} users")
    return Verdict(capacity, breaking, breaches, degradation, graceful, lines, notes)
