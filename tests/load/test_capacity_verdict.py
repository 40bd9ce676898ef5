"""The capacity verdict (load.slo) and the step plan (load.steps), on step records.

The records are written out here rather than measured: each case is a shape of curve
(a knee, shedding, failing, noise) whose verdict is known, so the rules themselves are
what is tested. The measured runs are in test_capacity.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from load.slo import Slo, judge, verdict
from load.steps import StepPlan, StepRecord, parse_mix

SLO = Slo(p99_ms=50.0, max_error_ratio=0.001, max_shed_ratio=0.01)


def step(users: int, p99: float | None, **counts: Any) -> StepRecord:
    """A 10 s step of ``users`` with 100 requests per user; ``counts`` override outcomes."""
    requests = counts.pop("requests", 100 * users)
    failed = sum(counts.get(k, 0) for k in ("connection_errors", "server_errors", "other_errors"))
    shed = counts.get("shed", 0)
    fields: dict[str, Any] = {
        "step": users,
        "users": users,
        "users_running": users,
        "seconds": 10.0,
        "requests": requests,
        "ok": requests - failed - shed,
        "shed": 0,
        "shed_retry_after": 0,
        "connection_errors": 0,
        "server_errors": 0,
        "other_errors": 0,
        "images": requests - failed - shed,
        "p50_ms": None if p99 is None else p99 / 3,
        "p95_ms": None if p99 is None else p99 / 1.5,
        "p99_ms": p99,
        "max_ms": None if p99 is None else p99 * 1.2,
        "server_cpu": 1.0,
        "server_cpu_busiest": 0.5,
        "generator_cpu": 0.3,
        "other_cpu": 0.1,
    }
    fields.update(counts)
    return StepRecord(**fields)


def test_a_step_meets_the_slo_only_within_every_limit() -> None:
    assert judge(step(4, 49.0), SLO) == []
    assert [b.kind for b in judge(step(4, 51.0), SLO)] == ["latency"]
    assert [b.kind for b in judge(step(4, 10.0, server_errors=2), SLO)] == ["errors"]
    assert [b.kind for b in judge(step(4, 10.0, shed=40), SLO)] == ["shedding"]
    assert [b.kind for b in judge(step(4, None, shed=400), SLO)] == ["latency", "shedding"]
    assert [b.kind for b in judge(step(4, None, requests=0), SLO)] == ["no answers"]
    both = judge(step(4, 80.0, connection_errors=5), SLO)
    assert [b.kind for b in both] == ["latency", "errors"]
    assert "p99 80 ms > 50 ms" in both[0].detail


def test_shed_requests_are_not_errors() -> None:
    # 4 of 400 shed (1%, at the limit) and no failure: met, with a zero error ratio.
    shedding = step(4, 20.0, shed=4)
    assert shedding.error_ratio == 0.0
    assert shedding.shed_ratio == pytest.approx(0.01)
    assert judge(shedding, SLO) == []


def test_the_knee_is_the_last_step_before_the_first_missed_one() -> None:
    steps = [step(4, 10.0), step(8, 20.0), step(12, 45.0), step(16, 70.0), step(20, 120.0)]
    result = verdict(steps, SLO)
    assert result.capacity is steps[2]
    assert result.breaking is steps[3]
    assert [b.kind for b in result.breaches] == ["latency"]
    assert result.degradation == "queued"
    assert result.graceful is False
    assert result.lines[0].startswith("capacity: 120 req/s (120 images/s) at p99 <= 50 ms")
    assert "with 12 users" in result.lines[0]
    assert result.lines[1].startswith("breaks at step 16, 16 users, on latency")
    assert "no load shedding" in result.lines[2]
    assert result.notes == []


def test_shedding_past_the_knee_is_graceful() -> None:
    steps = [
        step(4, 10.0),
        step(8, 30.0),
        step(12, 40.0, shed=120, shed_retry_after=120),
        step(16, 45.0, shed=480, shed_retry_after=480),
    ]
    result = verdict(steps, SLO)
    assert result.capacity is steps[1]
    assert result.breaking is steps[2]
    assert [b.kind for b in result.breaches] == ["shedding"]
    assert result.degradation == "shed"
    assert result.graceful is True
    assert "degraded gracefully" in result.lines[2]
    assert "600 of 600 with Retry-After" in result.lines[2]


def test_timeouts_and_5xx_past_the_knee_are_not_graceful() -> None:
    steps = [
        step(4, 10.0),
        step(8, 90.0, shed=10),
        step(12, 900.0, connection_errors=30, server_errors=6),
    ]
    result = verdict(steps, SLO)
    assert result.capacity is steps[0]
    assert result.breaking is steps[1]
    assert result.degradation == "errors"
    assert result.graceful is False
    assert "30 timeouts or connection errors, 6 5xx at 12 users" in result.lines[2]


def test_one_missed_step_that_the_next_meets_is_noise_not_the_knee() -> None:
    steps = [step(4, 10.0), step(8, 80.0), step(12, 30.0), step(16, 90.0), step(20, 95.0)]
    result = verdict(steps, SLO)
    assert result.capacity is steps[2]
    assert result.breaking is steps[3]
    assert any("missed the SLO at 8 users" in note for note in result.notes)


def test_a_run_that_never_breaks_says_the_knee_lies_beyond() -> None:
    steps = [step(4, 10.0), step(8, 11.0)]
    result = verdict(steps, SLO)
    assert result.capacity is steps[1]
    assert result.breaking is None
    assert result.degradation == "none"
    assert result.graceful is None
    assert "did not break up to 8 users" in result.lines[1]


def test_no_capacity_when_the_first_steps_miss() -> None:
    result = verdict([step(4, 60.0), step(8, 70.0)], SLO)
    assert result.capacity is None
    assert result.breaking is not None and result.breaking.users == 4
    assert result.lines[0] == "capacity: none: no step below the break met the SLO"
    # The last step alone is a break: there is no next step to contradict it.
    assert verdict([step(4, 10.0), step(8, 70.0)], SLO).breaking is not None


def test_a_saturated_generator_or_busy_neighbours_are_noted() -> None:
    steps = [step(4, 10.0, generator_cpu=0.95), step(8, 70.0, other_cpu=1.2)]
    notes = verdict(steps, SLO).notes
    assert any("Locust used 0.95 of a core at the capacity step" in n for n in notes)
    assert any("other processes kept 1.20 cores busy at the breaking step" in n for n in notes)


def test_steps_with_too_few_users_for_the_whole_mix_are_noted() -> None:
    steps = [
        step(2, 10.0, users_by_class={"InteractiveUser": 2}),
        step(8, 20.0, users_by_class={"InteractiveUser": 6, "BatchUser": 1, "Upload": 1}),
        step(16, 30.0, users_by_class={"InteractiveUser": 13, "BatchUser": 2, "Upload": 1}),
    ]
    (note,) = verdict(steps, SLO).notes
    assert note.startswith("the mix was not complete at 2 users (at 2 only InteractiveUser ran)")


def test_step_records_round_trip_and_rates() -> None:
    record = step(8, 20.0, shed=8, other_errors=8, images=7_840, seconds=4.0)
    assert StepRecord.from_dict(record.to_dict()) == record
    assert record.rps == 200.0
    assert record.ok_rps == 196.0
    assert record.images_per_s == 1_960.0
    assert record.error_ratio == record.shed_ratio == 0.01


def test_the_plan_measures_each_step_after_it_settles() -> None:
    plan = StepPlan.parse("2,4,8", 4.0)
    assert plan.users == (2, 4, 8)
    assert plan.settle == 1.0
    assert plan.window(0) == (1.0, 4.0)
    assert plan.window(2) == (9.0, 12.0)
    # New users join over half the settling time: 2 more in 0.5 s.
    assert plan.spawn_rate(1) == 4.0
    assert StepPlan.parse("1,2", 2.0, settle=0.0).spawn_rate(1) == 10.0


@pytest.mark.parametrize(
    ("users", "seconds", "settle", "message"),
    [
        ("", 4.0, None, "positive"),
        ("0,2", 4.0, None, "positive"),
        ("4,2", 4.0, None, "must rise"),
        ("2,2", 4.0, None, "must rise"),
        ("2,4", 0.5, None, "at least 1 s"),
        ("2,4", 4.0, 4.0, "shorter than the step"),
    ],
)
def test_a_plan_refuses_steps_it_cannot_measure(
    users: str, seconds: float, settle: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StepPlan.parse(users, seconds, settle)


def test_the_mix_is_names_and_weights() -> None:
    assert parse_mix("InteractiveUser=8, BatchUser=1") == {"InteractiveUser": 8, "BatchUser": 1}
    assert parse_mix("") == {}
    for bad in ("InteractiveUser", "InteractiveUser=x", "=3", "A=-1"):
        with pytest.raises(ValueError, match="is not Name=weight"):
            parse_mix(bad)
