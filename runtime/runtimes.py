"""Which runtime answers for a loaded version: the SavedModel signature, or one derived from it.

``signature`` (the default) calls the SavedModel's ``serving_default`` signature.
``dense`` computes the same network with NumPy (:mod:`runtime.dense`): from the files
the exporter derived, without importing TensorFlow, or else derived at load from the
signature's variables. ``litert`` derives a LiteRT model at load (:mod:`runtime.litert`).
A derived runtime is kept only if it agrees with the signature on the MNIST test images
at every batch-size regime (:mod:`runtime.agreement`); if not, the signature answers
and :attr:`Loaded.fallback` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_core.modeldir import ModelInfo, resolve_model

from . import savedmodel
from .agreement import check_images
from .checks import CheckRecords

RUNTIMES = ("signature", "dense", "litert")


@dataclass(frozen=True)
class Loaded:
    """The model that answers, the runtime it is, why a derived one was refused, and how
    it was obtained or checked where that is worth a line in the log (``note``)."""

    model: Any
    runtime: str
    fallback: str | None = None
    note: str | None = None


def load_runtime(
    model: ModelInfo | str | Path,
    *,
    runtime: str = "signature",
    threads: int | None = None,
    data_dir: str | Path | None = None,
    records: CheckRecords | None = None,
) -> Loaded:
    """Load a version and the runtime asked for (falling back to the signature);
    ``records``: the verdicts of checks this run already made (:mod:`runtime.checks`)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    info = model if isinstance(model, ModelInfo) else resolve_model(model)
    if runtime == "signature":
        return Loaded(savedmodel.load(info, threads=threads), "signature")
    images = check_images(data_dir)
    if images is None:
        reference = savedmodel.load(info, threads=threads)
        return Loaded(reference, "signature", fallback=f"no MNIST test images in {data_dir}")
    note = None
    if runtime == "dense":
        from . import dense

        model_from_files, why_not = dense.load_derived(info, images, records=records)
        if model_from_files is not None:
            checked = "checked once for this run" if model_from_files.checked_by_run else None
            return Loaded(model_from_files, "dense", note=checked)
        note = f"derived at load ({why_not})"
    reference = savedmodel.load(info, threads=threads)
    derived: Any
    if runtime == "dense":
        derived, problem = dense.derive(reference, images)
    else:
        from . import litert

        derived, problem = litert.derive(reference, images, threads=threads)
    if derived is None:
        return Loaded(reference, "signature", fallback=problem)
    return Loaded(derived, runtime, note=note)
