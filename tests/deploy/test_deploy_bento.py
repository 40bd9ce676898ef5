"""bentofile.yaml: its pins, and a real ``bentoml build`` served by ``bentoml serve``.

The build runs offline (``lock_packages: false``) in a copy of the repo whose
``models/mnist/1`` is the session's trained model, with a private ``BENTOML_HOME``.
``bentoml containerize`` needs a Docker engine and is not run here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from deploy_files import REPO, VENV_BIN, constraint_pins
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from server import ServiceProcess, free_port

BENTOFILE: dict[str, Any] = yaml.safe_load((REPO / "bentofile.yaml").read_text())
# Provided by the build itself: bentoml writes its own pin into the Bento.
BUILDER = {"bentoml", "_bentoml_impl", "_bentoml_sdk"}


def _packed_sources() -> list[Path]:
    return [
        path
        for pattern in BENTOFILE["include"]
        if pattern.endswith(".py")
        for path in sorted(REPO.glob(pattern))
    ]


def _imported_top_levels(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_bento_packages_are_the_pinned_versions() -> None:
    assert BENTOFILE["python"]["lock_packages"] is False
    pins = constraint_pins()
    for spec in BENTOFILE["python"]["packages"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert str(requirement.specifier) == f"=={pins[name]}", spec
    assert version("bentoml") == pins["bentoml"]


def test_bento_packs_every_package_its_code_imports() -> None:
    sources = _packed_sources()
    packed = {p.parent.name for p in sources}
    assert {"service", "mnist_core"} <= packed
    first_party = {p.parent.name for p in REPO.glob("*/__init__.py")}
    imported = _imported_top_levels(sources)
    assert imported & first_party <= packed, (
        f"imported, not packed: {imported & first_party - packed}"
    )
    third_party = imported - set(sys.stdlib_module_names) - first_party - BUILDER
    listed = {canonicalize_name(Requirement(s).name) for s in BENTOFILE["python"]["packages"]}
    providers = packages_distributions()
    for module in sorted(third_party):
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        assert distributions & listed, f"{module} ({distributions}) is not in bentofile.yaml"


def _copy_build_context(destination: Path, model_root: Path) -> None:
    """The repo as a fresh clone has it, plus ``make train``'s output."""
    ignored = shutil.ignore_patterns(
        ".git", ".venv", "models", "reports", "__pycache__", "*.egg-info", ".*_cache"
    )
    shutil.copytree(REPO, destination, ignore=ignored)
    shutil.copytree(model_root / "1", destination / "models" / "mnist" / "1")


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory, trained_model_root: Path) -> dict[str, Any]:
    """Build the Bento; its tag, directory and the environment that knows its store."""
    work = tmp_path_factory.mktemp("bento")
    context = work / "context"
    _copy_build_context(context, trained_model_root)
    env = {**os.environ, "BENTOML_HOME": str(work / "home"), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [str(VENV_BIN / "bentoml"), "build", str(context), "--output", "tag"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, "\n".join(result.stderr.splitlines()[-12:])
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, _, bento_version = tag.partition(":")
    return {"tag": tag, "dir": work / "home" / "bentos" / name / bento_version, "env": env}


def test_bento_packs_the_code_and_the_model(bento: dict[str, Any]) -> None:
    source = bento["dir"] / "src"
    packed = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    code = {p.relative_to(REPO).as_posix() for p in _packed_sources()}
    assert all("/" in path for path in code)  # only package modules, no stray scripts
    assert code <= packed
    assert {"models/mnist/1/saved_model.pb", "models/mnist/1/metadata.json"} <= packed
    demo = {f"service/static/{name}" for name in ("demo.html", "demo.css", "demo.js")}
    assert demo <= packed  # the demo page is served from the Bento too
    extra = packed - code - demo - {"bentofile.yaml"}
    assert all(path.startswith("models/mnist/1/") for path in extra), sorted(extra)
    requirements = (bento["dir"] / "env/python/requirements.txt").read_text().split()
    assert requirements == [*BENTOFILE["python"]["packages"], f"bentoml=={version('bentoml')}"]
    manifest = yaml.safe_load((bento["dir"] / "bento.yaml").read_text())
    assert manifest["service"] == BENTOFILE["service"]


@pytest.fixture(scope="module")
def bento_server(bento: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``bentoml serve <tag>`` from an empty folder, so the model can only come from the Bento."""
    port = free_port()
    cwd = tmp_path_factory.mktemp("serve-cwd")
    log_path = cwd / "bentoml-serve.log"
    env = {k: v for k, v in bento["env"].items() if not k.startswith("MNIST_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "bentoml"), "serve", bento["tag"], "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=cwd,
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the workers
        )  # fmt: skip
    server = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def test_built_bento_serves_its_model(
    bento_server: str, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test_set[0][:50], mnist_test_set[1][:50]
    response = httpx.post(f"{bento_server}/predict", json={"images": images.tolist()}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["X-Model-Version"] == "1"
    body = response.json()
    assert body["model_version"] == 1
    predicted = np.array([p["label"] for p in body["predictions"]])
    assert (predicted == labels).mean() >= 0.9
