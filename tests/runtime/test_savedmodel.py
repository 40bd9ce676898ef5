"""The one model runtime: what the service, ``mnist-batch --local`` and the benchmark call.

All three paths load through :func:`runtime.savedmodel.load` (``tests/test_layers.py``
checks nobody else loads a SavedModel); here they give the same bytes for the same
images, and the runtime itself is checked against the raw signature.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from batch.local import LocalModel
from mnist_core.errors import ModelUnavailable
from runtime import savedmodel


@pytest.fixture(scope="module")
def model(trained_model_root: Path) -> savedmodel.SavedModel:
    return savedmodel.load(trained_model_root)


@pytest.mark.parametrize("count", [1, 7, 300])
def test_service_local_job_and_benchmark_give_identical_bytes(
    model: savedmodel.SavedModel,
    trained_model_root: Path,
    service_url: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    count: int,
) -> None:
    images = mnist_test_set[0][:count]
    probabilities, labels = model(images)  # what the worker's batcher and the bench call

    local = LocalModel(trained_model_root).predict(images)  # mnist-batch --local
    buffer = io.BytesIO()
    np.save(buffer, images)
    response = httpx.post(
        f"{service_url}/predict_npy",
        content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    served = response.json()["predictions"]
    served_probabilities = np.array([p["probabilities"] for p in served], dtype=np.float32)

    assert probabilities.dtype == np.float32
    assert local.probabilities.tobytes() == probabilities.tobytes()
    assert served_probabilities.tobytes() == probabilities.tobytes()
    assert local.labels.tolist() == labels.tolist() == [p["label"] for p in served]


def test_the_runtime_matches_the_raw_signature_and_one_image_is_bit_stable(
    model: savedmodel.SavedModel, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    import tensorflow as tf

    images = mnist_test_set[0][:64]
    signature = tf.saved_model.load(str(model.info.path)).signatures["serving_default"]
    raw = signature(images=tf.constant(images))
    probabilities, labels = model(images)
    np.testing.assert_allclose(probabilities, raw["probabilities"].numpy(), rtol=0, atol=1e-6)
    assert labels.tolist() == raw["label"].numpy().tolist()
    # One image alone gives the bytes it gets inside any larger call.
    for index in (0, 5):
        alone, label = model(images[index : index + 1])
        assert alone.shape == (1, 10) and label.shape == (1,)
        assert alone.tobytes() == probabilities[index : index + 1].tobytes()


def test_a_damaged_version_is_refused_with_its_reason(
    trained_model_root: Path, tmp_path: Path
) -> None:
    incomplete = tmp_path / "incomplete" / "1"
    shutil.copytree(trained_model_root / "1", incomplete)
    shutil.rmtree(incomplete / "variables")
    with pytest.raises(ModelUnavailable) as caught:
        savedmodel.load(incomplete.parent)
    assert caught.value.reason == "incomplete"
    assert "variables is missing" in caught.value.message

    corrupt = tmp_path / "corrupt" / "1"
    shutil.copytree(trained_model_root / "1", corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(ModelUnavailable) as caught:
        savedmodel.load(corrupt)
    assert caught.value.reason == "load_failed"
    assert "could not be loaded" in caught.value.message


def test_the_direct_entry_gives_the_signatures_own_bytes_on_the_test_set(
    model: savedmodel.SavedModel, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    assert model.entry == "direct"
    plain = savedmodel.SavedModel(model.info, model._signature, model._loaded, model._tf)
    assert plain.entry == "signature"
    images = mnist_test_set[0]
    for size in (1, 7, 1024):
        for start in range(0, len(images), size if size > 1 else 97):
            chunk = images[start : start + size]
            (p, labels), (p_plain, labels_plain) = model(chunk), plain(chunk)
            assert p.tobytes() == p_plain.tobytes(), (size, start)
            assert labels.tolist() == labels_plain.tolist(), (size, start)


def test_an_entry_that_fails_or_differs_is_not_used(
    model: savedmodel.SavedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(signature: object, tf: object) -> object:
        raise AttributeError("no _inference_function")

    real = savedmodel._direct_entry
    candidate = savedmodel.SavedModel(model.info, model._signature, model._loaded, model._tf)
    monkeypatch.setattr(savedmodel, "_direct_entry", broken)
    assert "no direct entry (AttributeError" in (candidate.use_direct_entry() or "")
    assert candidate.entry == "signature"

    run = real(model._signature, model._tf)

    def off_by_a_bit(signature: object, tf: object) -> object:
        def nudged(batch: object) -> tuple[object, object]:
            probabilities, labels = run(batch)
            return probabilities * 1.0000001, labels

        return nudged

    monkeypatch.setattr(savedmodel, "_direct_entry", off_by_a_bit)
    refused = candidate.use_direct_entry()
    assert refused == "the direct entry answered differently from the signature"
    assert candidate.entry == "signature"
    probabilities, labels = candidate(savedmodel.known_images())
    expected = model(savedmodel.known_images())
    assert probabilities.tobytes() == expected[0].tobytes()
    assert labels.tolist() == expected[1].tolist()


_LEAN_THEN_FULL = """
import json, sys
import numpy as np
from runtime import savedmodel
images = np.load(sys.argv[2])
model = savedmodel.load(sys.argv[1], threads=1)
again = savedmodel.load(sys.argv[1], threads=1)  # as a second version would be
lean = {
    "again_same": again(images)[0].tobytes() == model(images)[0].tobytes(),
    "entry": model.entry,
    "public_api": "tensorflow._api.v2" in sys.modules,
    "modules": sum(name.startswith("tensorflow") for name in sys.modules),
    "probabilities": model(images)[0].tobytes().hex(),
}
import tensorflow as tf  # the public API, built now over the modules already loaded
raw = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
full = {
    "public_api": "tensorflow._api.v2" in sys.modules,
    "modules": sum(name.startswith("tensorflow") for name in sys.modules),
    "probabilities": raw(images=tf.constant(images))["probabilities"].numpy().tobytes().hex(),
    "lite": callable(tf.lite.Interpreter),
}
print(json.dumps({"lean": lean, "full": full}))
"""


def test_a_worker_loads_the_model_without_tensorflows_public_api_and_can_still_import_it(
    trained_model_root: Path, mnist_test_set: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    images = tmp_path / "images.npy"
    np.save(images, mnist_test_set[0][:64])
    done = subprocess.run(
        [sys.executable, "-c", _LEAN_THEN_FULL, str(trained_model_root / "1"), str(images)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    lean, full = result["lean"], result["full"]
    assert lean["entry"] == "direct" and lean["again_same"]
    assert not lean["public_api"] and full["public_api"]
    assert lean["modules"] < 0.6 * full["modules"]
    # The same bytes as the raw signature under the full import, in the same process.
    assert lean["probabilities"] == full["probabilities"]
    assert full["lite"]
