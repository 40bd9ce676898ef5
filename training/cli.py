"""Train the chapter-2 MNIST network and export it as the next SavedModel version.

Prints the test-set evaluation table, then one line naming the exported version.
"""

from __future__ import annotations

import argparse
import sys

from mnist_core.errors import DataFileError

from .job import DEFAULT_EPOCHS, IMPLEMENTATIONS, JobConfig

DEFAULTS = JobConfig()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--impl",
        dest="implementation",
        choices=IMPLEMENTATIONS,
        default=DEFAULTS.implementation,
        help="keras: Sequential([Dense, Dense]) with model.fit; naive: the same network "
        "from scratch (NaiveDense, GradientTape, plain SGD) (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        help="directory holding the four MNIST IDX files, gzipped or raw (default: "
        "$MNIST_DATA_DIR, else keras.datasets.mnist.load_data(), which downloads)",
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULTS.model_dir,
        help="model root; the export becomes <model-dir>/<highest version + 1>/ "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        help="passes over the training set (default: "
        + ", ".join(f"{impl} {n}" for impl, n in DEFAULT_EPOCHS.items())
        + ")",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULTS.batch_size,
        help="images per gradient step (default: %(default)s)",
    )
    parser.add_argument(
        "--hidden-units",
        type=_positive_int,
        default=DEFAULTS.hidden_units,
        help="width of the hidden relu layer (default: %(default)s)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("rmsprop", "adam", "sgd"),
        default=DEFAULTS.optimizer,
        help="Keras optimizer; keras only, naive always uses plain SGD (default: %(default)s)",
    )
    parser.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=DEFAULTS.learning_rate,
        help="step size of the optimizer (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="seeds Python, NumPy and TensorFlow: initial weights and shuffling "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--train-limit",
        type=_positive_int,
        help="train on only the first N training images, for quick runs; the test set "
        "is always complete (default: all 60,000)",
    )
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.deterministic,
        help="make TensorFlow ops deterministic, so the same seed gives the same model "
        "(default: on)",
    )
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.report,
        help="write learning_curves.png, confusion_matrix.png and misclassified.png "
        "into the version directory (default: on)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=DEFAULTS.verbose,
        help="training progress: 0 silent, 1 progress bar, 2 one line per epoch "
        "(default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from runtime.quiet import start_tensorflow

    from .job import describe, job_config_from, run

    # Keras' progress bar is stdout; only TensorFlow's C++ start-up lines are dropped.
    start_tensorflow()

    try:
        target, metadata = run(job_config_from(args))
    except DataFileError as exc:
        print(f"mnist-train: {exc}", file=sys.stderr)
        return 2
    print(describe(target, metadata), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
