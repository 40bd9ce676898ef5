"""The stock-BentoML peer: the service a user would write with BentoML 1.4 and nothing else.

One batchable API over the same SavedModel, with BentoML's adaptive batching at its
defaults, two workers, ``np.ndarray`` in and out; plus a ``.npy`` upload route
(``pathlib.Path``, BentoML's way of taking a file). No input checks beyond BentoML's,
no metrics of its own, no tuning. The benchmark measures it beside our service in the same
round, so a user sees what the service gains over writing it themselves.

Run: ``MNIST_STOCK_MODEL=models/mnist/1 python -m load.stock_service --port 3200``
(ready when /readyz is 200); :func:`load.bench.stock_command` builds that command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import bentoml
import numpy as np

MODEL_ENV = "MNIST_STOCK_MODEL"


@bentoml.service(name="mnist_stock", workers=2, traffic={"timeout": 60})
class StockService:
    """The SavedModel's signature behind a batchable BentoML API."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        self.signature = tf.saved_model.load(os.environ[MODEL_ENV]).signatures["serving_default"]

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = self.tf.constant(images.reshape(-1, 28, 28).astype(np.uint8))
        result: np.ndarray = self.signature(images=batch)["probabilities"].numpy()
        return result

    @bentoml.api(batchable=True)  # type: ignore[untyped-decorator]
    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._probabilities(images)

    @bentoml.api  # type: ignore[untyped-decorator]
    def predict_npy(self, array: Path) -> np.ndarray:
        return self._probabilities(np.load(array, allow_pickle=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.stock_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from _bentoml_impl.server.serving import serve_http
    from bentoml._internal.configuration.containers import BentoMLContainer

    # Workers import the service by module path (this module is ``__main__`` here).
    from load.stock_service import StockService as service

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    run_dir = Path(tempfile.mkdtemp(prefix="mnist-stock-"))
    # BentoML wipes its Prometheus directory on start: a private one leaves other servers'.
    BentoMLContainer.prometheus_multiproc_dir.set(str(run_dir / "prometheus"))
    service.config["workers"] = args.workers
    service.inject_config()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    server = serve_http(service, host=args.host, port=args.port, threaded=True)
    for signum in (signal.SIGINT, signal.SIGTERM):  # after circus installed its own
        signal.signal(signum, on_signal)
    try:
        stop.wait()
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
