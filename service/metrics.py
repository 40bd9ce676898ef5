"""The service's own Prometheus series (BentoML adds its request series beside them).

Histograms and counters only, so they add up across workers and replicas. BentoML runs
every worker with ``PROMETHEUS_MULTIPROC_DIR`` set and serves ``/metrics`` through
prometheus_client's multiprocess collector; prometheus_client is therefore imported
lazily, when the worker builds its :class:`ServiceMetrics` (once, from its settings),
and the info gauge uses the ``max`` multiprocess mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENCE_BUCKETS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
LOAD_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def batch_buckets(max_batch_images: int) -> tuple[float, ...]:
    """Powers of two up to the batch limit, with the limit itself as the last bound."""
    bounds = [1]
    while bounds[-1] * 2 < max_batch_images:
        bounds.append(bounds[-1] * 2)
    if bounds[-1] != max_batch_images:
        bounds.append(max_batch_images)
    return tuple(float(b) for b in bounds)


class ServiceMetrics:
    """The ``mnist_*`` series of one worker process."""

    def __init__(self, max_batch_images: int, *, register: bool = True) -> None:
        """``register=False`` keeps the series out of the process's registry (for tests
        that build several workers in one process)."""
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if register else None

        self.predictions: Any = Counter(
            "mnist_predictions",
            "Images classified, by predicted label",
            ["label"],
            registry=registry,
        )
        self.confidence: Any = Histogram(
            "mnist_prediction_confidence",
            "Probability of the predicted label",
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        )
        self.batch_images: Any = Histogram(
            "mnist_batch_images",
            "Images per model call after merging and splitting requests",
            buckets=batch_buckets(max_batch_images),
            registry=registry,
        )
        self.compute_seconds: Any = Histogram(
            "mnist_model_compute_seconds",
            "Seconds per model call",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.stage_seconds: Any = Histogram(
            "mnist_stage_seconds",
            "Seconds per request stage: decode (and validate), predict (queue and model), "
            "postprocess (building the answer), by endpoint and protocol (native, v2, tfserving)",
            ["stage", "endpoint", "protocol"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.rejected: Any = Counter(
            "mnist_rejected_requests",
            "Requests refused as client errors, by reason",
            ["reason"],
            registry=registry,
        )
        self.model_info: Any = Gauge(
            "mnist_model_info",
            "1 for each model version a live worker serves, 0 once it is unloaded",
            ["version", "implementation"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.load_seconds: Any = Histogram(
            "mnist_model_load_seconds",
            "Seconds to load, check and warm one model version",
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.load_failures: Any = Counter(
            "mnist_model_load_failures",
            "Model versions that failed to load or failed their checks, by reason",
            ["reason"],
            registry=registry,
        )
        self.version_requests: Any = Counter(
            "mnist_model_requests",
            "Prediction requests answered, by the model version that answered",
            ["version"],
            registry=registry,
        )
        self._label_counters = [self.predictions.labels(label=str(d)) for d in range(10)]
        self._stages: dict[tuple[str, str, str], Any] = {}
        self._versions: dict[int, Any] = {}

    def stage(self, stage: str, endpoint: str, protocol: str = "native") -> Any:
        """The ``stage_seconds`` child of (stage, endpoint, protocol), looked up once."""
        key = (stage, endpoint, protocol)
        child = self._stages.get(key)
        if child is None:
            child = self._stages[key] = self.stage_seconds.labels(
                stage=stage, endpoint=endpoint, protocol=protocol
            )
        return child

    def version_answered(self, version: int) -> None:
        child = self._versions.get(version)
        if child is None:
            child = self._versions[version] = self.version_requests.labels(version=str(version))
        child.inc()

    def observe_call(self, images: int, seconds: float) -> None:
        self.batch_images.observe(images)
        self.compute_seconds.observe(seconds)

    def observe_predictions(self, labels: np.ndarray, confidences: np.ndarray) -> None:
        if len(labels) == 1:  # most requests: NumPy's bulk path costs more than it saves
            self._label_counters[int(labels[0])].inc()
            self.confidence.observe(float(confidences[0]))
            return
        for label, count in enumerate(np.bincount(labels, minlength=10)):
            if count:
                self._label_counters[label].inc(int(count))
        observe_many(self.confidence, confidences)

    def stages(self, protocol: str) -> ProtocolStages:
        """``mnist_stage_seconds`` with the ``protocol`` label filled in."""
        return ProtocolStages(self, protocol)

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()


class ProtocolStages:
    """``.labels(stage=, endpoint=)`` of the stage histogram, for one protocol."""

    def __init__(self, metrics: ServiceMetrics, protocol: str) -> None:
        self._metrics = metrics
        self._protocol = protocol

    def labels(self, *, stage: str, endpoint: str) -> Any:
        return self._metrics.stage(stage, endpoint, self._protocol)


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value, as one increment per bucket.

    A thousand ``observe`` calls cost about 2 ms, a noticeable share of a 1,000-image
    request. This does what ``Histogram.observe`` does (the first bucket whose upper
    bound is >= the value, and the sum) with the same attributes it uses; if a future
    prometheus_client renames them, it falls back to observing one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    positions = np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left")
    for bucket, count in zip(buckets, np.bincount(positions, minlength=len(bounds)), strict=False):
        if count:
            bucket.inc(int(count))
    total.inc(float(np.sum(values, dtype=np.float64)))
