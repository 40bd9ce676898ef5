"""Rows of a scoring job's output: CSV (default) or JSON Lines, one row per input image.

Columns: the row's key (``index``, or ``file`` for a directory of images), ``label``,
``confidence``, ``p0`` .. ``p9``, ``model_version``. Floats have a fixed format with 8
decimals, so the same predictions always give the same bytes: a resumed job's output is
byte-identical to an uninterrupted one, and outputs of the client, ``--local`` and the
service's async jobs can be compared directly.

``mnist-batch`` and the service's async jobs both write their rows here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import numpy as np

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
FLOAT = "%.8f"
PROBABILITY_COLUMNS = tuple(f"p{digit}" for digit in range(10))


def columns(key: str) -> tuple[str, ...]:
    """Column names of a CSV output whose rows are identified by ``key``."""
    return (key, "label", "confidence", *PROBABILITY_COLUMNS, "model_version")


def header(fmt: Format, key: str = "index") -> str:
    """Text written once before the first row (JSON Lines has none)."""
    return ",".join(columns(key)) + "\n" if fmt == "csv" else ""


def _csv_key(name: str) -> str:
    if any(c in name for c in ',"\r\n'):
        return '"' + name.replace('"', '""') + '"'
    return name


def format_rows(
    fmt: Format,
    keys: Sequence[int] | Sequence[str],
    labels: np.ndarray,
    probabilities: np.ndarray,
    model_version: int,
    *,
    key: str = "index",
) -> str:
    """Rows for ``len(keys)`` predictions: ``labels`` (n,) and ``probabilities`` (n, 10).

    ``confidence`` is the probability of the predicted label, so it is formatted from
    the same number as that label's column.
    """
    n = len(keys)
    if labels.shape != (n,) or probabilities.shape != (n, 10):
        raise ValueError(
            f"{n} keys, labels {labels.shape} and probabilities {probabilities.shape} disagree"
        )
    label_list = [int(v) for v in labels]
    # float64 holds every float32 exactly, so both precisions format to the same text.
    probs = probabilities.astype(np.float64).tolist()
    if fmt == "csv":
        line = "%s,%d," + ",".join([FLOAT] * 11) + f",{int(model_version)}\n"
        key_texts = [_csv_key(k) if isinstance(k, str) else str(k) for k in keys]
        return "".join(
            line % (k, label, p[label], *p)
            for k, label, p in zip(key_texts, label_list, probs, strict=True)
        )
    line = (
        f'{{"{key}":%s,"label":%d,"confidence":{FLOAT},'
        f'"probabilities":[{",".join([FLOAT] * 10)}],"model_version":{int(model_version)}}}\n'
    )
    key_texts = [json.dumps(k) if isinstance(k, str) else str(k) for k in keys]
    return "".join(
        line % (k, label, p[label], *p)
        for k, label, p in zip(key_texts, label_list, probs, strict=True)
    )
