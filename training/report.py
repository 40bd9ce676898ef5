"""The pictures published with each model version: learning curves, confusion, mistakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

# Training runs headless (CI, containers); never try to open a window.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from mnist_core.modeldir import REPORT_FILES

from .evaluate import NUM_CLASSES, Evaluation

LEARNING_CURVES, CONFUSION_MATRIX, MISCLASSIFIED = REPORT_FILES


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: Path) -> None:
    metrics = [name for name in ("loss", "accuracy") if history.get(name)]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(5 * max(len(metrics), 1), 3.5))
    for ax, name in zip(np.atleast_1d(axes), metrics, strict=False):
        values = list(history[name])
        ax.plot(range(1, len(values) + 1), values, marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"training {name}")
        ax.set_title(f"training {name} per epoch")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(result: Evaluation, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5.5))
    # A log scale keeps the few errors visible next to the ~1,000 hits on the diagonal.
    image = ax.imshow(np.log1p(result.confusion), cmap="Blues")
    for true in range(NUM_CLASSES):
        for predicted in range(NUM_CLASSES):
            count = int(result.confusion[true, predicted])
            if count:
                color = "white" if true == predicted else "black"
                ax.text(
                    predicted, true, str(count), ha="center", va="center", fontsize=7, color=color
                )
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_yticks(range(NUM_CLASSES))
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(f"confusion matrix (test accuracy {result.accuracy:.4f})")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_misclassified(
    images: np.ndarray, labels: np.ndarray, result: Evaluation, path: Path, *, limit: int = 36
) -> None:
    wrong = np.flatnonzero(result.predictions != labels)[:limit]
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, index in zip(np.ravel(axes), wrong, strict=False):
        ax.imshow(images[index], cmap="gray_r")
        ax.set_title(f"true {labels[index]} / pred {result.predictions[index]}", fontsize=7)
    fig.suptitle(f"first {len(wrong)} of {int((result.predictions != labels).sum())} mistakes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    directory: Path,
    history: Mapping[str, Sequence[float]],
    images: np.ndarray,
    labels: np.ndarray,
    result: Evaluation,
) -> list[str]:
    """Write the three PNGs into ``directory``; returns their file names."""
    plot_learning_curves(history, directory / LEARNING_CURVES)
    plot_confusion_matrix(result, directory / CONFUSION_MATRIX)
    plot_misclassified(images, labels, result, directory / MISCLASSIFIED)
    return list(REPORT_FILES)
