"""Checks applied to every prediction response seen under load.

A response that breaks the contract (status, content, shape, probabilities) raises
``ProtocolError`` with a reason short enough to group by in Locust's failure table. A
wrong label is not a protocol error: the counts of right and wrong labels are returned so
the accuracy seen under load can be reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

PROBABILITY_TOLERANCE = 1e-3
NUM_CLASSES = 10


class ProtocolError(Exception):
    """The response does not honour the HTTP contract; the message is the reason."""


@dataclass(frozen=True)
class Verdict:
    """How many labels of one well-formed response matched the true labels."""

    correct: int
    total: int


def _error_detail(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:80].decode("utf-8", "replace")
    # BentoML 1.4 wraps some error bodies in a one-element list.
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        data = data[0]
    if isinstance(data, Mapping):
        return str(data.get("reason") or data.get("error") or "")[:80]
    return ""


def _check_prediction(index: int, prediction: Any) -> int:
    if not isinstance(prediction, Mapping):
        raise ProtocolError(f"prediction {index} is not an object")
    label = prediction.get("label")
    probabilities = prediction.get("probabilities")
    confidence = prediction.get("confidence")
    if not isinstance(label, int) or not 0 <= label < NUM_CLASSES:
        raise ProtocolError(f"prediction {index}: label {label!r} is not a digit")
    if not isinstance(probabilities, list) or len(probabilities) != NUM_CLASSES:
        raise ProtocolError(f"prediction {index}: probabilities are not {NUM_CLASSES} numbers")
    if not all(isinstance(p, float | int) and 0.0 <= p <= 1.0 for p in probabilities):
        raise ProtocolError(f"prediction {index}: a probability is outside [0, 1]")
    total = math.fsum(probabilities)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise ProtocolError(f"prediction {index}: probabilities sum to {total:.4f}")
    best = max(probabilities)
    if probabilities[label] != best:
        raise ProtocolError(f"prediction {index}: label is not the most probable class")
    if not isinstance(confidence, float | int) or abs(confidence - best) > PROBABILITY_TOLERANCE:
        raise ProtocolError(f"prediction {index}: confidence {confidence!r} is not the maximum")
    return label


def check_predictions(
    status: int,
    body: bytes,
    true_labels: Sequence[int],
    *,
    model_version_header: str | None,
    filenames: Sequence[str] = (),
) -> Verdict:
    """Validate one ``/predict*`` response against the labels of the images sent."""
    if status != 200:
        detail = _error_detail(body or b"")
        raise ProtocolError(f"HTTP {status}" + (f": {detail}" if detail else ""))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError("body is not JSON") from None
    if not isinstance(data, Mapping):
        raise ProtocolError("body is not a JSON object")
    version = data.get("model_version")
    if not isinstance(version, int):
        raise ProtocolError("model_version missing or not an integer")
    if model_version_header is None:
        raise ProtocolError("X-Model-Version header missing")
    if model_version_header != str(version):
        raise ProtocolError(f"X-Model-Version {model_version_header!r} != body {version}")
    predictions = data.get("predictions")
    if not isinstance(predictions, list):
        raise ProtocolError("predictions missing or not a list")
    if len(predictions) != len(true_labels):
        raise ProtocolError(f"{len(predictions)} predictions for {len(true_labels)} images")
    correct = 0
    for index, (prediction, truth) in enumerate(zip(predictions, true_labels, strict=True)):
        correct += _check_prediction(index, prediction) == truth
        if filenames and prediction.get("filename") != filenames[index]:
            raise ProtocolError(f"prediction {index}: filename does not match, order lost?")
    return Verdict(correct, len(true_labels))
