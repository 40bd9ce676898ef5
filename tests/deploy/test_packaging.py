"""Dependencies by role: the serving install carries what serving needs, the extras the rest.

Read from pyproject.toml and the installed distributions' own metadata (the closure a
``pip install .`` with no extras resolves to); the api image, built from exactly that
install, is checked for real by the container tests.
"""

from __future__ import annotations

import tomllib

from deploy_files import REPO, installed_closure

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOAD_AND_PLOTS = {"locust", "matplotlib", "gevent", "geventhttpclient", "flask"}


def test_the_serving_install_pulls_in_no_load_or_plotting_tools() -> None:
    closure = installed_closure(PROJECT["dependencies"])
    assert {"tensorflow", "bentoml", "numpy", "pillow"} <= closure.keys()
    assert closure.keys().isdisjoint(LOAD_AND_PLOTS), closure.keys() & LOAD_AND_PLOTS


def test_the_extras_carry_the_training_and_load_tools() -> None:
    extras = PROJECT["optional-dependencies"]
    assert {"matplotlib", "locust"} <= installed_closure(extras["load"]).keys()
    assert "matplotlib" in installed_closure(extras["train"]).keys()
