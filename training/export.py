"""Exporting a trained network as a versioned SavedModel that carries its own pre/post-processing.

Layout (TensorFlow Serving's): ``<model_root>/<version>/`` with ``saved_model.pb``,
``variables/`` and our ``metadata.json``. Versions are positive integers; a new export
takes the highest + 1. It is written to a hidden temporary directory beside the
versions and renamed into place, so no reader ever sees half a model.

The signature is described in ``mnist_core.modeldir``; scaling to [0, 1] and flattening
to 784 happen inside the graph.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow as tf

from mnist_core.modeldir import (
    INPUT_NAME,
    METADATA_FILE,
    SIGNATURE,
    SIGNATURE_NAME,
    existing_versions,
)

# mkdtemp creates 0700 directories; a service running as another user must read versions.
DIR_MODE = 0o755
FILE_MODE = 0o644


class ServingModule(tf.Module):
    """Wraps a ``float32 [N, 784] -> probabilities`` function with the raw-image contract."""

    def __init__(self, forward: Callable[[tf.Tensor], tf.Tensor], trackable: object) -> None:
        super().__init__(name="mnist_serving")
        # Keeping the network as an attribute makes the SavedModel track its variables.
        self.network = trackable
        self._forward = forward

    @tf.function(
        input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name=INPUT_NAME)],
        jit_compile=False,
    )
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.reshape(tf.cast(images, tf.float32) / 255.0, [-1, 28 * 28])
        probabilities = self._forward(pixels)
        return {
            "probabilities": tf.identity(probabilities, name="probabilities"),
            "label": tf.argmax(probabilities, axis=1, output_type=tf.int64, name="label"),
        }


def make_world_readable(directory: Path) -> None:
    """Set ``DIR_MODE`` on ``directory`` and every folder below it, ``FILE_MODE`` on files."""
    os.chmod(directory, DIR_MODE)
    for parent, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(parent, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(parent, name), FILE_MODE)


def export(
    forward: Callable[[tf.Tensor], tf.Tensor],
    trackable: object,
    model_root: str | Path,
    metadata: dict[str, Any],
    *,
    before_publish: Callable[[Path], None] | None = None,
) -> Path:
    """Export ``forward`` as the next version under ``model_root``; returns its directory.

    ``before_publish`` is called with the temporary directory after the model and
    ``metadata.json`` are written and before the rename: the training job writes its
    report there so it is published with the version. If it raises, nothing is published.
    ``metadata`` gains ``version``, ``created`` (UTC, ISO 8601) and ``signature``.
    """
    root = Path(model_root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    try:
        module = ServingModule(forward, trackable)
        tf.saved_model.save(module, str(tmp), signatures={SIGNATURE_NAME: module.serve})
        versions = existing_versions(root)
        version = (versions[-1] if versions else 0) + 1
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        meta = {**metadata, "version": version, "created": created, "signature": SIGNATURE}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if before_publish is not None:
            before_publish(tmp)
        make_world_readable(tmp)
        target = root / str(version)
        # rename() is atomic on one file system and fails if a concurrent export took the
        # number; in that case try the next one.
        while True:
            try:
                os.rename(tmp, target)
                break
            except OSError:
                if not target.exists():
                    raise
                version += 1
                meta["version"] = version
                (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
                target = root / str(version)
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
