"""``mnist-batch --engine ray`` and the Ray Data pipeline on a real local Ray cluster.

One cluster of 2 CPUs serves the whole module (starting one costs seconds): jobs run in
this process join it because Ray is already initialised here, and jobs run as separate
driver processes join it by its address. Its raylet and so every actor process are
descendants of this process, which is how a test finds an actor to kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
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
from server import REPO

from batch.journal import partial_path, record_path
from batch.ray_cluster import RayCluster
from batch.ray_data import main as ray_data_main
from batch.ray_data import score_dataset
from mnist_core.dataset import load_dir
from mnist_core.modeldir import latest_version_dir, read_metadata
from mnist_core.rows import PROBABILITY_COLUMNS, format_rows, header
from runtime import savedmodel

ACTOR_PROCESS = "ray::ScoringActor"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The module's cluster (2 CPUs, usage statistics off); its GCS address for drivers."""
    cluster = RayCluster(num_cpus=2)
    ray = cluster.connect()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def local_run(trained_model_root: Path, mnist_data_dir: Path, workdir: Path) -> Run:
    """The 10,000 test images scored in process: the bytes every other run must match."""
    args = [str(mnist_data_dir / IMAGES_FILE), "--local", str(trained_model_root)]
    run = run_main([*args, "--labels", str(mnist_data_dir / LABELS_FILE)], workdir / "local.csv")
    assert run.status == 0, run.stderr
    return run


def ray_args(input_path: Path, model_root: Path, *extra: str) -> list[str]:
    return [str(input_path), "--engine", "ray", "--local", str(model_root), *extra]


def test_ray_engine_output_is_byte_identical_to_local(
    ray_address: str, local_run: Run, trained_model_root: Path, mnist_data_dir: Path, workdir: Path
) -> None:
    labels = ["--labels", str(mnist_data_dir / LABELS_FILE)]
    args = ray_args(mnist_data_dir / IMAGES_FILE, trained_model_root, *labels)
    run = run_main(args, workdir / "ray.csv")
    assert run.status == 0, run.stderr
    assert run.output.read_bytes() == local_run.output.read_bytes()
    assert reported_accuracy(run.stdout) == reported_accuracy(local_run.stdout)
    assert "images      10000 of 10000" in run.stdout
    assert "retries     0" in run.stdout


def actor_processes() -> set[psutil.Process]:
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[:1] == [ACTOR_PROCESS]:
                found.add(process)
        except psutil.Error:  # gone while we looked
            continue
    return found


def driver_command(input_path: Path, output: Path, model_root: Path, address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batch",
        *ray_args(input_path, model_root, "--ray-address", address),
        "-o",
        str(output),
        "--chunk-size",
        "20",
        "-q",
    ]


def wait_for_new_actors(before: set[psutil.Process], count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        new = actor_processes() - before
        if len(new) >= count:
            return sorted(new, key=lambda p: p.pid)
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} new actor processes in {JOB_TIMEOUT_S} s")


def test_an_actor_killed_mid_job_does_not_change_the_output(
    ray_address: str, local_run: Run, trained_model_root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "killed-actor.csv"
    before = actor_processes()
    command = driver_command(mnist_data_dir / IMAGES_FILE, output, trained_model_root, ray_address)
    with stopped_at_exit(start_client(command)) as driver:
        victim = wait_for_new_actors(before, 2)[0]
        wait_for_rows(output, 1000, driver)
        victim.send_signal(signal.SIGKILL)
        killed_at = committed_rows(output)
        stdout, stderr = driver.communicate(timeout=JOB_TIMEOUT_S)
    assert driver.returncode == 0, stderr
    assert killed_at < 10_000, "the job ended before the actor was killed"
    retries = int(stdout.split("retries", 1)[1].split()[0])
    assert retries >= 1, stdout  # the chunks the dead actor held were sent again
    assert output.read_bytes() == local_run.output.read_bytes()


def test_a_driver_killed_with_sigkill_resumes_to_the_same_bytes(
    ray_address: str, local_run: Run, trained_model_root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "killed-driver.csv"
    command = driver_command(mnist_data_dir / IMAGES_FILE, output, trained_model_root, ray_address)
    with stopped_at_exit(start_client(command)) as driver:
        wait_for_rows(output, 1000, driver)
        os.kill(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL
    interrupted_at = committed_rows(output)
    assert 1000 <= interrupted_at < 10_000
    assert not output.exists() and partial_path(output).exists()

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
    assert output.read_bytes() == local_run.output.read_bytes()
    assert not partial_path(output).exists() and not record_path(output).exists()


def test_the_training_set_job_reports_the_models_training_accuracy(
    ray_address: str, trained_model_root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    images, labels = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
    args = ray_args(mnist_data_dir / images, trained_model_root)
    run = run_main([*args, "--labels", str(mnist_data_dir / labels)], tmp_path / "train.csv")
    assert run.status == 0, run.stderr
    correct, total = reported_accuracy(run.stdout)
    assert total == 60_000

    (x_train, y_train), _ = load_dir(mnist_data_dir)
    model = savedmodel.load(trained_model_root)
    predicted = np.concatenate([model(x_train[i : i + 5000])[1] for i in range(0, 60_000, 5000)])
    assert correct == int((predicted == y_train).sum())
    version_dir = latest_version_dir(trained_model_root)
    assert version_dir is not None
    test_accuracy = read_metadata(version_dir)["test_accuracy"]
    # A model fits the images it learnt from a little better than unseen ones.
    assert test_accuracy <= correct / total <= test_accuracy + 0.03


def test_a_model_the_actors_cannot_load_stops_the_job_before_any_row(
    ray_address: str, trained_model_root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    (broken / "1").mkdir(parents=True)
    for item in (trained_model_root / "1").iterdir():
        if item.is_file():
            (broken / "1" / item.name).write_bytes(item.read_bytes())
    (broken / "1" / "variables").mkdir()
    (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    output = tmp_path / "never.csv"
    run = run_main(ray_args(mnist_data_dir / IMAGES_FILE, broken), output)
    assert run.status == 2
    assert f"the Ray actors could not load {broken / '1'}" in run.stderr
    assert not output.exists() and not partial_path(output).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "ray"], "--engine ray needs --local MODEL_DIR"),
        (["--engine", "local"], "--engine local needs --local MODEL_DIR"),
        (["--engine", "service", "--local", "m"], "--local MODEL_DIR scores with --engine local"),
        (["--local", "m", "--ray-address", "auto"], "--ray-address and --actors apply to"),
        (["--local", "m", "--engine", "ray", "--actors", "0"], "--actors and --actor-cpus"),
    ],
)
def test_engine_flags_that_do_not_fit_are_refused(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from batch.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["digits.npy", "-o", str(tmp_path / "o.csv"), *args])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def parquet_rows(directory: Path) -> pa.Table:
    return pq.read_table(directory).sort_by("index")


def as_csv(table: pa.Table) -> str:
    probabilities = np.stack([table[name].to_numpy() for name in PROBABILITY_COLUMNS], axis=1)
    versions = set(table["model_version"].to_pylist())
    assert len(versions) == 1
    rows = format_rows(
        "csv",
        table["index"].to_pylist(),
        table["label"].to_numpy(),
        probabilities,
        versions.pop(),
    )
    return header("csv") + rows


def test_the_ray_data_pipeline_scores_npy_files_once_per_row(
    ray_address: str,
    local_run: Run,
    trained_model_root: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    images = mnist_test_set[0]
    first, second = tmp_path / "part-0.npy", tmp_path / "part-1.npy"
    np.save(first, images[:6500])
    np.save(second, images[6500:].reshape(-1, 784))
    output = tmp_path / "scores"
    # Read tasks of 3,000 rows: ranges cut across the two files' boundary and the batches.
    cluster = RayCluster()
    rows = score_dataset([first, second], output, trained_model_root, cluster, rows_per_read=3000)
    assert rows == 10_000
    table = parquet_rows(output)
    assert table["index"].to_pylist() == list(range(10_000))  # every row, exactly once
    assert as_csv(table) == local_run.output.read_text()


def test_the_ray_data_pipeline_reads_parquet_keyed_by_index(
    ray_address: str,
    local_run: Run,
    trained_model_root: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    images = mnist_test_set[0][:3000]
    order = np.random.default_rng(0).permutation(len(images))  # rows stored out of order
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for part, rows in enumerate(np.array_split(order, 2)):
        table = pa.table(
            {
                "index": rows.astype(np.int64),
                "image": [images[i].tobytes() for i in rows],  # plain binary, as others write it
            }
        )
        pq.write_table(table, inputs / f"part-{part}.parquet")
    output = tmp_path / "scores"
    status = ray_data_main([str(inputs), "-o", str(output), "--model", str(trained_model_root)])
    assert status == 0
    assert f"wrote 3000 rows to {output}" in capsys.readouterr().out
    expected = local_run.output.read_text().splitlines(keepends=True)[: 1 + 3000]
    assert as_csv(parquet_rows(output)) == "".join(expected)

    assert ray_data_main([str(inputs), "-o", str(output), "--model", "m"]) == 2  # not empty
