"""A capacity run's files: one CSV row per step, a JSON summary, a PNG and an HTML page.

The picture has three panels over the users of each step: achieved throughput (passed
requests and images per second), latency percentiles against the SLO line, and the error
and shed ratios beside the server's CPU. The capacity step and the breaking step are
marked on all three. The HTML page shows the verdict, the picture and the table, and
links the CSV, the JSON and Locust's own report of the run.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from load.slo import Slo, Verdict, judge
from load.steps import StepRecord

PNG_DPI = 100
PNG_INCHES = (10.0, 8.0)
PNG_SIZE = (round(PNG_INCHES[0] * PNG_DPI), round(PNG_INCHES[1] * PNG_DPI))
"""Width and height of the picture in pixels."""

CSV_FIELDS = [
    "step",
    "users",
    "users_running",
    "seconds",
    "requests",
    "rps",
    "ok_rps",
    "images_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "error_ratio",
    "shed_ratio",
    "connection_errors",
    "server_errors",
    "other_errors",
    "shed",
    "shed_retry_after",
    "server_cpu",
    "server_cpu_busiest",
    "generator_cpu",
    "other_cpu",
    "met_slo",
    "breaches",
]


def step_row(step: StepRecord, slo: Slo) -> dict[str, Any]:
    """A step as the CSV and JSON show it: the record, its rates and its judgement."""
    breaches = judge(step, slo)
    row = step.to_dict()
    row.update(
        rps=round(step.rps, 2),
        ok_rps=round(step.ok_rps, 2),
        images_per_s=round(step.images_per_s, 1),
        error_ratio=round(step.error_ratio, 6),
        shed_ratio=round(step.shed_ratio, 6),
        met_slo=not breaches,
        breaches=[{"kind": b.kind, "detail": b.detail} for b in breaches],
    )
    return row


def write_csv(path: Path, steps: list[StepRecord], slo: Slo) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for step in steps:
            row = step_row(step, slo)
            row["breaches"] = "; ".join(b["detail"] for b in row["breaches"])
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _brief(step: StepRecord | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "step": step.step,
        "users": step.users,
        "rps": round(step.ok_rps, 2),
        "images_per_s": round(step.images_per_s, 1),
        "p99_ms": step.p99_ms,
        "error_ratio": round(step.error_ratio, 6),
        "shed_ratio": round(step.shed_ratio, 6),
        "server_cpu": step.server_cpu,
    }


def summary(
    verdict: Verdict, steps: list[StepRecord], slo: Slo, extra: dict[str, Any]
) -> dict[str, Any]:
    """The JSON summary: capacity, breaking step, degradation and every step."""
    breaking = _brief(verdict.breaking)
    if breaking is not None:
        breaking["reasons"] = sorted({b.kind for b in verdict.breaches})
        breaking["breaches"] = [{"kind": b.kind, "detail": b.detail} for b in verdict.breaches]
    return {
        **extra,
        "slo": {
            "p99_ms": slo.p99_ms,
            "max_error_ratio": slo.max_error_ratio,
            "max_shed_ratio": slo.max_shed_ratio,
        },
        "capacity": _brief(verdict.capacity),
        "breaking_step": breaking,
        "degradation": verdict.degradation,
        "graceful": verdict.graceful,
        "verdict": verdict.lines,
        "notes": verdict.notes,
        "steps": [step_row(step, slo) for step in steps],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _value(value: float | None) -> float:
    return math.nan if value is None else value


def _mark(axes: Any, verdict: Verdict) -> list[Any]:
    """The knee on one panel: the capacity step and the breaking step; their lines."""
    lines = []
    if verdict.capacity is not None:
        capacity = verdict.capacity
        lines.append(
            axes.axvline(
                capacity.users,
                color="tab:green",
                linestyle="--",
                linewidth=1.2,
                label=f"capacity: {capacity.ok_rps:,.0f} req/s at {capacity.users} users",
            )
        )
    if verdict.breaking is not None:
        kinds = " and ".join(sorted({b.kind for b in verdict.breaches}))
        lines.append(
            axes.axvline(
                verdict.breaking.users,
                color="tab:red",
                linestyle=":",
                linewidth=1.2,
                label=f"breaks: {kinds} at {verdict.breaking.users} users",
            )
        )
    return lines


def headline(verdict: Verdict, slo: Slo) -> str:
    """The verdict in one line, for the picture's title."""
    capacity = verdict.capacity
    if capacity is None:
        first = f"no capacity at p99 <= {slo.p99_ms:g} ms"
    else:
        first = (
            f"capacity {capacity.ok_rps:,.0f} req/s at p99 <= {slo.p99_ms:g} ms"
            f" with {capacity.users} users"
        )
    if verdict.breaking is None:
        return first + "; did not break"
    kinds = " and ".join(sorted({b.kind for b in verdict.breaches}))
    return f"{first}; breaks at {verdict.breaking.users} users ({kinds}; {verdict.degradation})"


def draw(path: Path, steps: list[StepRecord], slo: Slo, verdict: Verdict) -> None:
    """The PNG, exactly :data:`PNG_SIZE` pixels."""
    figure = Figure(figsize=PNG_INCHES, dpi=PNG_DPI)
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=[3, 3, 2])
    users = [s.users for s in steps]

    (passed,) = top.plot(users, [s.ok_rps for s in steps], "o-", color="tab:blue")
    top.set_ylabel("req/s (passed)")
    top.set_ylim(bottom=0)
    images = top.twinx()
    (served,) = images.plot(
        users, [s.images_per_s for s in steps], "s--", color="tab:purple", alpha=0.6
    )
    images.set_ylabel("images/s", color="tab:purple")
    images.set_ylim(bottom=0)
    knee = _mark(top, verdict)
    top.legend(
        [passed, served, *knee],
        ["passed req/s", "images/s", *(line.get_label() for line in knee)],
        loc="lower right",
        fontsize=8,
    )
    top.set_title(headline(verdict, slo), fontsize=10)

    for name, pick, style in (
        ("p50", lambda s: s.p50_ms, "o-"),
        ("p95", lambda s: s.p95_ms, "^-"),
        ("p99", lambda s: s.p99_ms, "s-"),
    ):
        middle.plot(users, [_value(pick(s)) for s in steps], style, label=name)
    middle.axhline(slo.p99_ms, color="tab:red", linewidth=1, label=f"SLO p99 {slo.p99_ms:g} ms")
    missed = [s for s in steps if judge(s, slo)]
    middle.plot(
        [s.users for s in missed],
        [_value(s.p99_ms) for s in missed],
        "x",
        color="tab:red",
        markersize=11,
        markeredgewidth=2,
        label="missed the SLO",
    )
    answered = [s.p50_ms for s in steps if s.p50_ms]
    if answered and max(_value(s.p99_ms) for s in steps) / min(answered) > 20:
        middle.set_yscale("log")
        middle.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        middle.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        middle.yaxis.set_minor_formatter(NullFormatter())
    middle.set_ylabel("latency, ms")
    middle.legend(loc="lower right", fontsize=8)

    bottom.plot(users, [s.error_ratio * 100 for s in steps], "o-", color="tab:red", label="errors")
    bottom.plot(users, [s.shed_ratio * 100 for s in steps], "^-", color="tab:orange", label="429s")
    bottom.set_ylabel("% of requests")
    worst = max([s.error_ratio for s in steps] + [s.shed_ratio for s in steps])
    bottom.set_ylim(0, max(worst * 110, 1.0))
    bottom.legend(loc="center left", fontsize=8)
    cpu = bottom.twinx()
    cpu.plot(users, [_value(s.server_cpu) for s in steps], "d:", color="tab:gray")
    cpu.set_ylabel("server CPU, cores", color="tab:gray")
    cpu.set_ylim(bottom=0)
    bottom.set_xlabel("users (offered load)")
    bottom.set_xticks(users)

    for axes in (middle, bottom):
        _mark(axes, verdict)
    for axes in (top, middle, bottom):
        axes.grid(alpha=0.3)
    figure.subplots_adjust(left=0.08, right=0.91, top=0.95, bottom=0.07, hspace=0.12)
    figure.savefig(path, dpi=PNG_DPI)


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return html.escape(str(value))


def write_html(path: Path, data: dict[str, Any], files: dict[str, str]) -> None:
    """A page of its own: the verdict, the picture, the table and links to the rest."""
    rows = []
    for s in data["steps"]:
        met = "met" if s["met_slo"] else "; ".join(b["detail"] for b in s["breaches"])
        cells = [
            _cell(s["step"]),
            _cell(s["users"]),
            _cell(s["ok_rps"]),
            _cell(s["images_per_s"]),
            _cell(s["p50_ms"], 1),
            _cell(s["p95_ms"], 1),
            _cell(s["p99_ms"], 1),
            f"{s['error_ratio'] * 100:.2f}%",
            f"{s['shed_ratio'] * 100:.2f}%",
            _cell(s["server_cpu"], 2) + f" ({_cell(s['server_cpu_busiest'], 2)})",
            _cell(s["generator_cpu"], 2),
            _cell(s["other_cpu"], 2),
            html.escape(met),
        ]
        style = "" if s["met_slo"] else ' class="missed"'
        rows.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    headers = [
        "step",
        "users",
        "req/s passed",
        "images/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "429s",
        "server CPU (busiest process)",
        "Locust CPU",
        "other CPU",
        "SLO",
    ]
    links = " · ".join(
        f'<a href="{html.escape(href)}">{html.escape(label)}</a>' for label, href in files.items()
    )
    slo = data["slo"]
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in data["verdict"])
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in data["notes"])
    picture = (
        f'<p><img src="{html.escape(files["picture"])}" alt="throughput and latency against'
        f' users" width="{PNG_SIZE[0]}" height="{PNG_SIZE[1]}"></p>'
        if data["steps"]
        else "<p>No step was measured: no picture.</p>"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Capacity run</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
td:last-child {{ text-align: left; }}
tr.missed {{ background: #fdecea; }}
</style></head><body>
<h1>Capacity run</h1>
<p>{html.escape(str(data.get("started", "")))} against {html.escape(str(data.get("url", "")))}
({html.escape(str(data.get("service", "")))});
SLO p99 &le; {slo["p99_ms"]:g} ms, errors &le; {slo["max_error_ratio"] * 100:g}%,
429s &le; {slo["max_shed_ratio"] * 100:g}%; mix {html.escape(str(data.get("mix", "")))}.</p>
<ul>{lines}</ul>
{f"<p>Notes:</p><ul>{notes}</ul>" if notes else ""}
{picture}
<table><tr>{"".join(f"<th>{h}</th>" for h in headers)}</tr>
{"".join(rows)}
</table>
<p>{links}</p>
</body></html>
"""
    path.write_text(page)
