"""A capacity run's steps: the plan (users per step and when each is measured), the mix,
and what one step achieved. Pure, so the Locust side (:mod:`load.stepload`), the judge
(:mod:`load.slo`) and the command (:mod:`load.capacity`) share one definition.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepPlan:
    """Users per step, and when each step's measured window opens and closes."""

    users: tuple[int, ...]
    seconds: float
    settle: float
    level: bool = False
    """Steps of equal users allowed: the back-to-back windows of a soak run."""

    def __post_init__(self) -> None:
        if not self.users or self.users[0] < 1:
            raise ValueError("steps need one or more positive user counts")
        if any(b <= a for a, b in itertools.pairwise(self.users)) and not self.level:
            raise ValueError(f"the users of the steps must rise, got {list(self.users)}")
        # Locust's shape ticks once a second: shorter steps would be skipped.
        if self.seconds < 1:
            raise ValueError("a step lasts at least 1 s")
        if not 0 <= self.settle < self.seconds:
            raise ValueError("the settling time must be shorter than the step")

    @classmethod
    def parse(
        cls, users: str, seconds: float, settle: float | None = None, *, level: bool = False
    ) -> StepPlan:
        """From ``"2,4,8"``; the settling time defaults to a quarter of the step."""
        counts = tuple(int(u) for u in users.split(",") if u.strip())
        return cls(counts, seconds, seconds / 4 if settle is None else settle, level)

    def window(self, index: int) -> tuple[float, float]:
        """Offsets from the shape's start at which step ``index`` is measured."""
        return index * self.seconds + self.settle, (index + 1) * self.seconds

    def spawn_rate(self, index: int) -> float:
        # New users join over the first half of the settling time rather than at once:
        # connections opened in the same instant all land on whichever worker wakes first.
        added = self.users[index] - (self.users[index - 1] if index else 0)
        return max(abs(added) / max(self.settle / 2, 0.1), 1.0)


def parse_mix(text: str) -> dict[str, int]:
    """``"InteractiveUser=8,BatchUser=1"`` -> user class weights by name."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise ValueError(f"mix: {item!r} is not Name=weight")
        weights[name.strip()] = int(value)
    return weights


@dataclass(frozen=True)
class StepRecord:
    """What one step of constant users achieved over its measured window."""

    step: int
    """1-based position in the run."""
    users: int
    """Offered load: the users this step asked for (closed loop, no think time by default)."""
    users_running: int
    """Users actually running when the window closed."""
    seconds: float
    """Length of the measured window (the step minus its settling time)."""
    requests: int
    """Responses completed in the window, whatever their outcome."""
    ok: int
    """Responses that passed every check of the locustfile."""
    shed: int
    """HTTP 429 answers: the service refused the work."""
    shed_retry_after: int
    """Of those, the ones that said when to come back (a ``Retry-After`` header)."""
    connection_errors: int
    """No HTTP answer at all: timeouts, refused or reset connections."""
    server_errors: int
    """HTTP 5xx."""
    other_errors: int
    """Any other failure: another 4xx, or a 200 that broke the contract."""
    images: int
    """Images in the responses that passed."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    server_cpu: float | None
    """Cores kept busy by the server's process tree (None: not watched, e.g. a remote URL)."""
    server_cpu_busiest: float | None
    """Cores of its busiest process: near the total, one worker took all the connections."""
    generator_cpu: float
    """Cores kept busy by Locust."""
    other_cpu: float
    """Cores kept busy by everything else on the machine (neighbours' noise)."""
    users_by_class: dict[str, int] = field(default_factory=dict)
    """Running users per user class: with fewer users than the mix's total weight, the
    mix is not complete yet."""
    by_name: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per request name: ``requests`` and ``p99_ms``, to see which kind broke the latency."""

    @property
    def errors(self) -> int:
        return self.connection_errors + self.server_errors + self.other_errors

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def shed_ratio(self) -> float:
        return self.shed / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        """Every response per second, shed and failed ones included."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rps(self) -> float:
        """Achieved throughput: responses that passed, per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(**data)
