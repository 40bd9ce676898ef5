"""Bulk histogram observation equals observing one value at a time (service.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from service.metrics import CONFIDENCE_BUCKETS, batch_buckets, observe_many


def samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.1, 0.3, 0.5, 0.95, 0.99, 1.0, 1.0, 0.3000001], dtype=np.float32),
        np.random.default_rng(0).random(1000).astype(np.float32),
        np.array([], dtype=np.float32),
    ],
    ids=["bounds-and-ties", "random", "empty"],
)
def test_observe_many_matches_observe(values: np.ndarray) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h", "one by one", buckets=CONFIDENCE_BUCKETS, registry=one)
    bulk = Histogram("h", "in bulk", buckets=CONFIDENCE_BUCKETS, registry=many)
    for value in values.tolist():
        single.observe(value)
    observe_many(bulk, values)
    expected, got = samples(single), samples(bulk)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize(
    ("limit", "bounds"),
    [(1, [1]), (8, [1, 2, 4, 8]), (1000, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000])],
)
def test_batch_buckets_end_at_the_limit(limit: int, bounds: list[int]) -> None:
    assert batch_buckets(limit) == tuple(float(b) for b in bounds)
