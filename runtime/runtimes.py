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
CHECK_RANDOM_IMAGES = 1024


@dataclass(frozen=True)
class Loaded:
    """The model that answers, the runtime it is, and why a derived one was refused."""

    model: Any
    runtime: str
    fallback: str | None = None


def check_images(data_dir: str | Path | None = None) -> np.ndarray:
    """The images a derived runtime must agree on: the MNIST test set when ``data_dir``
    holds it, else the known images and fixed noise and strokes."""
    if data_dir is not None:
        from mnist_core.dataset import load_dir

        try:
            _, (images, _) = load_dir(data_dir)
            return np.ascontiguousarray(images)
        except Exception:  # no test set there: the synthetic set below still checks
            pass
    rng = np.random.default_rng(15)
    noise = rng.integers(0, 256, (CHECK_RANDOM_IMAGES, 28, 28), dtype=np.uint8)
    noise[rng.random((CHECK_RANDOM_IMAGES, 28, 28)) < 0.8] = 0  # sparse, like strokes
    return np.concatenate([savedmodel.known_images(), noise])


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

    derived, problem = litert.derive(reference, check_images(data_dir), threads=threads)
    if derived is None:
        return Loaded(reference, "signature", fallback=problem)
    return Loaded(derived, "litert")
