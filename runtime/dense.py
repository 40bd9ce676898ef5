"""The network's forward pass in NumPy, derived from a SavedModel and checked against it.

The chapter-2 network is two matrix products (784 -> 512 relu -> 10 softmax). Its
signature costs about 0.5 ms a call however small the batch; the products themselves
take about 40 microseconds for one image. This runtime reads the signature's variables
and computes the same thing in float32 with NumPy. Like every derived runtime it is used
only if it agrees with the signature on the MNIST test images (:mod:`runtime.agreement`).

Derived at export (:func:`write_derived`, called by the training job), it needs no
TensorFlow when a worker loads it. ``derived/`` beside the SavedModel holds the weights,
the signature's own answers on the test images and the sha256 of every file involved,
the SavedModel's among them. A worker checks that the files still match, recomputes
the test images at every batch regime and compares with the stored answers, and never
imports TensorFlow; under ``mnist-serve`` that comparison is made once for all workers
while BentoML starts (:mod:`runtime.checks`). A version without the files (or whose
files no longer match) is derived at load from the loaded signature's variables and
checked against the live signature.

Rows are not byte-identical across batch sizes (OpenBLAS picks its kernels by shape; the
same image's probabilities move by up to 7e-7 between batch sizes), within the 1e-6
contract but not the signature runtime's bytes, which do not depend on how requests were
merged or a job was chunked.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import ModelInfo, resolve_model

from . import agreement, checks
from .checks import CheckRecords
from .savedmodel import Outputs, SavedModel

DERIVED_DIR = "derived"
WEIGHTS_FILE = "dense.npz"
REFERENCE_FILE = "dense-reference.npz"
MANIFEST_FILE = "dense.json"
FORMAT = 1
INPUT_SIZE = 28 * 28
CLASSES = 10

Layers = list[tuple[np.ndarray, np.ndarray]]


class DenseModel(agreement.DerivedModel):
    """Dense layers, relu between them and softmax after the last; callable like
    :class:`~runtime.savedmodel.SavedModel`. Stateless, so any thread may call it."""

    runtime = "dense"

    def __init__(self, info: ModelInfo, layers: Layers, *, derived_at: str) -> None:
        self.info = info
        self.derived_at = derived_at  # "export" (no TensorFlow needed) or "load"
        self.checked_by_run = False  # True: this run's start-up check, not this process
        self._layers = [
            (np.ascontiguousarray(k, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))
            for k, b in layers
        ]

    def __call__(self, images: np.ndarray) -> Outputs:
        """``uint8 [N, 28, 28]`` -> (probabilities float32 ``[N, 10]``, labels int64 ``[N]``).

        The same operations as the signature's graph, in its order: scale to [0, 1] in
        float32, then each layer's product plus bias; softmax as ``exp(z - max) / sum``.
        """
        x = images.reshape(len(images), INPUT_SIZE).astype(np.float32)
        x /= np.float32(255.0)
        last = len(self._layers) - 1
        for index, (kernel, bias) in enumerate(self._layers):
            x = _product(x, kernel)
            x += bias
            if index < last:
                np.maximum(x, 0, out=x)
        x -= x.max(axis=1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=1, keepdims=True)
        return x, x.argmax(axis=1).astype(np.int64)


PAIRED_ROWS = range(3, 8)
"""Batch sizes computed two rows at a time: OpenBLAS's gemm copies (packs) the whole
kernel on every call, which for 3 to 7 rows costs more than the arithmetic, while one or
two rows take its cheaper small-matrix path (measured: 7 rows in 122 us paired, 159 us
whole; 8 rows cost the same either way)."""


def _product(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    if len(x) not in PAIRED_ROWS:
        whole: np.ndarray = x @ kernel
        return whole
    out = np.empty((len(x), kernel.shape[1]), dtype=np.float32)
    for start in range(0, len(x), 2):
        np.matmul(x[start : start + 2], kernel, out=out[start : start + 2])
    return out


def layers_problem(arrays: list[np.ndarray]) -> str | None:
    """Why ``arrays`` (kernel, bias, kernel, bias, ...) are not a 784 -> ... -> 10 stack."""
    if not arrays or len(arrays) % 2:
        return f"{len(arrays)} variables, not kernel and bias pairs"
    width = INPUT_SIZE
    for kernel, bias in zip(arrays[::2], arrays[1::2], strict=True):
        if kernel.ndim != 2 or bias.ndim != 1 or kernel.shape[0] != width:
            return f"a kernel of shape {kernel.shape} and bias {bias.shape} after width {width}"
        if kernel.shape[1] != bias.shape[0]:
            return f"a kernel of shape {kernel.shape} with a bias of shape {bias.shape}"
        width = kernel.shape[1]
    if width != CLASSES:
        return f"{width} outputs, not {CLASSES}"
    return None


def signature_layers(reference: SavedModel) -> tuple[Layers | None, str | None]:
    """The signature's variables as dense layers, in the order the graph holds them."""
    arrays = [np.asarray(v.numpy()) for v in reference._signature.variables]
    problem = layers_problem(arrays)
    if problem:
        return None, f"the signature is not a stack of dense layers ({problem})"
    return list(zip(arrays[::2], arrays[1::2], strict=True)), None


def derive(
    reference: SavedModel, images: np.ndarray, *, batches: tuple[int, ...] = agreement.CHECK_BATCHES
) -> tuple[DenseModel | None, str | None]:
    """From a loaded signature: (the model, None) if it agrees with it, else (None, why)."""
    layers, problem = signature_layers(reference)
    if layers is None:
        return None, problem
    model = DenseModel(reference.info, layers, derived_at="load")
    problem = agreement.disagreement(model, reference(images), images, batches)
    return (None, problem) if problem else (model, None)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def source_files(version_dir: Path) -> list[Path]:
    """The SavedModel's own files, which the derived weights must have come from."""
    files = [version_dir / "saved_model.pb"]
    files += sorted(p for p in (version_dir / "variables").iterdir() if p.is_file())
    return files


def _source_digests(version_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(version_dir)): _sha256(p) for p in source_files(version_dir)}


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def write_derived(version_dir: str | Path, images: np.ndarray) -> str | None:
    """Derive the dense model of the SavedModel in ``version_dir`` and write ``derived/``.

    Loads the SavedModel (TensorFlow), checks the derived model against it on ``images``
    and writes the weights, the signature's answers and the manifest only if it agrees.
    Returns None when written, else why not (nothing is written then).
    """
    from . import savedmodel

    directory = Path(version_dir)
    reference = savedmodel.load(directory)
    model, problem = derive(reference, images)
    if model is None:
        return problem
    probabilities, labels = reference(images)
    arrays = {}
    for i, (kernel, bias) in enumerate(model._layers):
        arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = kernel, bias
    weights = _npz_bytes(**arrays)
    answers = _npz_bytes(probabilities=probabilities, labels=labels)
    target = directory / DERIVED_DIR
    target.mkdir(exist_ok=True)
    (target / WEIGHTS_FILE).write_bytes(weights)
    (target / REFERENCE_FILE).write_bytes(answers)
    manifest = {
        "format": FORMAT,
        "runtime": DenseModel.runtime,
        "layers": len(model._layers),
        "activations": ["relu"] * (len(model._layers) - 1) + ["softmax"],
        "source_sha256": _source_digests(directory),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "reference_sha256": hashlib.sha256(answers).hexdigest(),
        "check_images": {"count": len(images), "sha256": _images_sha256(images)},
        "tolerance": agreement.TOLERANCE,
        "batches": list(agreement.CHECK_BATCHES),
    }
    (target / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return None


def load_derived(
    info: ModelInfo,
    images: np.ndarray,
    *,
    batches: tuple[int, ...] = agreement.CHECK_BATCHES,
    records: CheckRecords | None = None,
) -> tuple[DenseModel | None, str | None]:
    """From ``derived/`` without TensorFlow: (the model, None) if its files match the
    SavedModel and it agrees with the signature's stored answers on ``images``, else
    (None, why not). With ``records``, a verdict this run already reached on exactly
    these files and settings is taken instead of checking again, and a new one is
    recorded."""
    found, why_not = _read_derived(info, images)
    if found is None:
        return None, why_not
    model, expected, manifest = found
    key = {
        "weights_sha256": manifest["weights_sha256"],
        "reference_sha256": manifest["reference_sha256"],
        "images_sha256": manifest["check_images"]["sha256"],
        "batches": list(batches),
        "tolerance": agreement.TOLERANCE,
        **checks.environment(),
    }
    verdict = records.verdict(info.version, key) if records is not None else None
    if verdict is not None:
        problem = verdict.problem
        model.checked_by_run = True
    else:
        problem = agreement.disagreement(model, expected, images, batches)
        if records is not None:
            records.record(info.version, key, problem)
    return (None, problem) if problem else (model, None)


def _read_derived(
    info: ModelInfo, images: np.ndarray
) -> tuple[tuple[DenseModel, Outputs, dict[str, Any]] | None, str | None]:
    """The model in ``derived/``, the signature's stored answers and the manifest, if
    every file matches its digest and the SavedModel's files; else why not."""
    target = info.path / DERIVED_DIR
    try:
        manifest: dict[str, Any] = json.loads((target / MANIFEST_FILE).read_text())
        if manifest.get("format") != FORMAT:
            return None, f"derived files of format {manifest.get('format')!r}, not {FORMAT}"
        if _source_digests(info.path) != manifest["source_sha256"]:
            return None, "the derived weights were not made from this SavedModel's files"
        if _images_sha256(images) != manifest["check_images"]["sha256"]:
            return None, "the derived weights were checked on other test images"
        weights = (target / WEIGHTS_FILE).read_bytes()
        answers = (target / REFERENCE_FILE).read_bytes()
        if hashlib.sha256(weights).hexdigest() != manifest["weights_sha256"]:
            return None, f"{WEIGHTS_FILE} does not match its manifest"
        if hashlib.sha256(answers).hexdigest() != manifest["reference_sha256"]:
            return None, f"{REFERENCE_FILE} does not match its manifest"
        with np.load(io.BytesIO(weights)) as arrays:
            count = int(manifest["layers"])
            flat = [arrays[f"{kind}_{i}"] for i in range(count) for kind in ("kernel", "bias")]
        with np.load(io.BytesIO(answers)) as stored:
            expected = (stored["probabilities"], stored["labels"])
    except FileNotFoundError:
        return None, f"no {DERIVED_DIR}/{MANIFEST_FILE} (exported before derived runtimes)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable derived files ({type(exc).__name__}: {str(exc)[:200]})"
    problem = layers_problem(flat)
    if problem:
        return None, f"the derived weights are not a stack of dense layers ({problem})"
    model = DenseModel(info, list(zip(flat[::2], flat[1::2], strict=True)), derived_at="export")
    return (model, expected, manifest), None


def check_into(directory: Path, version_dirs: list[Path], data_dir: str | None) -> int:
    """Check each version's derived files and record the verdicts in ``directory`` for
    the workers of this run (:mod:`runtime.checks`); how many were refused."""
    records = CheckRecords(directory, wait_s=0)
    refused = 0
    try:
        images = agreement.check_images(data_dir)
        if images is None:
            return 0  # the workers fall back to the signature and say why
        for path in version_dirs:
            try:
                info = resolve_model(path)
            except ModelUnavailable:
                continue  # the worker that loads it says why
            _, problem = load_derived(info, images, records=records)
            refused += problem is not None
    finally:
        records.done(int(path.name) for path in version_dirs)
    return refused


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.dense VERSION_DIR...``: derive for versions exported before.
    With ``--check-into DIR``, only check them and record the verdicts there."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m runtime.dense", description=main.__doc__)
    parser.add_argument("version_dirs", nargs="+", type=Path)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"))
    parser.add_argument("--check-into", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    if args.check_into is not None:
        return 1 if check_into(args.check_into, args.version_dirs, args.data_dir) else 0
    images = agreement.check_images(args.data_dir)
    if images is None:
        parser.error(f"no MNIST test images in {args.data_dir} (--data-dir or MNIST_DATA_DIR)")
    failed = 0
    for version_dir in args.version_dirs:
        refused = write_derived(version_dir, images)
        print(f"{version_dir}: {'refused: ' + refused if refused else 'derived'}", flush=True)
        failed += refused is not None
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
