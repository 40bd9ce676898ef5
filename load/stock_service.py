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

import os
import sys
from pathlib import Path

import bentoml
import numpy as np

from load import peer

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
    args = peer.parse_args("python -m load.stock_service", __doc__, argv)
    # Workers import the service by module path (this module is ``__main__`` here).
    from load.stock_service import StockService as service

    return peer.serve(service, args, run_prefix="mnist-stock-")


if __name__ == "__main__":
    sys.exit(main())
