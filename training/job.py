"""One training run: load, train, evaluate on the test set, export with metadata and report."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.dataset import file_digests
from mnist_core.modeldir import read_metadata
from mnist_core.preprocess import to_model_input

from .data import load_data, resolve_data_dir

IMPLEMENTATIONS = ("keras", "naive")
DEFAULT_EPOCHS = {"keras": 5, "naive": 10}


@dataclass(frozen=True)
class JobConfig:
    implementation: str = "keras"
    data_dir: str | None = None
    model_dir: str = "models/mnist"
    epochs: int | None = None  # None: the implementation's default (DEFAULT_EPOCHS)
    batch_size: int = 128
    hidden_units: int = 512
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    seed: int = 0
    train_limit: int | None = None
    deterministic: bool = True
    report: bool = True
    verbose: int = 1


def hyperparameters(config: JobConfig) -> dict[str, Any]:
    """What shaped the weights, as recorded in metadata.json (the seed is recorded apart)."""
    params: dict[str, Any] = {
        "epochs": config.epochs or DEFAULT_EPOCHS[config.implementation],
        "batch_size": config.batch_size,
        "hidden_units": config.hidden_units,
        "learning_rate": config.learning_rate,
        "train_limit": config.train_limit,
        "deterministic": config.deterministic,
    }
    if config.implementation == "keras":
        params["optimizer"] = config.optimizer
        params["loss"] = "sparse_categorical_crossentropy"
    else:
        params["optimizer"] = "sgd (w -= learning_rate * gradient)"
        params["loss"] = "sparse_categorical_crossentropy"
        params["initialisation"] = "W ~ uniform[0, 0.1), b = 0"
    return params


def _train(
    config: JobConfig, pixels: np.ndarray, labels: np.ndarray
) -> tuple[Any, Any, dict[str, list[float]]]:
    """Returns ``(forward, trackable, history)`` for the exporter."""
    params = hyperparameters(config)
    if config.implementation == "keras":
        from . import keras_model

        keras_config = keras_model.KerasConfig(
            hidden_units=config.hidden_units,
            optimizer=config.optimizer,
            learning_rate=config.learning_rate,
            epochs=params["epochs"],
            batch_size=config.batch_size,
            seed=config.seed,
        )
        model, history = keras_model.train(keras_config, pixels, labels, verbose=config.verbose)
        # Tracking the layers rather than the model leaves the optimizer's slot variables
        # out of the SavedModel: serving needs none of them, and the export halves in size.
        return keras_model.forward(model), model.layers, history
    from . import naive

    naive_config = naive.NaiveConfig(
        hidden_units=config.hidden_units,
        learning_rate=config.learning_rate,
        epochs=params["epochs"],
        batch_size=config.batch_size,
        seed=config.seed,
    )
    network, history = naive.train(naive_config, pixels, labels, verbose=config.verbose)
    return naive.forward(network), network, history


def run(config: JobConfig) -> tuple[Path, dict[str, Any]]:
    """Train, evaluate and export; returns the published version directory and its metadata.

    Raises ``DataFileError`` (before TensorFlow is imported) when the data cannot be read.
    """
    if config.implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {config.implementation!r}")
    (x_train, y_train), (x_test, y_test) = load_data(config.data_dir)
    if config.train_limit is not None:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    data_dir = resolve_data_dir(config.data_dir)
    data_sha256: dict[str, str] | str = (
        file_digests(data_dir) if data_dir else "keras.datasets.mnist.load_data()"
    )

    import keras
    import tensorflow as tf

    from . import export
    from .evaluate import evaluate, format_table

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    started = time.perf_counter()
    forward, trackable, history = _train(config, to_model_input(x_train), y_train)
    train_seconds = time.perf_counter() - started

    probabilities = np.asarray(forward(tf.constant(to_model_input(x_test))))
    result = evaluate(probabilities, y_test)
    print(format_table(result), flush=True)

    metadata: dict[str, Any] = {
        "implementation": config.implementation,
        "hyperparameters": hyperparameters(config),
        "seed": config.seed,
        "data_dir": str(data_dir) if data_dir else None,
        "data_sha256": data_sha256,
        "train_examples": len(x_train),
        "test_examples": len(x_test),
        **result.to_metadata(),
        "train_seconds": round(train_seconds, 2),
        "history": {name: [float(v) for v in values] for name, values in history.items()},
        "software": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "report": [],
    }

    def before_publish(directory: Path) -> None:
        # The NumPy runtime's weights and the signature's answers on the test images, so
        # a worker can check and serve it without importing TensorFlow (runtime.dense).
        from runtime.dense import write_derived

        refused = write_derived(directory, x_test)
        if refused:
            print(f"no derived dense runtime for this version: {refused}", flush=True)
        if config.report:
            from .report import write_report as plot

            plot(directory, history, x_test, y_test, result)

    if config.report:
        from .report import REPORT_FILES

        metadata["report"] = list(REPORT_FILES)
    target = export.export(
        forward, trackable, Path(config.model_dir), metadata, before_publish=before_publish
    )
    return target, read_metadata(target)


def job_config_from(args: Any) -> JobConfig:
    """Build a ``JobConfig`` from parsed command-line arguments (names match the fields)."""
    fields = asdict(JobConfig())
    return JobConfig(**{name: getattr(args, name) for name in fields})


def describe(target: Path, metadata: dict[str, Any]) -> str:
    return (
        f"exported version {metadata['version']} to {target} "
        f"({metadata['implementation']}, test accuracy {metadata['test_accuracy']:.4f}, "
        f"trained in {metadata['train_seconds']:.1f} s)"
    )
