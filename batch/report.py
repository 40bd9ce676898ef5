"""The final summary of a job: throughput, retries, failures, and accuracy when labels are known."""

from __future__ import annotations

import numpy as np

from .runner import JobStats


def accuracy(confusion: np.ndarray) -> tuple[int, int]:
    """(correct, total) of a confusion matrix whose rows are true labels."""
    return int(np.trace(confusion)), int(confusion.sum())


def confusion_table(confusion: np.ndarray) -> str:
    """The matrix as aligned text; rows are true labels, columns predicted ones."""
    width = max(5, len(str(int(confusion.max(initial=0)))) + 1)
    lines = ["true\\pred" + "".join(f"{d:>{width}}" for d in range(10))]
    for digit, row in enumerate(confusion):
        lines.append(f"{digit:>9}" + "".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def summary(stats: JobStats) -> str:
    resumed = f" (resumed at row {stats.resumed_from})" if stats.resumed_from else ""
    lines = [
        f"images      {stats.scored} of {stats.total}{resumed}",
        f"seconds     {stats.seconds:.2f}",
        f"images/s    {stats.images_per_second:.0f}",
        f"retries     {stats.retries}",
        f"failures    {stats.failures}",
    ]
    if stats.model_version is not None:
        lines.append(f"model       version {stats.model_version}")
    if stats.confusion is not None and stats.confusion.sum():
        correct, total = accuracy(stats.confusion)
        lines.append(f"accuracy    {correct / total:.6f} ({correct} of {total} labelled rows)")
        lines.append("confusion matrix (rows: true label, columns: predicted label)")
        lines.append(confusion_table(stats.confusion))
    return "\n".join(lines)
