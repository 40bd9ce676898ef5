"""The dense runtime's derived files: used only while they match the SavedModel they came
from and agree with the signature's stored answers; otherwise derived again at load, or
refused, and never instead of a SavedModel that does not load.

Each test works on its own copy of the session's trained version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_core.errors import ModelUnavailable
from mnist_core.modeldir import latest_version_dir, resolve_model
from runtime import dense, runtimes
from runtime.checks import CheckRecords


@pytest.fixture
def version(trained_model_root: Path, tmp_path: Path) -> Path:
    source = latest_version_dir(trained_model_root)
    assert source is not None
    target = tmp_path / "mnist" / "1"
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="module")
def images(mnist_test_set: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(mnist_test_set[0])


def test_the_exporter_wrote_the_derived_files_with_their_digests(version: Path) -> None:
    manifest = json.loads((version / "derived" / "dense.json").read_text())
    assert manifest["runtime"] == "dense"
    assert manifest["activations"] == ["relu", "softmax"]
    assert set(manifest["source_sha256"]) == {
        "saved_model.pb",
        *(f"variables/{p.name}" for p in (version / "variables").iterdir()),
    }
    assert manifest["check_images"]["count"] == 10_000


def test_derived_files_load_without_tensorflow(version: Path, mnist_data_dir: Path) -> None:
    """In a fresh interpreter: the model loads, agrees, and TensorFlow was never imported."""
    code = (
        "import sys; from runtime.runtimes import load_runtime; "
        f"loaded = load_runtime({str(version)!r}, runtime='dense', "
        f"data_dir={str(mnist_data_dir)!r}); "
        "print(loaded.runtime, loaded.model.derived_at, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["dense", "export", "False"]


def _with_manifest_edit(version: Path, **changes: object) -> None:
    path = version / "derived" / "dense.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("weights", "dense.npz does not match its manifest"),
        ("reference", "dense-reference.npz does not match its manifest"),
        ("variables", "not made from this SavedModel's files"),
        ("images", "checked on other test images"),
        ("format", "not 1"),
        ("missing", "no derived/dense.json"),
    ],
)
def test_files_that_do_not_match_are_not_used(
    version: Path, images: np.ndarray, damage: str, why: str
) -> None:
    derived = version / "derived"
    if damage == "weights":
        (derived / "dense.npz").write_bytes((derived / "dense.npz").read_bytes()[:-10] + b"0" * 10)
    elif damage == "reference":
        with (derived / "dense-reference.npz").open("ab") as f:
            f.write(b"x")
    elif damage == "variables":
        data = next((version / "variables").glob("variables.data-*"))
        raw = bytearray(data.read_bytes())
        raw[100] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "format":
        _with_manifest_edit(version, format=99)
    elif damage == "missing":
        shutil.rmtree(derived)
    checked = images[::-1].copy() if damage == "images" else images
    model, problem = dense.load_derived(resolve_model(version), checked)
    assert model is None
    assert problem is not None and why in problem


def test_weights_that_disagree_with_the_stored_answers_are_refused(
    version: Path, images: np.ndarray
) -> None:
    """Consistent digests but weights off by a little: the agreement check catches it."""
    derived = version / "derived"
    with np.load(derived / "dense.npz") as arrays:
        weights = {name: arrays[name].copy() for name in arrays.files}
    weights["bias_1"][3] += 1e-4
    np.savez(derived / "dense.npz", **weights)  # type: ignore[arg-type]
    digest = hashlib.sha256((derived / "dense.npz").read_bytes()).hexdigest()
    _with_manifest_edit(version, weights_sha256=digest)
    model, problem = dense.load_derived(resolve_model(version), images, batches=(1024,))
    assert model is None
    assert problem is not None and "differ" in problem


def test_unusable_files_are_derived_again_at_load_from_the_signature(
    version: Path, mnist_data_dir: Path
) -> None:
    shutil.rmtree(version / "derived")
    loaded = runtimes.load_runtime(version, runtime="dense", data_dir=mnist_data_dir)
    assert loaded.runtime == "dense" and loaded.fallback is None
    assert loaded.note is not None and "derived at load" in loaded.note
    assert loaded.model.derived_at == "load"


def test_a_savedmodel_that_does_not_load_is_not_served_from_its_derived_files(
    version: Path, mnist_data_dir: Path
) -> None:
    """The SavedModel stays the artifact: intact derived files do not stand in for it."""
    pb = version / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:200])
    with pytest.raises(ModelUnavailable) as raised:
        runtimes.load_runtime(version, runtime="dense", data_dir=mnist_data_dir)
    assert raised.value.reason == "load_failed"


def test_a_network_that_is_not_a_dense_stack_is_refused() -> None:
    square = [np.zeros((784, 784), np.float32), np.zeros(784, np.float32)]
    problem = dense.layers_problem(square)
    assert problem is not None and "784 outputs" in problem
    assert dense.layers_problem([np.zeros((784, 10), np.float32)]) is not None
    ok = [np.zeros((784, 16), np.float32), np.zeros(16, np.float32)]
    ok += [np.zeros((16, 10), np.float32), np.zeros(10, np.float32)]
    assert dense.layers_problem(ok) is None


def test_the_command_derives_for_a_version_exported_before(
    version: Path, mnist_data_dir: Path
) -> None:
    shutil.rmtree(version / "derived")
    assert dense.main([str(version), "--data-dir", str(mnist_data_dir)]) == 0
    images = dense.agreement.check_images(mnist_data_dir)
    assert images is not None
    model, problem = dense.load_derived(resolve_model(version), images, batches=(1024,))
    assert problem is None and model is not None


def _record_of(checks: Path, version: int = 1) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads((checks / f"{version}.json").read_text())
    return stored


def test_the_run_check_records_a_verdict_the_workers_take(
    version: Path, images: np.ndarray, mnist_data_dir: Path, tmp_path: Path
) -> None:
    """`python -m runtime.dense --check-into` checks and records; a worker's load takes
    the record of exactly its files and settings, which the record's verdict shows."""
    checks = tmp_path / "checks"
    CheckRecords(checks).announce([1])
    assert (
        dense.main([str(version), "--data-dir", str(mnist_data_dir), "--check-into", str(checks)])
        == 0
    )
    assert not (checks / "1.pending").exists()
    stored = _record_of(checks)
    assert stored["problem"] is None
    assert (
        stored["key"]["weights_sha256"]
        == json.loads((version / "derived" / "dense.json").read_text())["weights_sha256"]
    )

    model, problem = dense.load_derived(
        resolve_model(version), images, records=CheckRecords(checks)
    )
    assert problem is None and model is not None and model.checked_by_run

    # The verdict is the record's: one that says the files disagree is believed...
    (checks / "1.json").write_text(json.dumps({**stored, "problem": "recorded refusal"}))
    model, problem = dense.load_derived(
        resolve_model(version), images, records=CheckRecords(checks)
    )
    assert model is None and problem == "recorded refusal"

    # ...but only for exactly what it names: other settings are checked again, and recorded.
    for field, value in [("blas_threads", "7"), ("weights_sha256", "0" * 64), ("batches", [1024])]:
        other = {**stored, "key": {**stored["key"], field: value}, "problem": "stale"}
        (checks / "1.json").write_text(json.dumps(other))
        model, problem = dense.load_derived(
            resolve_model(version), images, records=CheckRecords(checks)
        )
        assert problem is None and model is not None and not model.checked_by_run, field
        assert _record_of(checks) == stored, field


def test_a_worker_waits_for_an_announced_check_and_not_for_ever(
    version: Path, images: np.ndarray, tmp_path: Path
) -> None:
    records = CheckRecords(tmp_path / "checks", wait_s=30)
    records.announce([1])
    key = {"any": "key"}
    writer = threading.Timer(0.3, records.record, args=(1, key, None))
    writer.start()
    started = time.monotonic()
    verdict = records.verdict(1, key)
    writer.join()
    assert verdict is not None and verdict.problem is None
    assert 0.25 <= time.monotonic() - started < 10

    stalled = CheckRecords(tmp_path / "stalled", wait_s=0.2)
    stalled.announce([1])  # a checker that never records (killed)
    started = time.monotonic()
    assert stalled.verdict(1, key) is None
    assert time.monotonic() - started < 5
    model, problem = dense.load_derived(
        resolve_model(version), images, batches=(1024,), records=stalled
    )
    assert problem is None and model is not None and not model.checked_by_run


def test_the_run_check_always_withdraws_its_announcements(
    version: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    """A version that does not load is left to the worker that loads it; without test
    images nothing is recorded; either way no worker is left waiting."""
    checks = tmp_path / "checks"
    broken = tmp_path / "mnist" / "2"
    broken.mkdir()
    records = CheckRecords(checks)
    records.announce([1, 2])
    assert dense.check_into(checks, [broken, version], str(mnist_data_dir)) == 0
    assert sorted(p.name for p in checks.iterdir()) == ["1.json"]
    (checks / "1.json").unlink()
    records.announce([1, 2])
    assert dense.check_into(checks, [version, broken], None) == 0
    assert list(checks.iterdir()) == []
