"""Train the chapter-2 MNIST network and export it as the next SavedModel version."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mnist_core.errors import DataFileError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-train", description=__doc__)
    parser.add_argument(
        "--data-dir",
        help="directory holding the four MNIST IDX files (default: $MNIST_DATA_DIR, "
        "else keras.datasets.mnist.load_data())",
    )
    parser.add_argument(
        "--model-dir",
        default="models/mnist",
        help="where versions are exported (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=5, help="passes over the training set (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, help="images per step (default: %(default)s)"
    )
    parser.add_argument(
        "--hidden-units",
        type=int,
        default=512,
        help="width of the hidden Dense layer (default: %(default)s)",
    )
    parser.add_argument(
        "--optimizer", default="rmsprop", help="Keras optimizer name (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for weights and shuffling (default: %(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mnist_core.dataset import file_digests
    from mnist_core.preprocess import to_model_input

    from . import export, keras_model
    from .data import load_data, resolve_data_dir

    try:
        (x_train, y_train), (x_test, y_test) = load_data(args.data_dir)
    except DataFileError as exc:
        print(f"mnist-train: {exc}", file=sys.stderr)
        return 2
    config = keras_model.KerasConfig(
        hidden_units=args.hidden_units,
        optimizer=args.optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    started = time.perf_counter()
    model, history = keras_model.train(config, to_model_input(x_train), y_train)
    wall = time.perf_counter() - started
    loss, accuracy = model.evaluate(to_model_input(x_test), y_test, verbose=0)
    data_dir = resolve_data_dir(args.data_dir)
    metadata = {
        "implementation": "keras",
        "hyperparameters": {k: v for k, v in vars(config).items() if k != "seed"},
        "seed": config.seed,
        "data_sha256": file_digests(data_dir) if data_dir else "keras.datasets.mnist",
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
        "train_seconds": round(wall, 2),
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
    }
    target = export.export(keras_model.forward(model), model, Path(args.model_dir), metadata)
    print(json.dumps({"exported": str(target), "test_accuracy": float(accuracy)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
