"""Which runtime answers for a loaded version: the SavedModel signature, or one derived from it.

``signature`` (the default) calls the SavedModel's ``serving_default`` signature.
``litert`` derives a LiteRT model from it (:mod:`runtime.litert`) and keeps it only if
it agrees with the signature on the check images at every batch-size regime; if not,
the signature answers and :attr:`Loaded.fallback` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.modeldir import ModelInfo

from . import savedmodel

RUNTIMES = ("signature", "litert")


@dataclass(frozen=True)
class Loaded:
    """The model that answers, the runtime it is, and why a derived one was refused."""

    model: Any
    runtime: str
    fallback: str | None = None


def check_images(data_dir: str | Path | None) -> np.ndarray | None:
    """The MNIST test images in ``data_dir``, which a derived runtime must agree on; None
    when they are not there. (Synthetic images are not enough: LiteRT agreed within 1e-6
    on noise and strokes and not on 4 of the 100,000 test probabilities.)"""
    if data_dir is None:
        return None
    from mnist_core.dataset import load_dir

    try:
        _, (images, _) = load_dir(data_dir)
    except Exception:  # any unreadable data directory: nothing to check on
        return None
    return np.ascontiguousarray(images)


def load_runtime(
    model: ModelInfo | str | Path,
    *,
    runtime: str = "signature",
    threads: int | None = None,
    data_dir: str | Path | None = None,
) -> Loaded:
    """Load a version and the runtime asked for (falling back to the signature)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    reference = savedmodel.load(model, threads=threads)
    if runtime == "signature":
        return Loaded(reference, "signature")
    from . import litert

    images = check_images(data_dir)
    if images is None:
        return Loaded(reference, "signature", fallback=f"no MNIST test images in {data_dir}")
    derived, problem = litert.derive(reference, images, threads=threads)
    if derived is None:
        return Loaded(reference, "signature", fallback=problem)
    return Loaded(derived, "litert")
