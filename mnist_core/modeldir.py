"""The on-disk layout of exported models, shared by the exporter and every reader.

``<model_root>/<version>/`` (TensorFlow Serving's layout) holds ``saved_model.pb``,
``variables/`` and ``metadata.json``. Versions are positive integers.

The ``serving_default`` signature takes ``images`` uint8 ``[None, 28, 28]`` (raw pixels
0..255) and returns ``probabilities`` float32 ``[None, 10]`` and ``label`` int64 ``[None]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def read_metadata(version_dir: str | Path) -> dict[str, Any]:
    """The ``metadata.json`` beside an exported model."""
    data: dict[str, Any] = json.loads((Path(version_dir) / METADATA_FILE).read_text())
    return data
