"""Which model versions to serve: TensorFlow Serving's version policies, and version labels.

``latest`` (the highest version), ``latest:N`` (the N highest, all served) and
``specific:3,5`` (exactly those, for pinning, rollback and canaries). Labels name
versions for clients (``stable=3,canary=5``). Pure logic: the service's model repository
applies it to what it finds on disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LATEST = re.compile(r"latest(?::(\d+))?")
_SPECIFIC = re.compile(r"specific:(\d+(?:,\d+)*)")
_LABEL = re.compile(r"([A-Za-z][\w.-]*)=(\d+)")


@dataclass(frozen=True)
class VersionPolicy:
    """``latest:count`` when ``versions`` is empty, else exactly ``versions``."""

    count: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """``latest``, ``latest:N`` or ``specific:V[,V...]``; ``ValueError`` otherwise."""
        spec = text.strip().replace(" ", "")
        if match := _LATEST.fullmatch(spec):
            count = int(match.group(1) or 1)
            if count < 1:
                raise ValueError(f"version policy {text!r}: latest:N needs N >= 1")
            return cls(count=count)
        if match := _SPECIFIC.fullmatch(spec):
            versions = tuple(sorted({int(v) for v in match.group(1).split(",")}))
            if 0 in versions:
                raise ValueError(f"version policy {text!r}: versions are positive integers")
            return cls(versions=versions)
        raise ValueError(
            f"version policy {text!r} is not one of latest, latest:N or specific:V1,V2,..."
        )

    def select(self, candidates: Iterable[int]) -> list[int]:
        """The versions to serve among ``candidates`` (those on disk and usable), ascending."""
        present = sorted(set(candidates))
        if self.versions:
            return [v for v in present if v in self.versions]
        return present[-self.count :]

    def __str__(self) -> str:
        if self.versions:
            return "specific:" + ",".join(str(v) for v in self.versions)
        return "latest" if self.count == 1 else f"latest:{self.count}"


def parse_labels(text: str) -> dict[str, int]:
    """``stable=3,canary=5`` as ``{"stable": 3, "canary": 5}``; ``ValueError`` if malformed."""
    labels: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _LABEL.fullmatch(part.replace(" ", ""))
        if match is None or int(match.group(2)) < 1:
            raise ValueError(f"version label {part!r} is not name=version (for example stable=3)")
        if match.group(1) in labels:
            raise ValueError(f"version label {match.group(1)!r} is given twice")
        labels[match.group(1)] = int(match.group(2))
    return labels
