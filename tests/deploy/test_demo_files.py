"""The demo page's files ship wherever the service does: the wheel and the Bento.

Read from pyproject.toml's package data and bentofile.yaml's include list (building a
wheel here would take about 15 s; the container tests build the image for real).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib

import yaml
from deploy_files import REPO

from service.demo import ASSETS, PAGE

STATIC = REPO / "service" / "static"


def test_every_demo_file_is_package_data_and_in_the_bento() -> None:
    files = sorted(p.name for p in STATIC.iterdir() if p.is_file())
    assert sorted([PAGE, *ASSETS]) == files, "service/static holds exactly what is served"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["service"]
    includes = yaml.safe_load((REPO / "bentofile.yaml").read_text())["include"]
    for name in files:
        assert any(fnmatch.fnmatch(f"static/{name}", g) for g in globs), name
        assert any(fnmatch.fnmatch(f"service/static/{name}", g) for g in includes), name


def test_the_page_refers_only_to_its_own_assets_and_the_public_api() -> None:
    page = (STATIC / PAGE).read_text()
    script = (STATIC / "demo.js").read_text()
    assert set(re.findall(r'(?:src|href)="/demo/([^"]+)"', page)) == set(ASSETS)
    assert not re.search(r"https?://", page + script + (STATIC / "demo.css").read_text())
    called = set(re.findall(r'["`](/[a-z_]+)[/?"`]', script))
    assert called == {"/predict_image", "/metadata", "/models"}, called
