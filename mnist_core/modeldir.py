"""The on-disk layout of exported models, shared by the exporter and every reader.

``<model_root>/<version>/`` (TensorFlow Serving's layout) holds ``saved_model.pb``,
``variables/`` and ``metadata.json``. Versions are positive integers; a directory with
any other name (the exporter's hidden temporary one, for instance) is not a version.

The ``serving_default`` signature takes ``images`` uint8 ``[None, 28, 28]`` (raw pixels
0..255) and returns ``probabilities`` float32 ``[None, 10]`` and ``label`` int64 ``[None]``.

Everything here works without TensorFlow: what a version is, where the newest one is,
and what its metadata says. Loading and calling it is :mod:`runtime.savedmodel`'s job.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelUnavailable

MODEL_NAME = "mnist"
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"
SIGNATURE: dict[str, Any] = {
    "name": SIGNATURE_NAME,
    "inputs": {INPUT_NAME: {"dtype": "uint8", "shape": [None, 28, 28]}},
    "outputs": {
        "probabilities": {"dtype": "float32", "shape": [None, 10]},
        "label": {"dtype": "int64", "shape": [None]},
    },
}
METADATA_FILE = "metadata.json"
REQUIRED_FILES = ("saved_model.pb", "variables", METADATA_FILE)
REPORT_FILES = ("learning_curves.png", "confusion_matrix.png", "misclassified.png")
"""The training report the exporter writes beside each version (``--no-report``: none)."""
TRAIN_HINT = "train one with `make train` or `mnist-train --model-dir {root}`"


def existing_versions(model_root: str | Path) -> list[int]:
    """Integer version folders under ``model_root``, ascending; hidden temporaries excluded."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version_dir(model_root: str | Path) -> Path | None:
    """The highest version directory under ``model_root``, or None when there is none."""
    versions = existing_versions(model_root)
    return Path(model_root) / str(versions[-1]) if versions else None


def version_fingerprint(version_dir: str | Path) -> str:
    """What a version's files are now (names, sizes, modification times), as a digest.

    Versions are treated as immutable once published: a version that failed to load is
    tried again only when this changes (a copy that was still being written, say).
    """
    digest = hashlib.sha256()
    root = Path(version_dir)
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = Path(folder, name)
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while we looked: the next look sees the change
            relative = path.relative_to(root)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_metadata(version_dir: str | Path) -> dict[str, Any]:
    """The ``metadata.json`` beside an exported model."""
    data: dict[str, Any] = json.loads((Path(version_dir) / METADATA_FILE).read_text())
    return data


@dataclass(frozen=True)
class ModelInfo:
    """One exported version, as its files and metadata describe it."""

    path: Path
    version: int
    implementation: str
    test_accuracy: float | None
    metadata: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """What clients are told about this version."""
        return {
            "name": MODEL_NAME,
            "version": self.version,
            "implementation": self.implementation,
            "test_accuracy": self.test_accuracy,
            "hyperparameters": self.metadata.get("hyperparameters", {}),
            "signature": SIGNATURE,
        }


def read_model_info(version_dir: str | Path) -> ModelInfo:
    """A version directory checked for its files and read, without TensorFlow.

    Raises :class:`ModelUnavailable` saying what is missing or unreadable.
    """
    version_dir = Path(version_dir)
    hint = TRAIN_HINT.format(root=version_dir.parent)
    for required in REQUIRED_FILES:
        if not (version_dir / required).exists():
            raise ModelUnavailable(
                f"model {version_dir} is incomplete: {required} is missing; {hint}",
                reason="incomplete",
            )
    try:
        metadata = read_metadata(version_dir)
        if not isinstance(metadata, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"model {version_dir} has an unreadable {METADATA_FILE} ({exc}); {hint}",
            reason="bad_metadata",
        ) from None
    accuracy = metadata.get("test_accuracy")
    version = int(version_dir.name) if version_dir.name.isdigit() else metadata.get("version")
    if not isinstance(version, int):
        raise ModelUnavailable(
            f"model {version_dir} has no version: name it <root>/<version>/", reason="bad_metadata"
        )
    return ModelInfo(
        path=version_dir,
        version=version,
        implementation=str(metadata.get("implementation", "unknown")),
        test_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        metadata=metadata,
    )


def find_model(model_root: str | Path) -> ModelInfo:
    """The highest version under ``model_root``; :class:`ModelUnavailable` if there is none."""
    root = Path(model_root)
    version_dir = latest_version_dir(root)
    if version_dir is None:
        raise ModelUnavailable(
            f"no model found under {root}/ (expected {root}/<version>/saved_model.pb); "
            + TRAIN_HINT.format(root=root),
            reason="no_model",
        )
    return read_model_info(version_dir)


def resolve_model(path: str | Path) -> ModelInfo:
    """A version directory as given, or the highest version under a model root."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return read_model_info(path)
    return find_model(path)
