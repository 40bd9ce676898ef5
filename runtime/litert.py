"""A LiteRT (TensorFlow Lite) model derived from a loaded SavedModel at load time.

The SavedModel stays the artifact and the reference: the flatbuffer is built in memory
from its ``serving_default`` signature by TensorFlow's own converter and is used only if
it agrees with the signature on the check images (labels identical, probabilities
within :data:`TOLERANCE`); otherwise the caller keeps the signature
(:func:`runtime.runtimes.load_runtime`).

The converter is given the loaded object as well as the signature
(``from_concrete_functions([signature], loaded)``): without it the variables are not
carried over and the converted model is a few KB that answers NaN. An interpreter call
costs about 30 microseconds against the signature's 300 at one image, so the derived
model only pays for small batches; at 1,024 images both are the same matrix products.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import agreement
from .savedmodel import Outputs, SavedModel, import_tensorflow

TOLERANCE = agreement.TOLERANCE
CHECK_BATCHES = agreement.CHECK_BATCHES


class LiteModel(agreement.DerivedModel):
    """The derived model, callable like :class:`~runtime.savedmodel.SavedModel`."""

    runtime = "litert"

    def __init__(self, reference: SavedModel, content: bytes, threads: int | None) -> None:
        tf = import_tensorflow()
        self.info = reference.info
        self.size_bytes = len(content)
        # XNNPACK (the default delegate) is the fast path; its float results are checked.
        self._interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads or 1)
        self._runner = self._interpreter.get_signature_runner("serving_default")
        # The interpreter is not thread-safe; the batcher's one model thread is the only
        # caller while serving, but the loading thread checks and warms it first.
        self._lock = threading.Lock()

    def __call__(self, images: np.ndarray) -> Outputs:
        """``uint8 [N, 28, 28]`` -> (probabilities float32 ``[N, 10]``, labels int64 ``[N]``)."""
        with self._lock:
            outputs = self._runner(images=np.ascontiguousarray(images, dtype=np.uint8))
        # The runner hands out views of the interpreter's buffers, reused by the next call.
        return outputs["probabilities"].copy(), outputs["label"].astype(np.int64, copy=True)


def convert(reference: SavedModel) -> bytes:
    """The signature as a LiteRT flatbuffer, variables included (see the module docstring)."""
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [reference._signature], reference._loaded
    )
    content: bytes = converter.convert()
    return content


def disagreement(
    candidate: Any, reference: SavedModel, images: np.ndarray, batches: tuple[int, ...]
) -> str | None:
    """How ``candidate`` differs from the signature called on all of ``images`` at once."""
    return agreement.disagreement(candidate, reference(images), images, batches)


def derive(
    reference: SavedModel,
    check_images: np.ndarray,
    *,
    threads: int | None = None,
    batches: tuple[int, ...] = CHECK_BATCHES,
) -> tuple[LiteModel | None, str | None]:
    """(the derived model, None) if it agrees with the signature, else (None, why not)."""
    try:
        model = LiteModel(reference, convert(reference), threads)
    except Exception as exc:  # the converter and interpreter raise many types
        return None, f"conversion failed ({type(exc).__name__}: {str(exc)[:200]})"
    problem = disagreement(model, reference, check_images, batches)
    return (None, problem) if problem else (model, None)
