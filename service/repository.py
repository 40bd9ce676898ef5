"""The model repository of one worker: the versions on disk, which it serves, and their states.

Each worker process has its own repository, watching the model root every
``MNIST_MODEL_POLL_S`` seconds (only integer directory names are versions, so an
exporter's hidden temporary directory is never seen). What it serves follows the version
policy (:mod:`mnist_core.versions`) and the operators' explicit loads and unloads:

* A new version is loaded, warmed and checked (signature, answers on known images) in
  the repository's thread while the current versions keep serving; only then does it
  take traffic. The versions it replaces are unloaded once the requests that started on
  them have finished (each request holds a lease on its version), never before their
  replacement is available.
* A version that fails (missing or corrupt files, wrong signature, bad answers) is marked
  failed with its reason, logged once and counted; it is tried again only when its files
  change (:func:`~mnist_core.modeldir.version_fingerprint`). The policy then picks among
  the versions that can serve, so a broken newest version never replaces a good one.
* A version that disappears from disk is unloaded once another serves; deleting the
  newest version rolls back to the next one. The last version standing keeps serving.

Explicit loads and unloads (the admin API) are kept in a small JSON file that every
worker of one server reads, so all workers converge on them within a poll interval.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_core.errors import Conflict, MnistError, ModelUnavailable, NotFound, NotReady
from mnist_core.modeldir import ModelInfo, existing_versions, read_model_info, version_fingerprint
from mnist_core.versions import VersionPolicy

from .metrics import ServiceMetrics

log = logging.getLogger("mnist.service")

CONTROL_POLL_S = 1.0
"""How often the explicit loads and unloads are re-read when the model root is not watched."""


class State(enum.StrEnum):
    LOADING = "loading"
    AVAILABLE = "available"
    UNLOADING = "unloading"
    UNLOADED = "unloaded"
    FAILED = "failed"


@dataclass
class Version:
    """One version as this worker knows it."""

    number: int
    state: State = State.UNLOADED
    info: ModelInfo | None = None
    model: Any = None
    """The loaded model (:class:`runtime.savedmodel.SavedModel` or a derived runtime's)
    while available."""
    fingerprint: str = ""
    """Of the files it was last loaded (or failed to load) from."""
    reason: str | None = None
    error: str | None = None
    load_seconds: float | None = None
    leases: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "state": str(self.state),
            "reason": self.reason,
            "error": self.error,
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            # Which runtime answers for it (a derived one may have been refused).
            "runtime": getattr(self.model, "runtime", None),
            "implementation": self.info.implementation if self.info else None,
            "test_accuracy": self.info.test_accuracy if self.info else None,
        }


@dataclass
class Overrides:
    """Versions an operator loaded or unloaded by request, whatever the policy says."""

    loaded: set[int] = field(default_factory=set)
    unloaded: set[int] = field(default_factory=set)

    def to_json(self) -> str:
        return json.dumps({"loaded": sorted(self.loaded), "unloaded": sorted(self.unloaded)})

    @classmethod
    def from_json(cls, text: str) -> Overrides:
        data = json.loads(text)
        return cls(set(data.get("loaded", [])), set(data.get("unloaded", [])))


Loader = Callable[[ModelInfo], Any]


class Repository:
    """See the module docstring. ``loader(info)`` returns a loaded, checked, warm model."""

    def __init__(
        self,
        root: Path,
        policy: VersionPolicy,
        labels: dict[str, int],
        metrics: ServiceMetrics,
        *,
        loader: Loader,
        poll_s: float,
        control_file: Path | None = None,
    ) -> None:
        self.root = root
        self.policy = policy
        self.labels = labels
        self.poll_s = poll_s
        self._metrics = metrics
        self._loader = loader
        self._control_file = control_file
        self._control_seen: float | None = None
        self._overrides = Overrides()
        self._versions: dict[int, Version] = {}
        self._served: dict[int, Version] = {}  # replaced whole, so readers need no lock
        self._on_disk: list[int] = existing_versions(root)
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()  # one reconciliation at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_empty = False
        self._retry: set[int] = set()
        """Failed versions an operator asked for: tried again though their files are the same."""

    # -- what the event loop asks ------------------------------------------------------

    @property
    def served(self) -> list[int]:
        return sorted(self._served)

    def default_version(self) -> int | None:
        """The highest served version; before any serves, the one the policy will serve."""
        served = self._served
        if served:
            return max(served)
        chosen = self.policy.select(self._on_disk)
        return chosen[-1] if chosen else None

    def resolve(self, version: int | None = None, label: str | None = None) -> int:
        """The served version a request asks for (the default one when it asks for none)."""
        if label is not None:
            if label not in self.labels:
                known = ", ".join(sorted(self.labels)) or "none"
                raise NotFound(
                    f"no version label {label!r} (labels: {known})",
                    reason="unknown_label",
                    label=label,
                )
            version = self.labels[label]
            if version not in self._served:
                raise NotFound(
                    f"label {label!r} names version {version}, which is not served "
                    f"(served: {self._served_text()})",
                    reason="unknown_version",
                    label=label,
                    version=version,
                )
            return version
        if version is None:
            default = max(self._served) if self._served else None
            if default is None:
                raise NotReady("the model is still loading; retry shortly")
            return default
        if version not in self._served:
            raise NotFound(
                f"model version {version} is not served (served: {self._served_text()})",
                reason="unknown_version",
                version=version,
            )
        return version

    def _served_text(self) -> str:
        return ", ".join(str(v) for v in sorted(self._served)) or "none yet"

    @contextlib.contextmanager
    def lease(self, version: int) -> Iterator[Any]:
        """The model of ``version``, kept loaded until the block ends."""
        with self._lock:
            entry = self._served.get(version)
            if entry is None or entry.state is not State.AVAILABLE:
                raise NotFound(
                    f"model version {version} is not served (served: {self._served_text()})",
                    reason="unknown_version",
                    version=version,
                )
            entry.leases += 1
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.leases -= 1
                if entry.leases == 0:
                    self._drained.notify_all()

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._versions[v].describe() for v in sorted(self._versions)]

    def state_of(self, version: int) -> Version | None:
        return self._versions.get(version)

    # -- the repository's own thread -------------------------------------------------

    def start(self) -> None:
        """Watch in the background (the first reconciliation is the caller's)."""
        self._thread = threading.Thread(target=self._watch, name="mnist-models", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            versions = list(self._versions.values())
            self._served = {}
        for entry in versions:
            entry.model = None
            if entry.state is State.AVAILABLE:
                entry.state = State.UNLOADED
                self._set_info_metric(entry, 0)

    def wake(self) -> None:
        """Reconcile now rather than at the next poll."""
        self._wake.set()

    def _watch(self) -> None:
        interval = self.poll_s if self.poll_s > 0 else CONTROL_POLL_S
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync(scan=self.poll_s > 0)
            except Exception:  # the watcher must outlive any one bad round
                log.exception("model repository: reconciliation failed")

    def sync(self, *, scan: bool = True) -> None:
        """One reconciliation: look at disk and the overrides, load and unload to match."""
        with self._sync_lock:
            self._read_control()
            if scan or not self._on_disk:
                self._on_disk = existing_versions(self.root)
            fingerprints = {v: version_fingerprint(self.root / str(v)) for v in self._on_disk}
            self._track(fingerprints)
            attempted: set[int] = set()
            while (todo := self._next_to_load(fingerprints, attempted)) is not None:
                attempted.add(todo)
                self._load(todo, fingerprints[todo])
                if self._stop.is_set():
                    return
            self._publish(self._desired(fingerprints))

    def _candidates(self, fingerprints: dict[int, str]) -> list[int]:
        """Versions on disk that may serve: not unloaded by request, not failed as they are."""
        usable = []
        for number, fingerprint in fingerprints.items():
            entry = self._versions.get(number)
            if number in self._overrides.unloaded:
                continue
            if (
                entry is not None
                and entry.state is State.FAILED
                and entry.fingerprint == fingerprint
                and number not in self._retry
            ):
                continue
            usable.append(number)
        return usable

    def _desired(self, fingerprints: dict[int, str]) -> set[int]:
        candidates = self._candidates(fingerprints)
        chosen = set(self.policy.select(candidates))
        return chosen | (self._overrides.loaded & set(candidates))

    def _next_to_load(self, fingerprints: dict[int, str], attempted: set[int]) -> int | None:
        """The highest desired version not loaded yet and not tried in this round."""
        for number in sorted(self._desired(fingerprints), reverse=True):
            entry = self._versions.get(number)
            if entry is None or entry.state is not State.AVAILABLE:
                if number in attempted:
                    continue
                return number
            if entry.fingerprint != fingerprints[number]:
                log.warning(
                    "model version %d changed on disk while served; versions are treated as "
                    "immutable, the loaded copy keeps serving",
                    number,
                )
                entry.fingerprint = fingerprints[number]
        return None

    def _track(self, fingerprints: dict[int, str]) -> None:
        """Know every version on disk; forget those gone from disk that hold nothing."""
        with self._lock:
            for number in fingerprints:
                self._versions.setdefault(number, Version(number))
            for number, entry in list(self._versions.items()):
                gone = number not in fingerprints
                if gone and entry.state in (State.UNLOADED, State.FAILED):
                    del self._versions[number]

    def _load(self, number: int, fingerprint: str) -> None:
        entry = self._versions.setdefault(number, Version(number))
        entry.state, entry.reason, entry.error = State.LOADING, None, None
        self._retry = self._retry - {number}
        started = time.perf_counter()
        try:
            info = read_model_info(self.root / str(number))
            model = self._loader(info)
        except MnistError as exc:
            self._failed(entry, fingerprint, exc.reason, exc.message)
            return
        except Exception as exc:  # any failure of a version's files is the version's
            self._failed(entry, fingerprint, "load_failed", f"{type(exc).__name__}: {exc}")
            return
        seconds = time.perf_counter() - started
        if version_fingerprint(self.root / str(number)) != fingerprint:
            # Still being written (a copy in place): try again once it has settled.
            entry.state = State.UNLOADED
            log.info("model version %d changed while loading; trying again", number)
            return
        with self._lock:
            entry.info, entry.model, entry.fingerprint = info, model, fingerprint
            entry.load_seconds, entry.state = seconds, State.AVAILABLE
        self._metrics.load_seconds.observe(seconds)
        log.info("model version %d loaded in %.2f s", number, seconds)

    def _failed(self, entry: Version, fingerprint: str, reason: str, message: str) -> None:
        entry.state, entry.reason, entry.error = State.FAILED, reason, message
        entry.fingerprint = fingerprint
        self._metrics.load_failures.labels(reason=reason).inc()
        log.error("model version %d failed (%s): %s", entry.number, reason, message)

    def _publish(self, desired: set[int]) -> None:
        """Serve the desired versions that are available; unload what they replace."""
        available = {v.number: v for v in self._versions.values() if v.state is State.AVAILABLE}
        serve = {n: v for n, v in available.items() if n in desired}
        if not serve:
            if available and not self._warned_empty:
                log.warning(
                    "no usable version selected by policy %s on disk; keeping version(s) %s",
                    self.policy,
                    ", ".join(str(n) for n in sorted(available)),
                )
                self._warned_empty = True
            serve = {n: v for n, v in available.items() if n in self._served} or available
        else:
            self._warned_empty = False
        retired = [v for n, v in available.items() if n not in serve]
        with self._lock:
            for entry in retired:
                entry.state = State.UNLOADING
            self._served = dict(serve)
        for entry in serve.values():
            self._set_info_metric(entry, 1)
        for entry in retired:
            self._unload(entry)

    def _unload(self, entry: Version) -> None:
        with self._drained:
            while entry.leases:
                self._drained.wait(timeout=1.0)
            entry.model = None
            entry.state = State.UNLOADED
        self._set_info_metric(entry, 0)
        # Startup's objects were frozen out of the collector's sight (service.worker): let
        # it see everything once, so the unloaded graph's cycles are freed, then re-freeze.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info("model version %d unloaded", entry.number)

    def _set_info_metric(self, entry: Version, value: int) -> None:
        implementation = entry.info.implementation if entry.info else "unknown"
        self._metrics.model_info.labels(
            version=str(entry.number), implementation=implementation
        ).set(value)

    # -- explicit control ------------------------------------------------------------

    def request_load(self, number: int) -> None:
        """Serve ``number`` whatever the policy says (and retry it if it had failed)."""
        if not (self.root / str(number)).is_dir():
            raise NotFound(
                f"model version {number} is not on disk under {self.root}",
                reason="unknown_version",
                version=number,
            )
        with self._sync_lock:
            self._read_control()
            self._overrides.loaded.add(number)
            self._overrides.unloaded.discard(number)
            self._retry = self._retry | {number}
            self._write_control()
            if number not in self._on_disk:
                self._on_disk = sorted({*self._on_disk, number})

    def request_unload(self, number: int) -> None:
        """Stop serving ``number`` whatever the policy says; never the last one serving."""
        if number not in self._served:
            raise NotFound(
                f"model version {number} is not served (served: {self._served_text()})",
                reason="unknown_version",
                version=number,
            )
        if len(self._served) == 1:
            raise Conflict(
                f"model version {number} is the only one served; load another first",
                reason="last_version",
                version=number,
            )
        with self._sync_lock:
            self._read_control()
            self._overrides.unloaded.add(number)
            self._overrides.loaded.discard(number)
            self._write_control()

    def _read_control(self) -> None:
        if self._control_file is None:
            return
        try:
            changed = self._control_file.stat().st_mtime
        except FileNotFoundError:
            return
        if changed == self._control_seen:
            return
        try:
            self._overrides = Overrides.from_json(self._control_file.read_text())
        except (OSError, ValueError) as exc:
            log.error("unreadable %s: %s", self._control_file, exc)
            return
        self._control_seen = changed

    def _write_control(self) -> None:
        if self._control_file is None:
            return
        temporary = self._control_file.with_name(f".{self._control_file.name}.{os.getpid()}")
        temporary.write_text(self._overrides.to_json())
        temporary.replace(self._control_file)
        self._control_seen = self._control_file.stat().st_mtime


def ensure_served(repository: Repository) -> None:
    """After the first reconciliation: something serves, or why nothing can."""
    if repository.served:
        return
    failures = [v for v in repository.status() if v["state"] == State.FAILED]
    if failures:
        message = "; ".join(str(f["error"]) for f in failures)
        raise ModelUnavailable(message, reason=str(failures[0]["reason"]))
    raise ModelUnavailable(
        f"policy {repository.policy} selects no version under {repository.root}",
        reason="no_model",
    )
