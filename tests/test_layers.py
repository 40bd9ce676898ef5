"""The import arrows between the top-level packages, read from the source (no imports run).

    mnist_core  <-  runtime  <-  service, batch, training  <-  load, harness, tests

Each package may import only those below it; ``service`` ships without the batch client;
nothing reaches into another package's ``_private`` names; the tests use ``load`` only
in the tests of ``load``; TensorFlow is loaded for serving in one place.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mnist_core", "runtime", "service", "batch", "training", "load", "harness")
MAY_IMPORT: dict[str, set[str]] = {
    "mnist_core": set(),
    "runtime": {"mnist_core"},
    "service": {"mnist_core", "runtime"},
    "batch": {"mnist_core", "runtime"},
    "training": {"mnist_core", "runtime"},
    "harness": {"mnist_core"},
    "load": {"mnist_core", "runtime", "service", "batch", "harness"},
}
FRAMEWORKS = {"tensorflow", "keras", "bentoml", "_bentoml_impl", "_bentoml_sdk", "starlette"}


def python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, imported names) for every absolute import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)}: {module}"
        for path in python_files(package)
        for module, _ in imports(path)
        if (top := module.split(".")[0]) in PACKAGES
        and top != package
        and top not in MAY_IMPORT[package]
    }
    assert not wrong, wrong


def test_the_pure_package_imports_no_framework() -> None:
    wrong = {
        f"{path.relative_to(REPO)}: {module}"
        for path in python_files("mnist_core")
        for module, _ in imports(path)
        if module.split(".")[0] in FRAMEWORKS
    }
    assert not wrong, wrong


def test_nothing_imports_another_packages_private_names() -> None:
    wrong = set()
    for folder in (*PACKAGES, "tests"):
        for path in python_files(folder):
            for module, names in imports(path):
                top = module.split(".")[0]
                if top not in PACKAGES or top == folder:
                    continue
                private = [n for n in [*module.split(".")[1:], *names] if n.startswith("_")]
                if private:
                    wrong.add(f"{path.relative_to(REPO)}: {module} {private}")
    assert not wrong, wrong


def test_tests_use_load_only_in_the_tests_of_load() -> None:
    wrong = {
        str(path.relative_to(REPO))
        for path in python_files("tests")
        if path.parent.name != "load"
        for module, _ in imports(path)
        if module.split(".")[0] == "load"
    }
    assert not wrong, wrong


def test_one_module_loads_savedmodels_for_serving() -> None:
    """The service, ``mnist-batch --local`` and the benchmark all load through the runtime.

    (Tests load the signature directly: it is the reference the runtime is checked against.
    The benchmark's stock-BentoML peer loads it as a user would: that is its point.)
    """
    callers = {
        str(path.relative_to(REPO))
        for folder in PACKAGES
        for path in python_files(folder)
        if "saved_model.load(" in path.read_text()
    }
    assert callers == {"runtime/savedmodel.py", "load/stock_service.py"}
