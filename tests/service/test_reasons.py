"""Every ``reason`` the service can answer with is in the README's table, with its status.

The reasons are read from the code: each error class's default and every ``reason=``
given where an error is raised, in the packages the service runs (``mnist_core``,
``runtime``, ``service``); the status is the error class's own. Errors that never
reach an HTTP client (a model that cannot load stops the server; a batch job's resume
problem) are left out.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mnist_core import errors

REPO = Path(__file__).resolve().parents[2]
NOT_HTTP = {"ModelUnavailable", "ResumeError"}
ERROR_CLASSES = {
    name: obj
    for name, obj in vars(errors).items()
    if isinstance(obj, type) and issubclass(obj, errors.MnistError)
}


def code_reasons() -> set[tuple[int, str]]:
    """(status, reason) of every error raised, or looked up by status, in the service's code."""
    found: set[tuple[int, str]] = set()
    for folder in ("mnist_core", "runtime", "service"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict):  # a table of error classes (by status)
                    for value in node.values:
                        if isinstance(value, ast.Name) and value.id in ERROR_CLASSES:
                            kind = ERROR_CLASSES[value.id]
                            found.add((kind.status, kind.reason))
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name not in ERROR_CLASSES or name in NOT_HTTP:
                    continue
                kind = ERROR_CLASSES[name]
                given = [k.value for k in node.keywords if k.arg == "reason"]
                if given and isinstance(given[0], ast.Constant):
                    found.add((kind.status, given[0].value))
                else:
                    found.add((kind.status, kind.reason))
    return found


def readme_reasons() -> set[tuple[int, str]]:
    text = (REPO / "README.md").read_text()
    table = text[text.index("| status | reasons |") :].split("\n\n", 1)[0]
    found = set()
    for row in table.splitlines()[2:]:
        status, reasons = row.strip("|").split("|", 1)
        for token in re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", reasons)):
            found.add((int(status), token))
    return found


def test_the_readme_lists_every_reason_with_its_status() -> None:
    code, readme = code_reasons(), readme_reasons()
    assert code - readme == set(), "answered by the code but missing from the README"
    assert readme - code == set(), "in the README but never answered"


def test_every_setting_is_in_the_readme_table() -> None:
    """Each ``ServiceSettings`` field has its ``MNIST_*`` row in the settings table."""
    from service.config import ServiceSettings

    rows = {
        line.split("|")[1].strip()
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("| `MNIST_")
    }
    documented = {name.strip("` ") for row in rows for name in row.split("/")}
    missing = {f"MNIST_{n.upper()}" for n in ServiceSettings.model_fields} - documented
    assert missing == set(), f"settings without a README row: {sorted(missing)}"
