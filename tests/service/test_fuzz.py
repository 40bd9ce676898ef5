"""Property-based fuzzing of the live server from its own OpenAPI document (schemathesis).

Every operation ``/docs.json`` describes gets generated requests, valid and not, for a
bounded time. The run fails on any 5xx, on an answer whose status, content type or body
the document does not describe, or on a crash; the server must serve afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

FUZZ_SECONDS = 50
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def schemathesis() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis (st) is not installed: it is in the dev extra")
    return found


def test_fuzzing_the_documented_api_finds_no_server_error_and_no_undocumented_answer(
    service_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            schemathesis(), "run", f"{service_url}/docs.json",
            "--checks", CHECKS,
            "--max-time", str(FUZZ_SECONDS),
            "--workers", "1",
            "--seed", "20261203",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
    )  # fmt: skip
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failures" not in summary.split("SUMMARY")[-1], summary
    served = httpx.post(f"{service_url}/predict", json={"images": [[0] * 784]}, timeout=30)
    assert served.status_code == 200
