"""``--local`` resuming an unfinished output, and refusing to mix two model versions in one."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from batch.cli import main
from batch.journal import Journal, partial_path
from mnist_core.modeldir import METADATA_FILE
from mnist_core.rows import header
from mnist_core.sources import open_source


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*args, "-q"])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def two_versions(trained_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root holding version 1 and a copy of it published as version 2."""
    root = tmp_path_factory.mktemp("versions")
    shutil.copytree(trained_model_root / "1", root / "1")
    shutil.copytree(trained_model_root / "1", root / "2")
    metadata = json.loads((root / "2" / METADATA_FILE).read_text())
    (root / "2" / METADATA_FILE).write_text(json.dumps({**metadata, "version": 2}))
    return root


def test_a_partial_output_resumes_only_with_the_model_version_that_began_it(
    two_versions: Path, mnist_test_set: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    images = tmp_path / "digits.npy"
    np.save(images, mnist_test_set[0][:10])
    whole = tmp_path / "whole.csv"
    status, _, err = run([str(images), "-o", str(whole), "--local", str(two_versions / "1")])
    assert status == 0, err
    lines = whole.read_text().splitlines(keepends=True)

    # What an interrupted run leaves behind: four rows scored by version 1, recorded.
    output = tmp_path / "resumed.csv"
    job = {"input": open_source(images).fingerprint(), "format": "csv", "labels": None}
    journal = Journal(output, job, header("csv"), restart=False)
    journal.progress.model_version = 1
    journal.commit("".join(lines[1:5]), 4)
    journal.close()

    args = [str(images), "-o", str(output), "--chunk-size", "3"]
    status, _, err = run([*args, "--local", str(two_versions)])  # serves version 2
    assert status == 1
    assert "scored by model version 1, but rows 4..6 by version 2" in err
    assert "--restart" in err
    assert not output.exists() and partial_path(output).exists()

    status, out, err = run([*args, "--local", str(two_versions / "1")])
    assert status == 0, err
    assert "resumed at row 4" in out
    assert output.read_bytes() == whole.read_bytes()

    status, _, err = run([*args, "--local", str(two_versions), "--restart"])
    assert status == 0, err
    assert {line.rsplit(",", 1)[1] for line in output.read_text().splitlines()[1:]} == {"2"}
