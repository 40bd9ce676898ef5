"""Loading, warming and calling an exported SavedModel: the one copy of that code.

The service's workers, ``mnist-batch --local`` and the benchmarks all load a version with
:func:`load` and call it as ``model(images)``. This is the only module that imports
TensorFlow for serving, and only when a model is loaded, so finding and describing
versions (:mod:`mnist_core.modeldir`) costs nothing.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import (
    INPUT_NAME,
    SIGNATURE,
    SIGNATURE_NAME,
    TRAIN_HINT,
    ModelInfo,
    resolve_model,
)

from .quiet import native_stderr_filtered, start_tensorflow

Outputs = tuple[np.ndarray, np.ndarray]
KERAS_EAGER_IMPORT = "keras.src.optimizers"
WARM_UP_SIZES = (2, 8, 64)

_serving: Any = None  # what serving_tensorflow built, while the stand-in is the package
_threads_lock = threading.Lock()
_threads_set: int | None = None


def import_tensorflow() -> Any:
    """``import tensorflow``: quietly, and without the Keras import it does on the side.

    TensorFlow's ``__init__`` imports all of Keras (and through it matplotlib) so that
    SavedModels written by ``keras.Model.save`` find their classes registered; it skips
    that when the import fails. Our SavedModel is a plain ``tf.Module`` signature and
    needs none of it: leaving it out saves about 1 s of start-up and 50 MB per worker,
    with identical outputs. The block is lifted again right after, so a later
    ``import keras`` in the same process works as usual.
    """
    present = sys.modules.get("tensorflow")
    if isinstance(present, _PackageStandIn):
        del sys.modules["tensorflow"]  # the real package now: see serving_tensorflow
    elif present is not None:
        return present
    blocked = KERAS_EAGER_IMPORT not in sys.modules
    if blocked:
        sys.modules[KERAS_EAGER_IMPORT] = None  # type: ignore[assignment]
    try:
        tf = start_tensorflow()
    finally:
        if blocked and sys.modules.get(KERAS_EAGER_IMPORT, False) is None:
            del sys.modules[KERAS_EAGER_IMPORT]
    return tf


def serving_tensorflow() -> Any:
    """What loading and calling a SavedModel needs from TensorFlow, imported without the
    public API: ``constant``, ``uint8``, ``config.threading`` and ``saved_model.load``.

    ``tensorflow/__init__.py`` builds the whole public API (tf.data, tf.distribute,
    tf.compat.v1, feature columns, ...) from about 1,600 modules: 1.6 s and 540 MB per
    worker. The loader, the eager runtime and the ops a SavedModel calls are about 730
    of them: 1.15 s and 460 MB (measured with TensorFlow 2.21). They are imported under
    a stand-in for the package (:class:`_PackageStandIn`: its directory, without running
    its ``__init__``), after the same switch to TensorFlow 2 behaviour the ``__init__``
    makes. When TensorFlow is already imported, or this fails, it is the full
    :func:`import_tensorflow`.
    """
    global _serving
    present = sys.modules.get("tensorflow")
    if isinstance(present, _PackageStandIn) and _serving is not None:
        return _serving  # a second version loaded by the same process
    if present is not None:
        return import_tensorflow()
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return import_tensorflow()
    stand_in = _PackageStandIn("tensorflow")
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__file__ = spec.origin
    sys.modules["tensorflow"] = stand_in
    try:
        with native_stderr_filtered():
            _serving = _serving_api()
        return _serving
    except Exception:  # a layout this does not know: the full import serves as well
        if sys.modules.get("tensorflow") is stand_in:
            del sys.modules["tensorflow"]
        return import_tensorflow()


class _PackageStandIn(types.ModuleType):
    """``sys.modules["tensorflow"]`` while only TensorFlow's internals are imported.

    It stays there: TensorFlow's own code imports its internal modules by full name
    (``import tensorflow.python.ops.resource_variable_ops``), which needs the package in
    ``sys.modules``. The first use of a public name (``tf.lite``, ``tf.constant``) by
    anyone runs the real ``__init__`` over the modules already loaded and answers from
    it; :func:`import_tensorflow` does the same.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)
        return getattr(import_tensorflow(), name)


def _serving_api() -> Any:
    os.environ["TF2_BEHAVIOR"] = "1"  # as tensorflow/__init__.py sets it, before the imports
    from tensorflow.python import (
        pywrap_tensorflow,  # noqa: F401  (loads the C++ runtime)
        tf2,
    )

    tf2.enable()
    from tensorflow.python.compat import v2_compat
    from tensorflow.python.framework import config, constant_op, dtypes
    from tensorflow.python.saved_model import load as saved_model_load

    v2_compat.enable_v2_behavior()
    config.list_physical_devices()  # device discovery logs here: inside the filter
    threading_api = types.SimpleNamespace(
        set_intra_op_parallelism_threads=config.set_intra_op_parallelism_threads,
        set_inter_op_parallelism_threads=config.set_inter_op_parallelism_threads,
    )
    return types.SimpleNamespace(
        constant=constant_op.constant,
        uint8=dtypes.uint8,
        config=types.SimpleNamespace(threading=threading_api),
        saved_model=types.SimpleNamespace(load=saved_model_load.load),
    )


def _configure(tf: Any, threads: int | None) -> None:
    """TensorFlow's thread pools, set once per process before the first op creates them."""
    global _threads_set
    with _threads_lock:
        if _threads_set is None:
            _threads_set = threads or 0
            if threads is not None:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(threads)
                    tf.config.threading.set_inter_op_parallelism_threads(threads)
                except RuntimeError:  # TensorFlow already ran an op here (training, tests)
                    return


class SavedModel:
    """The ``serving_default`` signature of one exported version, callable on uint8 batches."""

    runtime = "signature"

    def __init__(self, info: ModelInfo, signature: Any, loaded: Any, tf: Any) -> None:
        self.info = info
        self._signature = signature
        self._loaded = loaded  # keeps the signature's variables alive
        self._tf = tf
        self._run: Callable[[Any], tuple[Any, Any]] = self._run_signature
        self.entry = "signature"  # or "direct": see :meth:`use_direct_entry`

    @property
    def version(self) -> int:
        return self.info.version

    def __call__(self, images: np.ndarray) -> Outputs:
        """``uint8 [N, 28, 28]`` -> (probabilities float32 ``[N, 10]``, labels int64 ``[N]``).

        A single image is sent twice: on one row TensorFlow takes its matrix-vector
        kernel, whose float results differ from the matrix-matrix kernel's in the last
        bits. Never calling the graph with one image keeps every row's bytes independent
        of how requests were merged or a job was chunked.
        """
        n = len(images)
        batch = np.concatenate([images, images]) if n == 1 else images
        tensors = self._run(self._tf.constant(batch, dtype=self._tf.uint8))
        probabilities, labels = (tensor.numpy() for tensor in tensors)
        return (probabilities[:1], labels[:1]) if n == 1 else (probabilities, labels)

    def _run_signature(self, batch: Any) -> tuple[Any, Any]:
        outputs = self._signature(**{INPUT_NAME: batch})
        return outputs["probabilities"], outputs["label"]

    def use_direct_entry(self) -> str | None:
        """Call the signature's graph function directly, if it answers byte for byte as
        the signature does on known images; otherwise keep the signature and say why.

        Calling the signature binds keyword arguments to its structured inputs, packs the
        outputs into a dict and walks several Python layers before the one eager
        ``execute`` of the function: about 120 us of a 340 us call at a few images
        (measured with TensorFlow 2.21). The function, its captured variables and call
        attributes are the signature's own, so the kernels and their bytes are the same;
        the entry point is TensorFlow's internal API, hence the check and the fallback.
        """
        try:
            run = _direct_entry(self._signature, self._tf)
        except Exception as exc:  # internal API: any failure keeps the public call
            return f"no direct entry ({type(exc).__name__}: {exc})"
        images = np.concatenate([known_images(), np.zeros((3, 28, 28), dtype=np.uint8)])
        batch = self._tf.constant(images, dtype=self._tf.uint8)
        try:
            expected = [tensor.numpy() for tensor in self._run_signature(batch)]
            got = [tensor.numpy() for tensor in run(batch)]
        except Exception as exc:  # a signature outside the contract: check() names it
            return f"no answers to compare ({type(exc).__name__}: {exc})"
        same = all(
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in zip(got, expected, strict=True)
        )
        if not same:
            return "the direct entry answered differently from the signature"
        self._run, self.entry = run, "direct"
        return None

    def check(self) -> None:
        """The signature is the contract, and it answers sanely on a few known images.

        Raises :class:`ModelUnavailable` (reason ``bad_signature`` or ``bad_outputs``): a
        version that loads but would answer wrongly must not take traffic.
        """
        problem = signature_problem(self._signature)
        if problem:
            raise ModelUnavailable(
                f"model {self.info.path} does not have the serving signature: {problem}",
                reason="bad_signature",
            )
        images = known_images()
        probabilities, labels = self(images)
        problem = outputs_problem(probabilities, labels, len(images))
        if problem:
            raise ModelUnavailable(
                f"model {self.info.path} answers wrongly on known images: {problem}",
                reason="bad_outputs",
            )

    def warm_up(self, batch_sizes: tuple[int, ...] = WARM_UP_SIZES) -> None:
        """Run the graph once per size so the first client does not pay for allocations."""
        for size in batch_sizes:
            probabilities, labels = self(np.zeros((size, 28, 28), dtype=np.uint8))
            if probabilities.shape != (size, 10) or labels.shape != (size,):
                raise ModelUnavailable(
                    f"model {self.info.path} returned probabilities of shape "
                    f"{probabilities.shape} and labels of shape {labels.shape} for {size} "
                    f"images; expected ({size}, 10) and ({size},)",
                    reason="bad_outputs",
                )


def known_images() -> np.ndarray:
    """A blank image, a stroke, a ring and fixed noise: inputs any sane model answers."""
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[1, 4:24, 13:16] = 255
    ys, xs = np.mgrid[:28, :28]
    radius = np.hypot(ys - 14, xs - 14)
    images[2][(radius > 6) & (radius < 9)] = 255
    images[3] = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    return images


def signature_problem(signature: Any) -> str | None:
    """What differs between ``signature`` and the contract of :data:`SIGNATURE`, if anything."""
    try:
        _, inputs = signature.structured_input_signature
        outputs = signature.structured_outputs
    except (AttributeError, TypeError, ValueError) as exc:
        return f"unreadable signature ({exc})"
    found = {name: (spec.dtype.name, spec.shape.as_list()) for name, spec in inputs.items()}
    expected_in = {n: (s["dtype"], s["shape"]) for n, s in SIGNATURE["inputs"].items()}
    if found != expected_in:
        return f"inputs {found}, expected {expected_in}"
    found_out = {name: (t.dtype.name, t.shape.as_list()) for name, t in outputs.items()}
    expected_out = {n: (s["dtype"], s["shape"]) for n, s in SIGNATURE["outputs"].items()}
    if found_out != expected_out:
        return f"outputs {found_out}, expected {expected_out}"
    return None


def outputs_problem(probabilities: np.ndarray, labels: np.ndarray, count: int) -> str | None:
    """What is wrong with a model's answers for ``count`` images, if anything."""
    if probabilities.shape != (count, 10) or labels.shape != (count,):
        return f"shapes {probabilities.shape} and {labels.shape} for {count} images"
    if not np.isfinite(probabilities).all():
        return "probabilities that are not finite"
    if (probabilities < 0).any() or (probabilities > 1).any():
        return "probabilities outside [0, 1]"
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        return f"probabilities summing to {probabilities.sum(axis=1).round(4).tolist()}"
    if (labels != probabilities.argmax(axis=1)).any():
        return "labels that are not the most probable digit"
    return None


def load(model: ModelInfo | str | Path, *, threads: int | None = None) -> SavedModel:
    """Load a version (a :class:`ModelInfo`, a version directory or a model root).

    ``threads`` sets TensorFlow's intra- and inter-op threads for the process (the first
    load decides; None keeps TensorFlow's default of one per core). Raises
    :class:`ModelUnavailable` with the reason when the files do not load.
    """
    info = model if isinstance(model, ModelInfo) else resolve_model(model)
    tf = serving_tensorflow()
    _configure(tf, threads)
    try:
        loaded = tf.saved_model.load(str(info.path))
        signature = loaded.signatures[SIGNATURE_NAME]
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelUnavailable(
            f"model {info.path} could not be loaded ({type(exc).__name__}: {first_line}); "
            + TRAIN_HINT.format(root=info.path.parent),
            reason="load_failed",
        ) from exc
    served = SavedModel(info, signature, loaded, tf)
    served.use_direct_entry()
    return served


def _direct_entry(signature: Any, tf: Any) -> Callable[[Any], tuple[Any, Any]]:
    """``batch -> (probabilities, label)`` through one eager ``execute`` of the
    signature's function, with the attributes the signature's own call passes."""
    from tensorflow.python.eager import context, execute

    function = signature._inference_function
    captured = list(signature.captured_inputs)
    ctx = context.context()
    attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
    name = function.name.decode()
    outputs = len(function.function_type.flat_outputs)
    # Flat outputs follow the structured outputs' keys in sorted order (tf.nest's order).
    keys = sorted(signature.structured_outputs)
    if outputs != len(keys) or set(keys) != {"probabilities", "label"}:
        raise ValueError(f"outputs {keys}")
    p_index, l_index = keys.index("probabilities"), keys.index("label")

    def run(batch: Any) -> tuple[Any, Any]:
        flat = execute.execute(name, outputs, [batch, *captured], attrs, ctx)
        return flat[p_index], flat[l_index]

    return run
