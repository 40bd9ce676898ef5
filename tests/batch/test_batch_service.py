"""Batch jobs end to end: the real model, the real server, interrupted and resumed jobs.

The 10,000 MNIST test images are scored once through the session's server and once in
process (``--local``); the other tests compare their outputs with those two files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from batch_runs import (
    IMAGES_FILE,
    JOB_TIMEOUT_S,
    LABELS_FILE,
    Run,
    committed_rows,
    reported_accuracy,
    run_main,
    start_client,
    stopped_at_exit,
    wait_for_rows,
)
from PIL import Image
from server import REPO, ServiceProcess

from batch.cli import main
from batch.journal import partial_path, record_path
from mnist_core.idx import write_idx
from mnist_core.modeldir import latest_version_dir, read_metadata

STOP_TIMEOUT_S = 3.0
"""How long a stopped server gets to exit before it is killed: going away either way."""


def read_rows(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Keys, labels, probabilities (n, 10) and model versions of a CSV output."""
    lines = path.read_text().splitlines()
    probability_columns = [f"p{d}" for d in range(10)]
    assert lines[0].split(",")[1:] == ["label", "confidence", *probability_columns, "model_version"]
    keys = [line.split(",", 1)[0] for line in lines[1:]]
    table = np.array([line.split(",")[1:] for line in lines[1:]], dtype=np.float64)
    return keys, table[:, 0].astype(np.int64), table[:, 2:12], table[:, 12].astype(np.int64)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch")


@pytest.fixture(scope="module")
def server_run(service_url: str, mnist_data_dir: Path, workdir: Path) -> Run:
    """The 10,000 test images through the session's server, uninterrupted."""
    args = [str(mnist_data_dir / IMAGES_FILE), "--url", service_url]
    run = run_main([*args, "--labels", str(mnist_data_dir / LABELS_FILE)], workdir / "server.csv")
    assert run.status == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def local_run(trained_model_root: Path, mnist_data_dir: Path, workdir: Path) -> Run:
    args = [str(mnist_data_dir / IMAGES_FILE), "--local", str(trained_model_root)]
    run = run_main([*args, "--labels", str(mnist_data_dir / LABELS_FILE)], workdir / "local.csv")
    assert run.status == 0, run.stderr
    return run


def test_server_and_local_agree_and_report_the_model_accuracy(
    server_run: Run,
    local_run: Run,
    trained_model_root: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
) -> None:
    _, y_test = mnist_test_set
    keys, labels, probabilities, versions = read_rows(server_run.output)
    local_keys, local_labels, local_probabilities, _ = read_rows(local_run.output)
    assert keys == local_keys == [str(i) for i in range(10_000)]
    np.testing.assert_array_equal(labels, local_labels)
    np.testing.assert_allclose(probabilities, local_probabilities, rtol=0, atol=1e-5)
    assert set(versions) == {1}

    version_dir = latest_version_dir(trained_model_root)
    assert version_dir is not None
    test_accuracy = read_metadata(version_dir)["test_accuracy"]
    for run in (server_run, local_run):
        correct, total = reported_accuracy(run.stdout)
        assert total == 10_000
        assert correct == int((labels == y_test).sum())
        assert correct == round(test_accuracy * total)
        assert "images      10000 of 10000" in run.stdout
        assert "failures    0" in run.stdout
        assert "confusion matrix" in run.stdout


def batch_command(input_path: Path, output: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "batch", str(input_path), "-o", str(output), "--url", url, "-q"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGKILL, -9), (signal.SIGINT, 130)])
def test_an_interrupted_client_resumes_to_the_same_bytes(
    server_run: Run,
    service_url: str,
    mnist_data_dir: Path,
    tmp_path: Path,
    signum: int,
    status: int,
) -> None:
    output = tmp_path / "resumed.csv"
    command = [
        *batch_command(mnist_data_dir / IMAGES_FILE, output, service_url),
        "--chunk-size",
        "20",
    ]
    with stopped_at_exit(start_client(command)) as client:
        wait_for_rows(output, 1000, client)
        os.kill(client.pid, signum)
        _, stderr = client.communicate(timeout=60)
    assert client.returncode == status, stderr
    interrupted_at = committed_rows(output)
    assert 1000 <= interrupted_at < 10_000
    assert not output.exists()
    assert partial_path(output).exists()

    rerun = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed at row {interrupted_at}" in rerun.stdout
    assert output.read_bytes() == server_run.output.read_bytes()
    assert not partial_path(output).exists() and not record_path(output).exists()


def test_a_job_survives_the_server_going_away_and_coming_back(
    server_run: Run, trained_model_root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "restarted.csv"
    server = ServiceProcess.start(trained_model_root, workers=1)
    port = int(server.url.rsplit(":", 1)[1])
    restarted: ServiceProcess | None = None
    command = [
        *batch_command(mnist_data_dir / IMAGES_FILE, output, server.url),
        "--chunk-size",
        "20",
        "--retries",
        "30",
    ]
    try:
        with stopped_at_exit(start_client(command)) as client:
            wait_for_rows(output, 1000, client)
            server.stop(timeout=STOP_TIMEOUT_S)
            time.sleep(0.5)  # answers received before the stop may still be committing
            stopped_at = committed_rows(output)
            time.sleep(1.0)
            assert client.poll() is None, "the client gave up while the server was down"
            assert committed_rows(output) == stopped_at < 10_000
            restarted = ServiceProcess.launch(trained_model_root, port=port, workers=1)
            restarted.wait_ready()
            stdout, stderr = client.communicate(timeout=JOB_TIMEOUT_S)
        assert client.returncode == 0, stderr
    finally:
        server.stop(timeout=STOP_TIMEOUT_S)
        if restarted is not None:
            restarted.stop(timeout=STOP_TIMEOUT_S)
    retries = int(re.search(r"^retries +(\d+)$", stdout, re.M).group(1))  # type: ignore[union-attr]
    assert retries > 0
    assert output.read_bytes() == server_run.output.read_bytes()


def write_format(kind: str, directory: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    flat = images.reshape(len(images), 784)
    if kind == "idx":
        return write_idx(directory / "digits-idx3-ubyte", images)
    if kind == "idx.gz":
        return write_idx(directory / "digits-idx3-ubyte.gz", images)
    if kind == "npy":
        np.save(directory / "digits.npy", flat)
        return directory / "digits.npy"
    if kind == "npz":
        np.savez_compressed(directory / "digits.npz", x_test=images, y_test=labels)
        return directory / "digits.npz"
    path = directory / "digits.csv"
    rows = [",".join(["label", *[f"pixel{i}" for i in range(784)]])]
    rows += [f"{label}," + ",".join(map(str, row)) for label, row in zip(labels, flat, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("kind", "output_name", "transport"),
    [
        ("idx", "o.csv", "auto"),
        ("idx.gz", "o.csv", "json"),
        ("npy", "o.csv", "auto"),
        ("npz", "o.jsonl", "auto"),
        ("csv", "o.csv", "auto"),
    ],
)
def test_each_input_format_is_scored(
    server_run: Run,
    service_url: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    kind: str,
    output_name: str,
    transport: str,
) -> None:
    x_test, y_test = mnist_test_set
    n = 13  # chunks of 4, 4, 4 and a single image
    path = write_format(kind, tmp_path, x_test[:n], y_test[:n])
    args = [str(path), "--url", service_url, "--chunk-size", "4", "--transport", transport]
    run = run_main(args, tmp_path / output_name)
    assert run.status == 0, run.stderr
    expected = server_run.output.read_text().splitlines()[1 : n + 1]
    if output_name.endswith(".jsonl"):
        rows = [json.loads(line) for line in run.output.read_text().splitlines()]
        assert [row["index"] for row in rows] == list(range(n))
        _, labels, probabilities, _ = read_rows(server_run.output)
        assert [row["label"] for row in rows] == labels[:n].tolist()
        np.testing.assert_array_equal([r["probabilities"] for r in rows], probabilities[:n])
    else:
        assert run.output.read_text().splitlines()[1:] == expected
    if kind in ("npz", "csv"):  # their own labels give an accuracy
        assert reported_accuracy(run.stdout)[1] == n


def write_pngs(directory: Path, images: np.ndarray) -> list[Path]:
    directory.mkdir()
    paths = []
    for i, image in enumerate(images):
        paths.append(directory / f"d{i:02d}.png")
        # Dark ink on white paper, as a photographed digit would be.
        Image.fromarray(255 - image).save(paths[-1])
    return paths


def test_a_directory_of_images_is_scored_like_uploads(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    paths = write_pngs(tmp_path / "pngs", mnist_test_set[0][:6])
    run = run_main(
        [str(tmp_path / "pngs"), "--url", service_url, "--chunk-size", "5"], tmp_path / "pngs.csv"
    )
    assert run.status == 0, run.stderr
    keys, labels, probabilities, _ = read_rows(run.output)
    assert keys == [p.name for p in paths]
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]
    answer = httpx.post(f"{service_url}/predict_image", files=files, timeout=60).json()
    assert labels.tolist() == [p["label"] for p in answer["predictions"]]
    # The answer spells float32 values; the CSV rounds the same values to 8 decimals.
    served = np.array([p["probabilities"] for p in answer["predictions"]], dtype=np.float32)
    np.testing.assert_allclose(probabilities, served, atol=1e-8, rtol=0)


def test_a_corrupt_input_file_gives_one_clear_error(
    mnist_data_dir: Path, service_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / IMAGES_FILE
    broken.write_bytes((mnist_data_dir / IMAGES_FILE).read_bytes()[:200_000])
    output = tmp_path / "never.csv"
    assert main([str(broken), "-o", str(output), "--url", service_url, "-q"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"mnist-batch: error: {broken}: ")
    assert not output.exists() and not partial_path(output).exists()


def test_a_4xx_stops_the_job_naming_the_input(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    paths = write_pngs(tmp_path / "pngs", mnist_test_set[0][:9])
    paths[6].write_bytes(b"not an image at all")
    args = [str(tmp_path / "pngs"), "--url", service_url, "--chunk-size", "3"]
    output = tmp_path / "pngs.csv"
    failed = run_main(args, output)
    assert failed.status == 1
    assert "the service rejected input 6 (d06.png) with HTTP 400: " in failed.stderr
    assert "not a readable" in failed.stderr
    assert "failures    1" in failed.stderr
    assert committed_rows(output) == 6  # the two chunks before the bad one are kept
    assert not output.exists()

    # Fixing the file changes the input: the rows kept so far may not belong to it any more.
    Image.fromarray(255 - mnist_test_set[0][6]).save(paths[6])
    refused = run_main(args, output)
    assert refused.status == 2
    assert "belongs to a job with a different input; rerun with --restart" in refused.stderr
    restarted = run_main([*args, "--restart"], output)
    assert restarted.status == 0, restarted.stderr
    assert read_rows(output)[0] == [p.name for p in paths]


def test_the_async_job_api_returns_the_clients_output(
    server_run: Run,
    service_url: str,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    npy = tmp_path / "t10k.npy"
    np.save(npy, mnist_test_set[0])
    with httpx.Client(base_url=service_url, timeout=60) as http:
        submitted = http.post("/batch/submit", files={"file": ("t10k.npy", npy.read_bytes())})
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (status := http.get("/batch/status", params={"task_id": task_id}).json())[
            "status"
        ] == "in_progress":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "completed", status
        result = http.get("/batch/get", params={"task_id": task_id})
        assert result.status_code == 200
        assert result.headers["content-type"].startswith("text/csv")
        assert result.content == server_run.output.read_bytes()

        bad = http.post("/batch/submit", files={"file": ("broken.npy", b"\x93NUMPY junk")})
        task_id = bad.json()["task_id"]
        while (status := http.get("/batch/status", params={"task_id": task_id}).json())[
            "status"
        ] == "in_progress":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "failed"
        error = http.get("/batch/get", params={"task_id": task_id})
        assert error.status_code == 400
        assert error.json()["error"].startswith("broken.npy: ")
