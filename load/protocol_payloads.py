"""Request bodies and answer checks for the standard protocols, for the Locust users.

V2 (Open Inference Protocol) bodies come as Triton's clients send them: binary (the JSON
header, then the raw uint8 pixels, outputs asked for as binary) or JSON (flat ``data``);
TF Serving bodies in its row form (``instances``). Each check raises
:class:`~load.checks.ProtocolError` when the answer breaks the protocol and returns the
count of right labels otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from load.checks import ProtocolError, Verdict
from load.payloads import TestImages

V2_INFER = "/v2/models/mnist/infer"
TF_PREDICT = "/v1/models/mnist:predict"
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class ProtocolPayload:
    body: bytes
    headers: dict[str, str]
    labels: tuple[int, ...]


def v2_payload(images: TestImages, *, binary: bool) -> ProtocolPayload:
    count = len(images)
    labels = tuple(int(v) for v in images.labels)
    tensor: dict[str, object] = {"name": "images", "shape": [count, 28, 28], "datatype": "UINT8"}
    if not binary:
        tensor["data"] = images.images.ravel().tolist()
        body = orjson.dumps({"inputs": [tensor]})
        return ProtocolPayload(body, {"Content-Type": "application/json"}, labels)
    tensor["parameters"] = {"binary_data_size": count * 784}
    head = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
    raw = np.ascontiguousarray(images.images, dtype=np.uint8).tobytes()
    return ProtocolPayload(head + raw, headers, labels)


def tfserving_payload(images: TestImages) -> ProtocolPayload:
    body = orjson.dumps({"instances": images.images.tolist()})
    labels = tuple(int(v) for v in images.labels)
    return ProtocolPayload(body, {"Content-Type": "application/json"}, labels)


def _verdict(labels: np.ndarray, probabilities: np.ndarray, expected: tuple[int, ...]) -> Verdict:
    if labels.shape != (len(expected),) or probabilities.shape != (len(expected), 10):
        raise ProtocolError(f"outputs of shape {labels.shape}, {probabilities.shape}")
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        raise ProtocolError("probabilities do not sum to 1")
    if not ((labels >= 0) & (labels <= 9)).all():
        raise ProtocolError("a label is not a digit")
    return Verdict(int(np.sum(labels == np.array(expected))), len(expected))


def check_v2(
    status: int, body: bytes, headers: Mapping[str, str], expected: tuple[int, ...]
) -> Verdict:
    if status != 200:
        raise ProtocolError(f"HTTP {status}")
    length = headers.get(HEADER_LENGTH)
    try:
        answer = orjson.loads(body[: int(length)] if length else body)
        outputs = {o["name"]: o for o in answer["outputs"]}
        binary = memoryview(body)[int(length) :] if length else memoryview(b"")
        arrays = {}
        offset = 0
        for name, dtype in (("probabilities", "<f4"), ("label", "<i8")):
            output = outputs[name]
            size = output.get("parameters", {}).get("binary_data_size")
            if size is None:
                arrays[name] = np.array(output["data"], dtype=dtype)
            else:
                arrays[name] = np.frombuffer(binary[offset : offset + size], dtype=dtype)
                offset += size
            arrays[name] = arrays[name].reshape(output["shape"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed V2 answer: {type(exc).__name__}") from None
    return _verdict(arrays["label"], arrays["probabilities"], expected)


def check_tfserving(status: int, body: bytes, expected: tuple[int, ...]) -> Verdict:
    if status != 200:
        raise ProtocolError(f"HTTP {status}")
    try:
        rows = orjson.loads(body)["predictions"]
        labels = np.array([row["label"] for row in rows])
        probabilities = np.array([row["probabilities"] for row in rows], dtype=np.float64)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed TF Serving answer: {type(exc).__name__}") from None
    if not all(math.isfinite(p) for p in probabilities.ravel()):
        raise ProtocolError("a probability is not finite")
    return _verdict(labels, probabilities, expected)
