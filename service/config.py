"""Settings of the inference service: one class, read from ``MNIST_*`` environment variables.

``mnist-serve`` reads them once and hands them to the worker processes through the
environment; each worker reads them once, in :class:`service.service.MnistService`, and
passes the object to everything that needs it (the worker, its metrics, the middleware).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnist_core.versions import VersionPolicy, parse_labels


class ServiceSettings(BaseSettings):
    """Every knob of ``mnist-serve``; each field is also the env var ``MNIST_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="MNIST_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    model_dir: Path = Field(default=Path("models/mnist"))
    """Model root holding one directory per version (``<root>/<int>/``)."""

    model_poll_s: float = Field(default=2.0, ge=0)
    """Seconds between looks at the model root for new or removed versions (0: never)."""

    version_policy: str = "latest"
    """Which versions to serve: ``latest``, ``latest:N`` (the N highest) or ``specific:3,5``."""

    version_labels: str = ""
    """Names for versions, ``stable=3,canary=5``: a request may ask for ``?label=canary``."""

    admin_token: SecretStr | None = None
    """Bearer token of the admin API (loading and unloading versions); unset: disabled."""

    host: str = "127.0.0.1"
    """Address to listen on."""

    port: int = Field(default=3000, ge=1, le=65535)
    """TCP port to listen on."""

    workers: int = Field(default=2, ge=1, le=64)
    """Worker processes; each loads its own copy of the model (about 520-570 MB on
    the signature runtime)."""

    tf_threads: int = Field(default=1, ge=1, le=64)
    """TensorFlow threads per worker (one is fastest with one worker per core)."""

    inline_batch_images: int = Field(default=16, ge=0, le=65536)
    """Model calls of at most this many images run on the worker's event loop rather than
    in its model thread (0: always the thread)."""

    runtime: Literal["signature", "dense", "litert"] = "signature"
    """``signature`` (the SavedModel's); ``dense``, the network in NumPy from the weights
    the exporter derived (no TensorFlow in the worker); ``litert``, a LiteRT model derived
    at load. A derived runtime is used only if it agrees with the signature on the test
    images (labels identical, probabilities within 1e-6)."""

    data_dir: Path | None = None
    """MNIST IDX files; a derived runtime is checked on their test images (without them
    the signature answers)."""

    max_batch_images: int = Field(default=1024, ge=1, le=65536)
    """Most images one model call may take; requests are merged or split to respect it."""

    max_images: int = Field(default=10_000, ge=1)
    """Most images one request may carry."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""

    ready_wait_s: float = Field(default=30.0, ge=0)
    """How long a request that reaches a worker still loading its model waits (then 503)."""

    access_log: bool = False
    """Log one line per request (BentoML's access log; off by default, it costs ~10% CPU)."""

    trace_requests: bool = False
    """Let BentoML's OpenTelemetry middleware trace requests (off: with no exporter
    configured, the spans are built and dropped, about a fifth of a small request's CPU)."""

    max_image_pixels: int = Field(default=16_000_000, ge=784)
    """Largest uploaded image (width x height) decoded; larger ones are refused as bombs."""

    request_timeout_s: int = Field(default=60, ge=1)
    """Per-request time limit enforced by BentoML (its ``traffic.timeout``)."""

    max_concurrency: int = Field(default=32, ge=1)
    """Requests a worker works on at once; more get 429 with ``Retry-After`` at once."""

    max_queue_images: int = Field(default=32768, ge=1)
    """Images a worker keeps waiting for the model (32 calls at the default batch limit:
    about 0.2 s of model time and 25 MB); a request that would queue more gets 429. A
    request larger than this still runs when nothing else waits."""

    body_timeout_s: float = Field(default=10.0, gt=0)
    """Longest a client may take to send its request body; then 408, and it is dropped."""

    drain_delay_s: float = Field(default=0.0, ge=0)
    """After SIGTERM: seconds of serving on with readiness at 503, so load balancers stop
    sending before the listener closes (0 locally; set it on Kubernetes and compose)."""

    grace_s: float = Field(default=30.0, ge=0)
    """After the drain delay: seconds requests in flight get to finish before the exit."""

    log_format: Literal["text", "json"] = "text"
    """The service's own log lines: ``text``, or ``json`` (one object per line)."""

    slow_request_s: float = Field(default=1.0, gt=0)
    """Requests slower than this are logged (with their request id), as errors are."""

    job_result_ttl_s: float = Field(default=3600.0, gt=0)
    """How long an async job's result is kept after it finished (then it is deleted)."""

    trim_heap_s: float = Field(default=1.0, ge=0)
    """Seconds between returning freed memory to the system while no request is in
    flight (glibc ``malloc_trim``; 0: never)."""

    model_call_delay_ms: float = Field(default=0.0, ge=0)
    """A fixed delay added to every model call, for testing capacity tools (0: none)."""

    @field_validator("version_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        return str(VersionPolicy.parse(value))

    @field_validator("version_labels")
    @classmethod
    def _labels(cls, value: str) -> str:
        return ",".join(f"{k}={v}" for k, v in parse_labels(value).items())

    @property
    def policy(self) -> VersionPolicy:
        return VersionPolicy.parse(self.version_policy)

    @property
    def labels(self) -> dict[str, int]:
        return parse_labels(self.version_labels)
