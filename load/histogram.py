"""A Prometheus histogram read from a live server's ``/metrics``, and the change over a window.

The benchmark reads ``mnist_batch_images`` before and after the 32-client window to show
how many images each model call took: the proof that calls still merge.
"""

from __future__ import annotations

import re
import urllib.request

_BUCKET = re.compile(r'^(\w+)_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\}\s+(\S+)$')


def scrape(url: str, name: str, timeout: float = 10.0) -> dict[str, float]:
    """Cumulative count per upper bound (``le``) of histogram ``name``, summed over labels."""
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if match and match.group(1) == name:
            counts[match.group(2)] = counts.get(match.group(2), 0.0) + float(match.group(3))
    return counts


def window(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Calls per bucket (not cumulative) between two scrapes, keyed by its range of images
    (``"1"``, ``"2"``, ``"3-4"``, ..., ``">1024"``): the bounds are whole image counts."""

    def bound(le: str) -> float:
        return float("inf") if le == "+Inf" else float(le)

    out: dict[str, int] = {}
    low, previous = 1, 0.0
    for le in sorted(after, key=bound):
        cumulative = after[le] - before.get(le, 0.0)
        if le == "+Inf":
            label = f">{low - 1}"
        else:
            high = int(bound(le))
            label = str(high) if high <= low else f"{low}-{high}"
            low = high + 1
        out[label] = round(cumulative - previous)
        previous = cumulative
    return out
