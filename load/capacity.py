"""Find the knee: Locust in steps of users against a fresh service (or --url), judged by an SLO.

Each step holds a number of users for ``--step-seconds`` and is measured after a settling
time (:mod:`load.stepload`); each is judged against the SLO (:mod:`load.slo`). The
capacity is the highest step that met it, with every step below it; the breaking step is
the first that did not, and the steps past it tell whether the service degraded
gracefully (429s) or not (timeouts, 5xx). Writes ``<reports>/<name>.csv`` (one row per
step), ``<name>.json``, ``<name>.png``, ``<name>.html`` (linking Locust's own
``<name>-locust.html``). Exits 1 when no step met the SLO or the capacity is below
``--min-rps``, 2 when the run could not start. Locust options go after ``--``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.launch import LaunchError, running_service
from load import capacity_report
from load.payloads import load_test_images
from load.slo import Slo, Verdict, verdict
from load.steps import StepPlan, StepRecord, parse_mix
from mnist_core.errors import DataFileError
from mnist_core.modeldir import latest_version_dir

LOAD_DIR = Path(__file__).parent
LOCUSTFILES = [LOAD_DIR / "locustfile.py", LOAD_DIR / "stepload.py"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.capacity", description=__doc__)
    add = parser.add_argument
    add("--url", help="load this running server instead of starting one")
    add("--server-pid", type=int, help="with --url: read this process tree's CPU")
    add(
        "--model-dir",
        default=os.environ.get("MNIST_MODEL_DIR", "models/mnist"),
        help="model root served when no --url is given (default: %(default)s)",
    )
    add("--workers", type=int, help="MNIST_WORKERS of the started service")
    add("--start-users", type=int, default=4, help="users of the first step (default: 4)")
    add("--step-users", type=int, default=4, help="users added per step (default: 4)")
    add("--max-users", type=int, default=32, help="users of the last step at most (default: 32)")
    add("--steps", help="the users of every step instead, e.g. 1,2,4,8,16,32")
    add("--step-seconds", type=float, default=10.0, help="length of each step (default: 10)")
    add("--settle-seconds", type=float, help="unmeasured start of each step (default: 1/4)")
    add(
        "--mix",
        default="",
        help="user classes by name and weight, e.g. InteractiveUser=8,BatchUser=1"
        " (default: the locustfile's mix)",
    )
    add("--slo-p99-ms", type=float, default=250.0, help="p99 latency objective (default: 250)")
    add("--max-error-ratio", type=float, default=0.001, help="errors allowed (default: 0.001)")
    add(
        "--max-shed-ratio",
        type=float,
        default=0.01,
        help="429s allowed; they are not errors but shed work (default: 0.01)",
    )
    add("--min-rps", type=float, default=0.0, help="exit 1 if the capacity is below this")
    add("--reports", type=Path, default=Path("reports"), help="output folder")
    add("--name", default="capacity", help="file name prefix (default: %(default)s)")
    add("--timeout", type=float, help="kill Locust after this many seconds (default: run + 120)")
    add("locust_args", nargs="*", help="after --: more Locust options (e.g. --batch-max 200)")
    return parser


def plan_from_args(args: argparse.Namespace) -> StepPlan:
    """``--steps``, or ``--start-users`` up to ``--max-users`` by ``--step-users``."""
    if args.steps:
        users = args.steps
    else:
        if args.step_users < 1:
            raise ValueError("--step-users must be at least 1")
        users = ",".join(map(str, range(args.start_users, args.max_users + 1, args.step_users)))
    return StepPlan.parse(users, args.step_seconds, args.settle_seconds)


@contextmanager
def target(args: argparse.Namespace, reports: Path) -> Iterator[tuple[str, int | None]]:
    if args.url:
        yield args.url.rstrip("/"), args.server_pid
        return
    if latest_version_dir(args.model_dir) is None:
        raise LaunchError(f"no model version under {args.model_dir}: run `make train` first")
    log_path = reports / f"{args.name}-server.log"
    with running_service(args.model_dir, workers=args.workers, log_path=log_path) as server:
        print(f"service ready at {server.url} (pid {server.pid})", flush=True)
        yield server.url, server.pid


def run_locust(
    args: argparse.Namespace, url: str, server_pid: int | None, plan: StepPlan, steps_file: Path
) -> int:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(str(path) for path in LOCUSTFILES),
        "--headless",
        "--only-summary",
        "--host",
        url,
        "--html",
        str(args.reports / f"{args.name}-locust.html"),
        # Failures past the knee are expected; the verdict is ours, not Locust's.
        "--exit-code-on-error",
        "0",
        "--step-load-users",
        ",".join(str(u) for u in plan.users),
        "--step-load-seconds",
        str(plan.seconds),
        "--step-load-settle",
        str(plan.settle),
        "--step-load-file",
        str(steps_file),
    ]
    if plan.level:
        command.append("--step-load-level")
    if server_pid:
        command += ["--step-load-server-pid", str(server_pid)]
    if args.mix:
        command += ["--step-load-weights", args.mix]
    command += args.locust_args
    timeout = args.timeout or len(plan.users) * plan.seconds + 120
    print("$", " ".join(command), flush=True)
    try:
        return subprocess.run(command, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"locust did not finish within {timeout:.0f} s", file=sys.stderr)
        return 124


def read_steps(path: Path) -> list[StepRecord]:
    if not path.exists():
        return []
    return [StepRecord.from_dict(item) for item in json.loads(path.read_text())]


def print_table(steps: list[StepRecord], result: Verdict) -> None:
    print(
        f"{'users':>5} {'req/s':>8} {'img/s':>9} {'p50':>7} {'p95':>7} {'p99':>7}"
        f" {'err%':>6} {'429%':>6} {'srv CPU':>7} {'gen CPU':>7}"
    )
    for s in steps:
        cells = [f"{v:>7.1f}" if v is not None else f"{'n/a':>7}" for v in (s.p50_ms, s.p95_ms)]
        p99 = f"{s.p99_ms:>7.1f}" if s.p99_ms is not None else f"{'n/a':>7}"
        cpu = f"{s.server_cpu:>7.2f}" if s.server_cpu is not None else f"{'n/a':>7}"
        print(
            f"{s.users:>5} {s.ok_rps:>8.1f} {s.images_per_s:>9.0f} {' '.join(cells)} {p99}"
            f" {s.error_ratio * 100:>6.2f} {s.shed_ratio * 100:>6.2f} {cpu}"
            f" {s.generator_cpu:>7.2f}"
        )
    print()
    for line in result.lines:
        print(line)
    for note in result.notes:
        print(f"note: {note}")


def gate(result: Verdict, steps: list[StepRecord], min_rps: float, code: int) -> list[str]:
    """Reasons the run fails; empty when it passes."""
    if not steps:
        return [f"no step was measured (Locust exit code {code})"]
    if result.capacity is None:
        return ["no step met the SLO; " + "; ".join(result.lines[1:2])]
    if result.capacity.ok_rps < min_rps:
        return [f"capacity {result.capacity.ok_rps:,.0f} req/s is below --min-rps {min_rps:,.0f}"]
    return []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = plan_from_args(args)
        parse_mix(args.mix)
    except ValueError as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    try:
        load_test_images()  # the users' payloads: fail here rather than in every Locust user
    except DataFileError as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    url = args.url or ""
    with tempfile.TemporaryDirectory(prefix="mnist-capacity-") as scratch:
        steps_file = Path(scratch) / "steps.json"
        try:
            with target(args, reports) as (url, server_pid):
                code = run_locust(args, url, server_pid, plan, steps_file)
        except LaunchError as exc:
            print(f"capacity: {exc}", file=sys.stderr)
            return 2
        steps = read_steps(steps_file)

    slo = Slo(args.slo_p99_ms, args.max_error_ratio, args.max_shed_ratio)
    result = verdict(steps, slo)
    problems = gate(result, steps, args.min_rps, code)
    name = args.name
    files = {
        "picture": f"{name}.png",
        "CSV": f"{name}.csv",
        "JSON": f"{name}.json",
        "Locust's report": f"{name}-locust.html",
    }
    data = capacity_report.summary(
        result,
        steps,
        slo,
        {
            "started": started,
            "url": url,
            "service": "given by --url" if args.url else "started by load.capacity",
            "mix": args.mix or "the locustfile's",
            "plan": {
                "users": list(plan.users),
                "step_seconds": plan.seconds,
                "settle_seconds": plan.settle,
            },
            "min_rps": args.min_rps,
            "passed": not problems,
            "problems": problems,
            "files": files,
        },
    )
    capacity_report.write_csv(reports / files["CSV"], steps, slo)
    capacity_report.write_json(reports / files["JSON"], data)
    if steps:
        capacity_report.draw(reports / files["picture"], steps, slo, result)
    capacity_report.write_html(reports / f"{name}.html", data, files)

    print()
    print_table(steps, result)
    print(f"reports: {reports / name}.html (.csv, .json, .png), {reports / files['JSON']}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    floor = f" >= --min-rps {args.min_rps:,.0f}" if args.min_rps else ""
    print(f"passed: {result.capacity.ok_rps:,.0f} req/s{floor}")  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    sys.exit(main())
