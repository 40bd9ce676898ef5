"""The Dockerfile: linted by hadolint, and its install steps checked against what CI installs.

No Docker engine runs here, so the image is never built; what can be checked without one is:
the lint, the layer order, the build context that `.dockerignore` leaves (computed by
docker-compose's own build-context code), and that the dependency step installs exactly
the versions the test suite runs on.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from deploy_files import (
    REPO,
    constraint_pins,
    dockerfile_instructions,
    healthcheck_argv,
    installed_closure,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

INSTRUCTIONS = dockerfile_instructions()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for kind, arguments in INSTRUCTIONS:
        if kind == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((kind, arguments))
    return stages


def test_hadolint_finds_nothing(hadolint: str) -> None:
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_base_image_is_slim_python_311() -> None:
    (base,) = {args for kind, args in INSTRUCTIONS if kind == "ARG" and "PYTHON_IMAGE=" in args}
    assert base == "PYTHON_IMAGE=python:3.11-slim-bookworm"
    # build -> build-load (the load extra); runtime -> load, and runtime -> serve (last: the
    # default target, the serving image).
    assert [args for kind, args in INSTRUCTIONS if kind == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "build AS build-load",
        "${PYTHON_IMAGE} AS runtime",
        "runtime AS load",
        "runtime AS serve",
    ]


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    """The dependency layer depends on pyproject.toml and constraints.txt only."""
    build = _stages()[0]
    copies = [i for i, (kind, _) in enumerate(build) if kind == "COPY"]
    installs = [
        i for i, (kind, args) in enumerate(build) if kind == "RUN" and "pip install" in args
    ]
    assert build[copies[0]][1] == "pyproject.toml constraints.txt ./"
    dependency_step = build[installs[0]][1]
    assert copies[0] < installs[0] < copies[1]
    assert "pip install -c constraints.txt -r requirements.txt" in dependency_step
    # `make setup` (which .ci/run calls) installs under the same constraints file.
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", makefile)
    assert "--no-deps" in build[installs[1]][1]
    assert installs[1] > copies[-1]


def test_dependency_step_lists_the_declared_dependencies(tmp_path: Path) -> None:
    """Run the step's own requirements extraction on the real pyproject.toml."""
    build = _stages()[0]
    step = next(args for kind, args in build if kind == "RUN" and "tomllib" in args)
    # The step's own command, without its RUN flags (the wheelhouse bind mount).
    command = re.sub(r"^(--mount=\S+\s+)+", "", step)
    extraction = command.split(" > requirements.txt")[0]
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    result = subprocess.run(
        ["sh", "-c", extraction], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == PYPROJECT["project"]["dependencies"]


def test_image_gets_the_versions_the_tests_run_on() -> None:
    """Every runtime dependency is pinned, the pin satisfies pyproject, and it is installed."""
    pins = constraint_pins()
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[name]), (spec, pins[name])
        assert version(name) == pins[name], f"{name}: installed {version(name)}, pinned"


def test_every_package_of_the_image_is_pinned() -> None:
    """The runtime closure, not only the direct dependencies, installs the pinned versions."""
    pins = constraint_pins()
    closure = installed_closure(PYPROJECT["project"]["dependencies"])
    assert len(closure) > len(PYPROJECT["project"]["dependencies"])
    # Installer tooling that `pip freeze` leaves out of constraints.txt; a Python 3.11
    # venv brings its own setuptools, and wheel only matters to packages' build steps.
    tooling = {"pip", "setuptools", "wheel"}
    unpinned = {n: v for n, v in closure.items() if pins.get(n) != v and n not in tooling}
    assert not unpinned, f"installed, but not pinned to that version: {unpinned}"


def test_final_image_runs_as_a_non_root_user_with_only_the_venv() -> None:
    stages = _stages()
    runtime, final = stages[2], stages[-1]
    kinds = [kind for kind, _ in final]
    assert not any(kind == "RUN" and "pip" in args for kind, args in final)
    copies = [args for kind, args in final if kind == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    (user,) = [args for kind, args in final if kind == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert kinds.index("USER") < kinds.index("CMD")
    (command,) = [args for kind, args in final if kind == "CMD"]
    assert json.loads(command) == ["mnist-serve"]
    env = " ".join(args for kind, args in runtime + final if kind == "ENV")
    assert "MNIST_HOST=0.0.0.0" in env


def test_healthcheck_asks_readyz_without_curl() -> None:
    (arguments,) = [args for kind, args in INSTRUCTIONS if kind == "HEALTHCHECK"]
    argv = healthcheck_argv(arguments)
    assert argv[:2] == ["python", "-c"]
    assert "/readyz" in argv[2]


@pytest.fixture(scope="module")
def build_context(docker_compose: str) -> set[str]:
    """Files docker-compose would send as the build context, by docker-py's own rules."""
    interpreter = Path(docker_compose).read_text().splitlines()[0].removeprefix("#!").split()
    script = """
import json, sys
from docker.utils.build import exclude_paths
root = sys.argv[1]
with open(root + "/.dockerignore") as f:
    patterns = [l.strip() for l in f.read().splitlines()]
patterns = [p for p in patterns if p and not p.startswith("#")]
print(json.dumps(sorted(exclude_paths(root, patterns))))
"""
    result = subprocess.run(
        [*interpreter, "-c", script, str(REPO)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_build_context_holds_what_the_image_copies_and_nothing_heavy(
    build_context: set[str],
) -> None:
    build = _stages()[0]
    for kind, arguments in build:
        if kind == "COPY":
            for source in arguments.split()[:-1]:
                assert source in build_context, f"COPY {source}: excluded by .dockerignore"
    packages = [
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = {args.split()[0] for kind, args in build if kind == "COPY"}
    for package in packages:
        assert package in copied, f"package {package} is not copied into the image"
        assert f"{package}/__init__.py" in build_context
    tops = {path.split("/")[0] for path in build_context}
    assert tops.isdisjoint({".venv", ".git", "models", "reports", "tests", "deploy"}), tops
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in build_context)
