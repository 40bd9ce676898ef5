"""``POST /predict_image`` on MNIST test digits drawn as real pictures (harness.realworld).

Every style must reach 0.95 accuracy and their mean 0.97, through the real server and
its real preprocessing. The table is printed (``pytest -s`` shows it); the full-size
measurement is ``python -m load.realworld_report``.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.realworld import STYLES, render
from harness.realworld_scores import score, table

PER_STYLE = 100
"""Enough to tell 0.95 from 0.90 on every style, while the module stays under a minute."""
STYLE_FLOOR = 0.95
MEAN_FLOOR = 0.97


@pytest.fixture(scope="module")
def scores(service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    images, labels = mnist_test_set
    # A seed of its own, so the suite does not check only the pictures tuned against.
    pictures = render(images, labels, per_style=PER_STYLE, seed=14)
    found = score(service_url, pictures)
    print("\n" + table(found))
    assert [s.style for s in found] == list(STYLES)
    assert all(s.count == PER_STYLE for s in found)
    return {s.style: s.accuracy for s in found}


@pytest.mark.parametrize("style", list(STYLES))
def test_every_style_is_recognised(scores: dict[str, float], style: str) -> None:
    assert scores[style] >= STYLE_FLOOR, f"{style}: {scores[style]:.3f}"


def test_mean_over_styles(scores: dict[str, float]) -> None:
    mean = float(np.mean(list(scores.values())))
    assert mean >= MEAN_FLOOR, f"mean {mean:.3f}"
