"""Crash-safe output files: rows go to a temporary file, a small record says how much is done.

Beside ``OUTPUT`` a running job keeps:

- ``OUTPUT.partial``: the header and the rows committed so far, in input order;
- ``OUTPUT.progress.json``: the job's identity (input fingerprint, format) and how many
  rows and bytes of the partial file are committed, plus running totals for the summary.

A chunk is committed by appending its rows to the partial file and fsyncing it, then
atomically replacing the record. A crash between the two leaves bytes beyond the
record's count; resuming truncates them and scores those rows again, so no row is lost
or duplicated. The finished file is renamed to ``OUTPUT`` and only then is the record
removed: ``OUTPUT`` never exists half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mnist_core.errors import ResumeError

__all__ = ["Journal", "Progress", "ResumeError", "partial_path", "record_path"]

RECORD_VERSION = 1


@dataclass
class Progress:
    """What the record says: committed rows and bytes, the model version and label counts."""

    job: dict[str, Any]
    rows: int = 0
    bytes: int = 0
    model_version: int | None = None
    confusion: list[list[int]] | None = None


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def record_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The partial output of one job and its progress record.

    Opening resumes when a record for the same job exists, and starts afresh otherwise
    (or when ``restart`` is set). An exclusive lock on the partial file keeps two runs
    from writing the same output.
    """

    def __init__(self, output: Path, job: dict[str, Any], header: str, *, restart: bool) -> None:
        self.output = output
        self.partial = partial_path(output)
        self.record = record_path(output)
        self.progress = self._load(job, restart)
        self.resumed_from = self.progress.rows
        self._file: IO[bytes] = self._open(header)

    def _load(self, job: dict[str, Any], restart: bool) -> Progress:
        if restart or not self.record.exists() or not self.partial.exists():
            return Progress(job=job)
        try:
            data = json.loads(self.record.read_text())
            progress = Progress(**{k: v for k, v in data.items() if k != "record_version"})
        except (OSError, ValueError, TypeError) as exc:
            raise ResumeError(
                f"{self.record} is unreadable ({exc}); rerun with --restart to start over"
            ) from None
        if progress.job != job:
            changed = sorted(
                k for k in job.keys() | progress.job.keys() if job.get(k) != progress.job.get(k)
            )
            raise ResumeError(
                f"{self.partial} belongs to a job with a different {', '.join(changed)}; "
                "rerun with --restart to discard it, or write to another output"
            )
        if self.partial.stat().st_size < progress.bytes:
            raise ResumeError(
                f"{self.partial} is shorter than {self.record} records; "
                "rerun with --restart to start over"
            )
        return progress

    def _open(self, header: str) -> IO[bytes]:
        fresh = self.progress.bytes == 0
        # Opened without truncating: the lock must be held before anything is cut.
        handle = self.partial.open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResumeError(f"another job is writing {self.partial}") from None
        handle.truncate(self.progress.bytes)
        handle.seek(self.progress.bytes)
        if fresh:
            data = header.encode()
            handle.write(data)
            self._sync(handle)
            self.progress.bytes = len(data)
            self._write_record()
        return handle

    @staticmethod
    def _sync(handle: IO[bytes]) -> None:
        handle.flush()
        os.fsync(handle.fileno())

    def _write_record(self) -> None:
        tmp = self.record.with_name(self.record.name + ".tmp")
        payload = {"record_version": RECORD_VERSION, **asdict(self.progress)}
        with tmp.open("w") as handle:
            json.dump(payload, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.record)

    def commit(self, text: str, rows: int) -> None:
        """Append ``rows`` rows (``text``) and record them; ``progress`` totals go along."""
        data = text.encode()
        self._file.write(data)
        self._sync(self._file)
        self.progress.rows += rows
        self.progress.bytes += len(data)
        self._write_record()

    def finish(self) -> None:
        """Publish the complete output under its final name and drop the record."""
        self._sync(self._file)
        os.replace(self.partial, self.output)
        _fsync_dir(self.output.parent)
        self.record.unlink(missing_ok=True)
        self.close()

    def close_empty(self) -> None:
        """Close, removing the files again if no row was ever committed."""
        self.close()
        if self.progress.rows == 0:
            self.partial.unlink(missing_ok=True)
            self.record.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
