"""Scoring a trained network on the test images: loss, accuracy, per-class accuracy, confusion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NUM_CLASSES = 10
# Keeps log(0) finite for a confidently wrong prediction, as Keras' own cross-entropy does.
EPSILON = 1e-7


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion: np.ndarray  # [true label, predicted label] -> count
    predictions: np.ndarray  # predicted label per test image

    def to_metadata(self) -> dict[str, Any]:
        return {
            "test_loss": self.loss,
            "test_accuracy": self.accuracy,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion.tolist(),
        }


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Score ``probabilities`` [N, 10] against true ``labels`` [N]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.shape != (len(labels), NUM_CLASSES):
        raise ValueError(f"probabilities {probabilities.shape} do not match {len(labels)} labels")
    picked = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0)
    predictions = probabilities.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(NUM_CLASSES), where=support > 0)
    return Evaluation(
        loss=float(-np.log(picked).mean()),
        accuracy=float((predictions == labels).mean()),
        per_class_accuracy=[round(float(a), 6) for a in per_class],
        confusion=confusion,
        predictions=predictions,
    )


def format_table(result: Evaluation) -> str:
    """A plain-text report: totals, then one row per true digit with its confusion row."""
    header = "digit  support  accuracy | predicted " + " ".join(
        f"{d:>5}" for d in range(NUM_CLASSES)
    )
    lines = [
        f"test loss {result.loss:.4f}   test accuracy {result.accuracy:.4f}"
        f"   ({int(np.trace(result.confusion))}/{int(result.confusion.sum())} correct)",
        header,
        "-" * len(header),
    ]
    for digit in range(NUM_CLASSES):
        row = result.confusion[digit]
        cells = " ".join(f"{int(c):>5}" for c in row)
        lines.append(
            f"{digit:>5}  {int(row.sum()):>7}  {result.per_class_accuracy[digit]:>8.4f} |"
            f"           {cells}"
        )
    return "\n".join(lines)
