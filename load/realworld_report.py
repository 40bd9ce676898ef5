"""Accuracy of ``POST /predict_image`` on the real-world styles of :mod:`harness.realworld`.

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
from pathlib import Path

import numpy as np

from harness.launch import running_service
from harness.realworld import Picture, render, to_bytes
from harness.realworld_scores import REFERENCE, score, table
from mnist_core.dataset import DATA_DIR_ENV, load_dir


def reference_pictures(images: np.ndarray, labels: np.ndarray, count: int) -> list[Picture]:
    """Every ``len // count``-th test digit saved as it is, a grayscale PNG."""
    step = max(1, len(images) // count)
    return [
        Picture(REFERENCE, int(i), int(labels[i]), to_bytes(images[i]))
        for i in range(0, len(images), step)[:count]
    ]


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
