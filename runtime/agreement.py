"""Whether a derived runtime answers as the signature does: the check every derived model passes.

Labels identical and probabilities within :data:`TOLERANCE` of the signature's, on the
MNIST test images, with the candidate called in chunks of each size in
:data:`CHECK_BATCHES` (as merged and split requests call it: one image, a few, a full
model call). Synthetic images are not enough: LiteRT agreed within 1e-6 on noise and
strokes and not on 4 of the 100,000 test probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import ModelInfo

from .savedmodel import Outputs, known_images, outputs_problem

TOLERANCE = 1e-6
"""Largest absolute difference of a probability from the signature's that is accepted."""
CHECK_BATCHES = (1, 7, 1024)


def check_images(data_dir: str | Path | None) -> np.ndarray | None:
    """The MNIST test images in ``data_dir``, which a derived runtime must agree on; None
    when they are not there."""
    if data_dir is None:
        return None
    from mnist_core.dataset import load_test_split

    try:
        images, _ = load_test_split(data_dir)
    except Exception:  # any unreadable data directory: nothing to check on
        return None
    return np.ascontiguousarray(images)


def disagreement(
    candidate: Callable[[np.ndarray], Outputs],
    expected: Outputs,
    images: np.ndarray,
    batches: tuple[int, ...] = CHECK_BATCHES,
) -> str | None:
    """How ``candidate`` differs from ``expected`` (the signature's answers for all of
    ``images`` at once) at each batch size, if it does."""
    expected_p, expected_l = expected
    for size in batches:
        chunks = [candidate(images[s : s + size]) for s in range(0, len(images), size)]
        probabilities = np.concatenate([p for p, _ in chunks])
        labels = np.concatenate([lab for _, lab in chunks])
        if probabilities.shape != expected_p.shape or not np.isfinite(probabilities).all():
            return f"shape {probabilities.shape} or non-finite values at batch {size}"
        wrong = int((labels != expected_l).sum())
        if wrong:
            return f"{wrong} of {len(images)} labels differ at batch {size}"
        worst = float(np.abs(probabilities - expected_p).max())
        if worst > TOLERANCE:
            over = int((np.abs(probabilities - expected_p) > TOLERANCE).sum())
            return (
                f"probabilities differ by up to {worst:.3g} (> {TOLERANCE:g}) in {over} of "
                f"{probabilities.size} values at batch {size}"
            )
    return None


class DerivedModel:
    """What every derived runtime shares: its version, a sanity check on known images
    (agreement with the signature is checked before one is built) and its warm-up."""

    runtime = "derived"
    info: ModelInfo

    def __call__(self, images: np.ndarray) -> Outputs:
        raise NotImplementedError

    @property
    def version(self) -> int:
        return self.info.version

    def check(self) -> None:
        images = known_images()
        problem = outputs_problem(*self(images), len(images))
        if problem:
            raise ModelUnavailable(
                f"{self.runtime} model derived from {self.info.path} answers wrongly: {problem}",
                reason="bad_outputs",
            )

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 2, 8, 64)) -> None:
        for size in batch_sizes:
            self(np.zeros((size, 28, 28), dtype=np.uint8))
