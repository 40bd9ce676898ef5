"""Run the Locust suite headless against a fresh service (or --url) and judge the result.

Writes ``<reports>/<name>_stats.csv`` (and Locust's other CSV files), ``<name>.html`` and
``<name>-summary.json``. Exits 0 only when no request failed and the p99 latency over all
requests stayed within ``--max-p99-ms``. Locust options not listed here go after ``--``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.launch import LaunchError, running_service
from load.payloads import load_test_images
from mnist_core.errors import DataFileError
from mnist_core.modeldir import latest_version_dir

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.run", description=__doc__)
    add = parser.add_argument
    add("--url", help="load this running server instead of starting one")
    add(
        "--model-dir",
        default=os.environ.get("MNIST_MODEL_DIR", "models/mnist"),
        help="model root served when no --url is given (default: %(default)s)",
    )
    add("--workers", type=int, help="MNIST_WORKERS of the started service")
    add("-u", "--users", type=int, default=20, help="concurrent users (default: %(default)s)")
    add("-r", "--spawn-rate", type=float, default=10, help="users started per second")
    add("-t", "--duration", default="30s", help="run time, Locust syntax (default: %(default)s)")
    add("--max-p99-ms", type=float, default=2000.0, help="fail above this p99 (all requests)")
    add("--reports", type=Path, default=Path("reports"), help="output folder")
    add("--name", default="load", help="file name prefix of the reports (default: %(default)s)")
    add("--timeout", type=float, default=600, help="kill Locust after this many seconds")
    add("locust_args", nargs="*", help="after --: more Locust options (e.g. --batch-weight 0)")
    return parser


@contextmanager
def _target(args: argparse.Namespace, reports: Path) -> Iterator[str]:
    if args.url:
        yield args.url.rstrip("/")
        return
    if latest_version_dir(args.model_dir) is None:
        raise LaunchError(f"no model version under {args.model_dir}: run `make train` first")
    log_path = reports / f"{args.name}-server.log"
    with running_service(args.model_dir, workers=args.workers, log_path=log_path) as server:
        print(
            f"service ready at {server.url}: /readyz 200 after {server.ready_seconds:.1f} s,"
            f" every worker serving after {server.serving_seconds:.1f} s",
            flush=True,
        )
        yield server.url


def read_stats(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_failures(path: Path) -> list[dict[str, str]]:
    return read_stats(path) if path.exists() else []


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def summarize(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "name": row["Name"],
            "method": row["Type"],
            "requests": int(_number(row["Request Count"])),
            "failures": int(_number(row["Failure Count"])),
            "rps": _number(row["Requests/s"]),
            "p50_ms": _number(row["50%"]),
            "p99_ms": _number(row["99%"]),
            "max_ms": _number(row["Max Response Time"]),
        }
        for row in rows
    ]


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'request':<28} {'count':>7} {'fail':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for r in rows:
        print(
            f"{r['name']:<28} {r['requests']:>7} {r['failures']:>5} {r['rps']:>8.1f}"
            f" {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f}"
        )


def judge(total: dict[str, Any], max_p99_ms: float) -> list[str]:
    """Reasons the run fails; empty when it passes."""
    problems = []
    if total["requests"] == 0:
        problems.append("no request completed")
    if total["failures"]:
        problems.append(f"{total['failures']} of {total['requests']} requests failed")
    if total["p99_ms"] > max_p99_ms:
        problems.append(f"p99 {total['p99_ms']:.0f} ms exceeds {max_p99_ms:.0f} ms")
    return problems


def run_locust(args: argparse.Namespace, url: str, reports: Path) -> int:
    prefix = reports / args.name
    accuracy_file = reports / f"{args.name}-accuracy.json"
    accuracy_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.duration,
        "--csv",
        str(prefix),
        "--html",
        str(prefix) + ".html",
        "--accuracy-file",
        str(accuracy_file),
        *args.locust_args,
    ]
    print("$", " ".join(command), flush=True)
    try:
        return subprocess.run(command, timeout=args.timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"locust did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 124


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_test_images()  # the users' payloads: fail here rather than in every Locust user
    except DataFileError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        with _target(args, reports) as url:
            code = run_locust(args, url, reports)
    except LaunchError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    stats_path = reports / f"{args.name}_stats.csv"
    if not stats_path.exists():
        print(f"load: Locust wrote no statistics (exit code {code})", file=sys.stderr)
        return code or 1
    rows = summarize(read_stats(stats_path))
    total = next(r for r in rows if r["name"] == "Aggregated")
    problems = judge(total, args.max_p99_ms)
    if code and not problems:
        problems.append(f"locust exited with code {code}")
    accuracy_file = reports / f"{args.name}-accuracy.json"
    accuracy = json.loads(accuracy_file.read_text()) if accuracy_file.exists() else None
    failures = read_failures(reports / f"{args.name}_failures.csv")
    summary = {
        "started": started,
        "url": args.url or "(started by load.run)",
        "users": args.users,
        "duration": args.duration,
        "max_p99_ms": args.max_p99_ms,
        "requests": rows,
        "failures": failures,
        "accuracy": accuracy,
        "passed": not problems,
        "problems": problems,
    }
    (reports / f"{args.name}-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print_table(rows)
    for failure in failures:
        print(f"failure: {failure['Occurrences']} x {failure['Name']}: {failure['Error']}")
    if accuracy and accuracy.get("accuracy") is not None:
        print(f"accuracy under load: {accuracy['accuracy']:.4f} over {accuracy['images']} images")
    print(f"reports: {stats_path}, {reports / args.name}.html")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("passed: no failed request, p99 within limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
