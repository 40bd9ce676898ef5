"""Fixtures for the container tests: the image built here with podman, and a model volume.

These tests run real containers and take minutes, so they run only when selected
(``pytest -m containers``, which ``make test-containers`` and the CI stage of their own
do); otherwise each is skipped, saying how to run it. Selected, a missing or broken podman
is a failure, not a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from engine import Podman

BASE_IMAGE = "localhost/mnist-base:bookworm"
IMAGE = "localhost/mnist-serving:containers-test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.option.markexpr or ""
    if "containers" in expression and "not containers" not in expression:
        return
    skip = pytest.mark.skip(reason="container tests: run them with make test-containers")
    for item in items:
        if "containers" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def podman() -> Podman:
    return Podman.require()


@pytest.fixture(scope="session")
def build_log(podman: Podman) -> str:
    """``make image OFFLINE=1``: the stand-in base, the wheelhouse, then the Dockerfile."""
    result = podman.make_image(IMAGE)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def image(build_log: str) -> str:
    return IMAGE


@pytest.fixture(scope="session")
def models_volume(podman: Podman) -> Iterator[str]:
    """A named volume of this run, removed at the end."""
    name = f"mnist-test-models-{uuid.uuid4().hex[:8]}"
    podman.run_ok("volume", "create", name)
    try:
        yield name
    finally:
        podman.run("volume", "rm", "--force", name)
