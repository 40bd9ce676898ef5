"""Accuracy of ``POST /predict_image`` on the real-world styles of :mod:`load.realworld`.

    python -m load.realworld_report --model-dir models/mnist --per-style 500
    python -m load.realworld_report --url http://127.0.0.1:3000

Starts ``mnist-serve`` on the newest version under ``--model-dir`` (or uses ``--url``),
sends every rendered picture as a multipart upload, and prints a Markdown table of
accuracy per style, their mean and the smallest, plus plain PNGs of the same test
digits for reference. ``--out`` also writes the table and a JSON copy of the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from harness.launch import running_service
from mnist_core.dataset import DATA_DIR_ENV, load_dir

from .realworld import STYLES, Picture, render, to_bytes

CHUNK = 100
"""Pictures per request: large enough to keep both workers busy, small enough to retry."""
REFERENCE = "mnist-png"
"""The plain 28x28 test digit as a PNG: what uploads looked like before real pictures."""


@dataclass(frozen=True)
class StyleScore:
    style: str
    count: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else 0.0


def reference_pictures(images: np.ndarray, labels: np.ndarray, count: int) -> list[Picture]:
    """Every ``len // count``-th test digit saved as it is, a grayscale PNG."""
    step = max(1, len(images) // count)
    return [
        Picture(REFERENCE, int(i), int(labels[i]), to_bytes(images[i]))
        for i in range(0, len(images), step)[:count]
    ]


def predict_labels(client: httpx.Client, url: str, pictures: Sequence[Picture]) -> list[int]:
    """The label ``/predict_image`` gives each picture, in order, ``CHUNK`` per request."""
    labels: list[int] = []
    for start in range(0, len(pictures), CHUNK):
        chunk = pictures[start : start + CHUNK]
        files = [
            ("images", (f"{p.style}-{p.index}", p.data, "application/octet-stream")) for p in chunk
        ]
        response = client.post(f"{url}/predict_image", files=files)
        if response.status_code != 200:
            raise RuntimeError(f"/predict_image answered {response.status_code}: {response.text}")
        labels.extend(int(p["label"]) for p in response.json()["predictions"])
    return labels


def score(url: str, pictures: Sequence[Picture]) -> list[StyleScore]:
    """Accuracy per style, in the order the styles first appear in ``pictures``."""
    with httpx.Client(timeout=120.0) as client:
        predicted = predict_labels(client, url, pictures)
    counts: dict[str, list[int]] = {}
    for picture, label in zip(pictures, predicted, strict=True):
        tally = counts.setdefault(picture.style, [0, 0])
        tally[0] += 1
        tally[1] += int(label == picture.label)
    return [StyleScore(style, n, correct) for style, (n, correct) in counts.items()]


def table(scores: Sequence[StyleScore]) -> str:
    """Markdown: one row per style, then the mean and the smallest over the styles."""
    styled = [s for s in scores if s.style != REFERENCE]
    rows = ["| style | images | accuracy |", "|---|---:|---:|"]
    rows += [f"| {s.style} | {s.count} | {s.accuracy:.3f} |" for s in scores]
    if styled:
        accuracies = [s.accuracy for s in styled]
        rows.append(f"| **mean of styles** | | **{np.mean(accuracies):.3f}** |")
        rows.append(f"| **worst style** | | **{min(accuracies):.3f}** |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.realworld_report", description=__doc__)
    parser.add_argument("--model-dir", default="models/mnist", help="model root to serve")
    parser.add_argument("--url", help="an already running service instead of a fresh one")
    parser.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV), help="MNIST IDX")
    parser.add_argument("--per-style", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    if not args.data_dir:
        print(f"set {DATA_DIR_ENV} or pass --data-dir", file=sys.stderr)
        return 2
    _, (images, labels) = load_dir(args.data_dir)
    started = time.perf_counter()
    pictures = render(images, labels, per_style=args.per_style, seed=args.seed)
    pictures += reference_pictures(images, labels, args.per_style)
    rendered = time.perf_counter() - started
    if args.url:
        scores = score(args.url.rstrip("/"), pictures)
    else:
        with running_service(args.model_dir, workers=2) as server:
            scores = score(server.url, pictures)
    text = table(scores)
    print(text)
    print(
        f"\n{len(pictures)} pictures, seed {args.seed}: rendered in {rendered:.0f} s, "
        f"scored in {time.perf_counter() - started - rendered:.0f} s",
        file=sys.stderr,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        numbers = {s.style: {"images": s.count, "accuracy": s.accuracy} for s in scores}
        args.out.with_suffix(".json").write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
