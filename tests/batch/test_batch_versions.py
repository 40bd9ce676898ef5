"""``mnist-batch --model-version`` keeps a long job on one version while the service rolls out.

A 60,000-image job (the training images) runs as its own process against a two-worker
server; version 2 is published in the middle of it by copying version 1 into place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from batch_runs import run_main, start_client, stopped_at_exit, wait_for_rows
from server import ServiceProcess

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
SLOW = ["--chunk-size", "250", "--concurrency", "1"]  # long enough to roll out beneath it


def publish(root: Path, version: int) -> None:
    incoming = root / f".incoming-{version}"
    shutil.copytree(root / "1", incoming)
    metadata = json.loads((incoming / "metadata.json").read_text())
    (incoming / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    incoming.rename(root / str(version))


@pytest.fixture
def root(tmp_path: Path, trained_model_root: Path) -> Path:
    root = tmp_path / "mnist"
    root.mkdir()
    shutil.copytree(trained_model_root / "1", root / "1")
    return root


def serve(root: Path, policy: str) -> ServiceProcess:
    env = {"MNIST_MODEL_POLL_S": "0.5", "MNIST_VERSION_POLICY": policy}
    return ServiceProcess.start(root, env, workers=2)


def job(data: Path, output: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "batch", str(data / TRAIN_IMAGES), "-o", str(output),
        "--labels", str(data / TRAIN_LABELS), "--url", url, "-q", *SLOW, *extra,
    ]  # fmt: skip


def served(url: str) -> list[int]:
    return httpx.get(f"{url}/models", timeout=10).json()["served_versions"]  # type: ignore[no-any-return]


@pytest.fixture
def undisturbed(root: Path, mnist_data_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """The job's output with nothing published meanwhile."""
    output = tmp_path / "undisturbed.csv"
    with serve(root, "latest") as server:
        run = run_main(
            [str(mnist_data_dir / TRAIN_IMAGES), "--url", server.url, "--model-version", "1"],
            output,
        )
    assert run.status == 0, run.stderr
    yield output


def test_a_pinned_job_finishes_on_its_version_while_another_is_published(
    root: Path, mnist_data_dir: Path, tmp_path: Path, undisturbed: Path
) -> None:
    output = tmp_path / "pinned.csv"
    with serve(root, "latest:2") as server:
        client = start_client(job(mnist_data_dir, output, server.url, "--model-version", "1"))
        with stopped_at_exit(client):
            rows = wait_for_rows(output, 5_000, client)
            publish(root, 2)
            _, err = client.communicate(timeout=600)
            assert client.returncode == 0, err
        assert rows < 60_000
        assert served(server.url) == [1, 2]
    assert output.read_bytes() == undisturbed.read_bytes()


def test_with_the_default_policy_the_job_stops_clearly_and_restarts_on_the_new_version(
    root: Path, mnist_data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "rolled.csv"
    with serve(root, "latest") as server:
        client = start_client(job(mnist_data_dir, output, server.url, "--model-version", "1"))
        with stopped_at_exit(client):
            wait_for_rows(output, 5_000, client)
            publish(root, 2)
            _, err = client.communicate(timeout=600)
        assert client.returncode == 1, err
        assert "model version 1 is not served (served: 2)" in err
        assert "--model-version N --restart" in err
        assert not output.exists()

        restarted = subprocess.run(
            job(mnist_data_dir, output, server.url, "--model-version", "2", "--restart"),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert restarted.returncode == 0, restarted.stderr
        fresh = run_main(
            [str(mnist_data_dir / TRAIN_IMAGES), "--url", server.url, "--model-version", "2"],
            tmp_path / "fresh.csv",
        )
        assert fresh.status == 0, fresh.stderr
    assert output.read_bytes() == fresh.output.read_bytes()
    assert {line.rsplit(",", 1)[1] for line in output.read_text().splitlines()[1:]} == {"2"}
