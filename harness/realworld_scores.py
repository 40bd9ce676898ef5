"""Accuracy per style of ``POST /predict_image`` on pictures of :mod:`harness.realworld`.

Used by ``tests/service/test_realworld.py`` and ``python -m load.realworld_report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from .realworld import Picture

REFERENCE = "mnist-png"
"""The plain 28x28 test digit as a PNG: what uploads looked like before real pictures.
Shown in the table, left out of the mean and the worst style."""
CHUNK = 100
"""Pictures per request: large enough to keep both workers busy, small enough to retry."""


@dataclass(frozen=True)
class StyleScore:
    style: str
    count: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else 0.0


def predict_labels(client: httpx.Client, url: str, pictures: Sequence[Picture]) -> list[int]:
    """The label ``/predict_image`` gives each picture, in order, ``CHUNK`` per request."""
    labels: list[int] = []
    for start in range(0, len(pictures), CHUNK):
        chunk = pictures[start : start + CHUNK]
        files = [
            ("images", (f"{p.style}-{p.index}", p.data, "application/octet-stream")) for p in chunk
        ]
        response = client.post(f"{url}/predict_image", files=files)
        if response.status_code != 200:
            raise RuntimeError(f"/predict_image answered {response.status_code}: {response.text}")
        labels.extend(int(p["label"]) for p in response.json()["predictions"])
    return labels


def score(url: str, pictures: Sequence[Picture]) -> list[StyleScore]:
    """Accuracy per style, in the order the styles first appear in ``pictures``."""
    with httpx.Client(timeout=120.0) as client:
        predicted = predict_labels(client, url, pictures)
    counts: dict[str, list[int]] = {}
    for picture, label in zip(pictures, predicted, strict=True):
        tally = counts.setdefault(picture.style, [0, 0])
        tally[0] += 1
        tally[1] += int(label == picture.label)
    return [StyleScore(style, n, correct) for style, (n, correct) in counts.items()]


def table(scores: Sequence[StyleScore]) -> str:
    """Markdown: one row per style, then the mean and the smallest over the styles."""
    styled = [s for s in scores if s.style != REFERENCE]
    rows = ["| style | images | accuracy |", "|---|---:|---:|"]
    rows += [f"| {s.style} | {s.count} | {s.accuracy:.3f} |" for s in scores]
    if styled:
        accuracies = [s.accuracy for s in styled]
        rows.append(f"| **mean of styles** | | **{np.mean(accuracies):.3f}** |")
        rows.append(f"| **worst style** | | **{min(accuracies):.3f}** |")
    return "\n".join(rows)
