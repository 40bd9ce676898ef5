"""The mnist-train command line: help, argument checks and data errors without tracebacks."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_core.dataset import FILES
from mnist_core.idx import encode_idx
from training.cli import build_parser, main
from training.data import resolve_data_dir

SCRIPT = Path(sys.executable).parent / "mnist-train"


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "training"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_help_explains_every_flag() -> None:
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    actions = [a for a in build_parser()._actions if not isinstance(a, argparse._HelpAction)]
    expected = {
        "--impl", "--data-dir", "--model-dir", "--epochs", "--batch-size", "--hidden-units",
        "--optimizer", "--learning-rate", "--seed", "--train-limit", "--deterministic",
        "--report", "--verbose",
    }  # fmt: skip
    assert {a.option_strings[0] for a in actions} == expected
    for action in actions:
        assert action.help and len(action.help) > 20, action.option_strings
        for flag in action.option_strings:
            assert flag in help_text
        assert " ".join(action.help.split()[:4]) in help_text
    assert "default: keras 5, naive 10" in help_text


def test_python_dash_m_training_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: mnist-train")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "must be a positive integer"),
        (["--batch-size", "x"], "invalid"),
        (["--learning-rate", "-1"], "must be a positive number"),
        (["--impl", "torch"], "invalid choice"),
        (["--optimizer", "lbfgs"], "invalid choice"),
    ],
)
def test_bad_flags_are_rejected_before_any_work(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(flags)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def _broken_data_dir(directory: Path) -> Path:
    directory.mkdir()
    for stem in FILES.values():
        (directory / stem).write_bytes(encode_idx(np.zeros(3, np.uint8)))
    (directory / FILES["train_images"]).write_bytes(b"\x00\x00\x08\x03\x00\x00")
    return directory


def test_data_error_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    data_dir = _broken_data_dir(tmp_path / "data")
    env = {**os.environ, "MNIST_DATA_DIR": str(tmp_path / "unused")}
    result = run_script("--data-dir", str(data_dir), "--model-dir", str(tmp_path / "m"), env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        f"mnist-train: {data_dir / FILES['train_images']}: truncated header (6 of 16 bytes)\n"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "m").exists()


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "MNIST_DATA_DIR": str(tmp_path / "missing")}
    result = run_script("--model-dir", str(tmp_path / "m"), env=env)
    assert result.returncode == 2
    assert result.stderr == f"mnist-train: {tmp_path / 'missing'}: data directory not found\n"


def test_flag_wins_over_environment_and_neither_means_keras(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("MNIST_DATA_DIR")
    # None selects keras.datasets.mnist.load_data(); the download itself is not exercised
    # (no network here).
    assert resolve_data_dir(None) is None
    assert resolve_data_dir("") is None


# TensorFlow's C++ log lines (absl's format) and the notes printed around them.
NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} |WARNING: All log messages before absl|To enable the)")


def test_a_training_run_prints_its_progress_without_tensorflows_native_log(
    tmp_path: Path, mnist_data_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    result = run_script(
        "--data-dir", str(mnist_data_dir), "--model-dir", str(tmp_path / "mnist"),
        "--epochs", "1", "--train-limit", "1000", "--no-report", "--verbose", "2",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if NATIVE_LOG.match(line)]
    assert any(re.match(r"\d+/\d+ - .*accuracy: ", line) for line in lines), result.stdout
    assert (tmp_path / "mnist" / "1" / "saved_model.pb").exists()
