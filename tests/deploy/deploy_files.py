"""Where the deployment files are and how to read them: paths, real tools, parsed forms."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def require(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if found:
        return found
    message = f"{name} is NOT INSTALLED, so this deployment check did not run ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def compose(
    docker_compose: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose <args>`` on the repo's compose file, with only the given settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MNIST_", "API_"))}
    return subprocess.run(
        [
            docker_compose,
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            *args,
        ],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dockerfile_instructions(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def healthcheck_argv(arguments: str) -> list[str]:
    """The exec-form command of a ``HEALTHCHECK [options] CMD [...]`` instruction."""
    _, _, command = arguments.partition("CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list), f"HEALTHCHECK is not in exec form: {command}"
    return [str(part) for part in argv]


def constraint_pins() -> dict[str, str]:
    """The pinned version of every package in constraints.txt, by canonical name."""
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned
    return pins


def installed_closure(specs: list[str]) -> dict[str, str]:
    """Installed distributions the given requirements pull in, transitively: name -> version."""
    found: dict[str, str] = {}
    pending = [Requirement(spec) for spec in specs]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found[name] = version(name)
        for dependency in requires(name) or []:
            parsed = Requirement(dependency)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                pending.append(parsed)
    return found
