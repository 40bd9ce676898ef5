"""One pixel rule on every path: whole numbers 0..255, in any numeric type; fractions refused.

The same float ``.npy`` file goes to ``POST /predict_npy``, to the async job
(``/batch/submit``) and to ``mnist-batch``: all three accept whole-valued floats with the
same answers as uint8, and all three refuse a fraction, naming the image.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from batch.cli import main

JOB_TIMEOUT_S = 60


def run_batch(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([*args, "-q"])
    return status, err.getvalue()


def job(http: httpx.Client, path: Path) -> httpx.Response:
    task = http.post("/batch/submit", files={"file": (path.name, path.read_bytes())}).json()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (
        http.get("/batch/status", params={"task_id": task["task_id"]}).json()["status"]
        == "in_progress"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return http.get("/batch/get", params={"task_id": task["task_id"]})


@pytest.fixture
def files(tmp_path: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]) -> dict[str, Path]:
    images = mnist_test_set[0][:20]
    paths = {
        "uint8": tmp_path / "uint8.npy",
        "whole": tmp_path / "whole.npy",
        "fraction": tmp_path / "fraction.npy",
    }
    np.save(paths["uint8"], images)
    np.save(paths["whole"], images.astype(np.float64))
    fraction = images.astype(np.float32)
    fraction[13, 4, 4] = 127.5
    np.save(paths["fraction"], fraction)
    return paths


def test_whole_floats_are_pixels_on_every_path(
    service_url: str, files: dict[str, Path], tmp_path: Path
) -> None:
    with httpx.Client(base_url=service_url, timeout=60) as http:
        direct = {
            kind: http.post(
                "/predict_npy",
                content=files[kind].read_bytes(),
                headers={"content-type": "application/octet-stream"},
            ).json()["predictions"]
            for kind in ("uint8", "whole")
        }
        assert direct["whole"] == direct["uint8"]
        assert job(http, files["whole"]).content == job(http, files["uint8"]).content
    outputs = {}
    for kind in ("uint8", "whole"):
        outputs[kind] = tmp_path / f"{kind}.csv"
        status, err = run_batch([str(files[kind]), "-o", str(outputs[kind]), "--url", service_url])
        assert status == 0, err
    assert outputs["whole"].read_bytes() == outputs["uint8"].read_bytes()


def test_a_fraction_is_refused_on_every_path_naming_the_image(
    service_url: str, files: dict[str, Path], tmp_path: Path
) -> None:
    fraction = files["fraction"]
    with httpx.Client(base_url=service_url, timeout=60) as http:
        direct = http.post(
            "/predict_npy",
            content=fraction.read_bytes(),
            headers={"content-type": "application/octet-stream"},
        )
        assert direct.status_code == 400
        assert direct.json()["reason"] == "not_integer"
        assert direct.json()["index"] == 13
        queued = job(http, fraction)
        assert queued.status_code == 400
        assert queued.json()["reason"] == "invalid_file"
        assert queued.json()[
            "error"
        ] == f"{fraction.name}: image 13 has fractional pixel values" + (
            ": pixels are whole numbers 0..255 (an image scaled to [0, 1] must be multiplied"
            " by 255 and rounded first)"
        )
    output = tmp_path / "fraction.csv"
    status, err = run_batch([str(fraction), "-o", str(output), "--url", service_url])
    assert status == 2
    assert "image 13 has fractional pixel values" in err
    assert not output.exists()
