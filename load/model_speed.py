"""The physical reference: the SavedModel's serving signature (or a derived runtime) in process.

Runs as its own process (``python -m load.model_speed``) so TensorFlow's threads and
memory never share a process with the load generator or the server. Prints images/s per
batch size as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from harness.procfs import rss_bytes
from load.payloads import load_test_images
from mnist_core.errors import ModelUnavailable
from runtime.runtimes import RUNTIMES, load_runtime
from runtime.savedmodel import Outputs

Model = Callable[[np.ndarray], Outputs]


def images_per_second(model: Model, batch: np.ndarray, seconds: float) -> float:
    """Images per second of ``model(batch)``, the call the service's workers make."""
    for _ in range(3):
        model(batch)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline or calls < 3:
        model(batch)
        calls += 1
    return calls * len(batch) / (now - started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.model_speed", description=__doc__)
    parser.add_argument("--model-dir", default=os.environ.get("MNIST_MODEL_DIR", "models/mnist"))
    parser.add_argument("--batches", default="1,32,1024", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size")
    parser.add_argument("--runtime", choices=RUNTIMES, default="signature")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        loaded = load_runtime(
            args.model_dir, runtime=args.runtime, data_dir=os.environ.get("MNIST_DATA_DIR")
        )
    except ModelUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    if loaded.runtime != args.runtime:
        print(f"the {args.runtime} runtime was refused: {loaded.fallback}", file=sys.stderr)
        return 2
    model = loaded.model
    test = load_test_images()
    rates = {}
    for size in (int(b) for b in args.batches.split(",")):
        batch = np.ascontiguousarray(test.window(0, size).images)
        rates[str(size)] = images_per_second(model, batch, args.seconds)
    # What the runtime plus this model take in a bare process: the floor for a worker's RSS.
    rss_mb = rss_bytes(os.getpid()) / (1024 * 1024)
    result = {"version_dir": str(model.info.path), "images_per_s": rates, "rss_mb": rss_mb}
    result["runtime"] = loaded.runtime
    result["tensorflow"] = "tensorflow" in sys.modules
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
