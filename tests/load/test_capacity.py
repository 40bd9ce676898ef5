"""``make capacity`` end to end: step load against real servers, judged, drawn and gated.

Two short runs (4 steps of 3 s, single-image users) are shared by the module. The first
is the command as ``make capacity`` runs it: it starts its own service and is given a
``--min-rps`` no machine reaches. The second loads a server slowed on purpose, given by
URL: every model call waits ``MNIST_MODEL_CALL_DELAY_MS`` (200 ms) and takes one image
(``MNIST_MAX_BATCH_IMAGES=1``, so the batcher cannot merge requests around the delay),
which caps two workers at 10 requests/s. Its knee must come out of its measurements:
the same steps and SLO, a lower capacity. The SLO (p99 <= 1,000 ms) is loose enough for
the normal service even when neighbours leave it a third of a core (it then serves
50-150 requests/s), and out of reach of the slowed one past a few users (8 users queue
about 800 ms at each worker, 16 about 1,600 ms).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from shedding import shedding_server

from harness.launch import running_service
from load.capacity import main
from load.capacity_report import CSV_FIELDS, PNG_SIZE

STEPS = [2, 4, 8, 16]
DELAY_MS = 200
WORKERS = 2
COMMON = [
    *("--steps", ",".join(map(str, STEPS)), "--step-seconds", "3"),
    *("--mix", "InteractiveUser=1", "--slo-p99-ms", "1000"),
]


@dataclass
class Run:
    code: int
    out: str
    err: str
    reports: Path
    summary: dict[str, Any]


def _run(argv: list[str], reports: Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--reports", str(reports)])
    summary = json.loads((reports / "capacity.json").read_text())
    return Run(code, out.getvalue(), err.getvalue(), reports, summary)


@pytest.fixture(scope="module")
def normal_run(tmp_path_factory: pytest.TempPathFactory, trained_model_root: Path) -> Run:
    reports = tmp_path_factory.mktemp("capacity-normal")
    argv = ["--model-dir", str(trained_model_root), "--workers", str(WORKERS), *COMMON]
    return _run([*argv, "--min-rps", "1000000000"], reports)


@pytest.fixture(scope="module")
def slowed_run(tmp_path_factory: pytest.TempPathFactory, trained_model_root: Path) -> Iterator[Run]:
    reports = tmp_path_factory.mktemp("capacity-slowed")
    env = {"MNIST_MODEL_CALL_DELAY_MS": str(DELAY_MS), "MNIST_MAX_BATCH_IMAGES": "1"}
    with running_service(trained_model_root, workers=WORKERS, env=env) as server:
        argv = ["--url", server.url, "--server-pid", str(server.pid), *COMMON]
        yield _run(argv, reports)


def test_the_csv_has_one_row_per_step(normal_run: Run) -> None:
    with (normal_run.reports / "capacity.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_FIELDS
        rows = list(reader)
    assert [int(row["users"]) for row in rows] == STEPS
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    for row in rows:
        assert float(row["seconds"]) > 1.0  # 3 s steps, measured after 0.75 s of settling
        assert int(row["requests"]) > 0 and float(row["ok_rps"]) > 0
        assert float(row["images_per_s"]) == pytest.approx(float(row["ok_rps"]), rel=0.01)
        assert 0 < float(row["p50_ms"]) <= float(row["p95_ms"]) <= float(row["p99_ms"])
        # The command started the service, so it read the service's CPU.
        assert 0 < float(row["server_cpu_busiest"]) <= float(row["server_cpu"])
        assert float(row["error_ratio"]) == 0.0 and float(row["shed_ratio"]) == 0.0
    # The CSV and the JSON tell the same run.
    assert [s["requests"] for s in normal_run.summary["steps"]] == [
        int(row["requests"]) for row in rows
    ]


def test_the_json_names_the_capacity_and_the_breaking_step(
    normal_run: Run, slowed_run: Run
) -> None:
    normal = normal_run.summary
    assert normal["capacity"] is not None, normal["verdict"]
    assert normal["capacity"]["users"] in STEPS and normal["capacity"]["rps"] > 0
    assert "breaking_step" in normal
    assert normal["verdict"][0].startswith("capacity: ")
    assert "p99 <= 1,000 ms" in normal["verdict"][0]
    assert normal["slo"] == {"p99_ms": 1000.0, "max_error_ratio": 0.001, "max_shed_ratio": 0.01}
    slowed = slowed_run.summary
    assert slowed["capacity"] is not None, slowed["verdict"]
    breaking = slowed["breaking_step"]
    assert breaking is not None, slowed["verdict"]
    assert breaking["users"] > slowed["capacity"]["users"]
    assert breaking["reasons"] == ["latency"]
    assert breaking["p99_ms"] > 1000
    # Past its knee the slowed server queues: no 429s, no errors (it has no shedding).
    assert slowed["degradation"] == "queued" and slowed["graceful"] is False
    assert any(line.startswith("breaks at step") for line in slowed["verdict"])


def test_the_picture_is_a_png_of_the_expected_size_linked_from_the_html(normal_run: Run) -> None:
    picture = normal_run.reports / "capacity.png"
    with Image.open(picture) as image:
        assert image.format == "PNG"
        assert image.size == PNG_SIZE
        image.verify()
    page = (normal_run.reports / "capacity.html").read_text()
    assert '<img src="capacity.png"' in page
    assert page.count("<tr") == 1 + len(STEPS)  # header and one row per step
    assert 'href="capacity-locust.html"' in page
    assert (normal_run.reports / "capacity-locust.html").stat().st_size > 10_000


def test_a_min_rps_above_the_capacity_exits_non_zero_with_the_reason(normal_run: Run) -> None:
    assert normal_run.code == 1, normal_run.out
    assert "is below --min-rps 1,000,000,000" in normal_run.err
    assert normal_run.summary["passed"] is False
    (problem,) = normal_run.summary["problems"]
    assert problem.startswith("capacity ") and problem in normal_run.err


def test_a_slowed_server_has_a_lower_capacity_found_by_the_data(
    normal_run: Run, slowed_run: Run
) -> None:
    assert slowed_run.code == 0, slowed_run.err  # it has a capacity, and no --min-rps
    assert "passed: " in slowed_run.out
    slowed, normal = slowed_run.summary, normal_run.summary
    ceiling = WORKERS * 1000 / DELAY_MS
    # Every step of the slowed server stays under what its delay allows...
    assert all(s["ok_rps"] <= ceiling * 1.25 for s in slowed["steps"]), slowed["steps"]
    # ...so its latency, not its throughput, grows with the users, and the SLO breaks.
    p99 = [s["p99_ms"] for s in slowed["steps"]]
    assert p99[-1] > 2 * p99[0], p99
    assert slowed["capacity"]["rps"] < normal["capacity"]["rps"] / 2, (slowed, normal)


def test_bad_arguments_exit_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--steps", "4,2", "--reports", str(tmp_path)]) == 2
    assert "must rise" in capsys.readouterr().err
    assert main(["--mix", "InteractiveUser", "--reports", str(tmp_path)]) == 2
    assert "is not Name=weight" in capsys.readouterr().err
    assert main(["--model-dir", str(tmp_path / "none"), "--reports", str(tmp_path)]) == 2
    assert "no model version" in capsys.readouterr().err
    assert not (tmp_path / "capacity.json").exists()


def test_429s_are_counted_as_shed_and_5xx_as_errors(tmp_path: Path) -> None:
    with shedding_server() as url:
        plan = ["--steps", "1,2", "--step-seconds", "2", "--mix", "InteractiveUser=1"]
        run = _run(["--url", url, *plan], tmp_path)
    assert run.code == 1
    assert "no step met the SLO" in run.err
    for step in run.summary["steps"]:
        assert step["ok"] > 0 and step["shed"] > 0 and step["server_errors"] > 0, step
        assert step["shed_retry_after"] == step["shed"]
        assert step["connection_errors"] == step["other_errors"] == 0
        assert 0.15 < step["shed_ratio"] < 0.35 and 0.04 < step["error_ratio"] < 0.16, step
        assert step["server_cpu"] is None  # a URL without --server-pid
        kinds = {b["kind"] for b in step["breaches"]}
        assert kinds == {"errors", "shedding"}
    assert run.summary["capacity"] is None
    assert run.summary["breaking_step"]["step"] == 1
    assert run.summary["degradation"] == "errors" and run.summary["graceful"] is False
