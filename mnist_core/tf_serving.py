"""TensorFlow Serving's REST API for our model: predict requests, answers, status, metadata.

Pure logic, no HTTP. The layouts are TF Serving's own (``g3doc/api_rest.md``):

* predict takes ``instances`` (row form: each element one image, bare or as
  ``{"images": ...}``) or ``inputs`` (columnar: the whole batch, bare or as
  ``{"images": ...}``), never both; row requests are answered with ``predictions`` (one
  ``{"probabilities", "label"}`` object per image), columnar ones with ``outputs``;
* a uint8 input takes JSON integers only (``3.0`` is refused, as TF Serving does);
* status and metadata are written as the JSON forms of ``GetModelStatusResponse`` and
  ``GetModelMetadataResponse`` (versions and dimension sizes as strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, NotFound
from .modeldir import INPUT_NAME, MODEL_NAME, SIGNATURE, SIGNATURE_NAME
from .validation import PIXELS, SIDE, check_count, to_pixels

VERBS = ("predict", "classify", "regress")
_TF_TYPES = {"uint8": "DT_UINT8", "float32": "DT_FLOAT", "int64": "DT_INT64"}
STATES = {
    "loading": "LOADING",
    "available": "AVAILABLE",
    "unloading": "UNLOADING",
    "unloaded": "END",
    "failed": "END",
}
"""Our version states as TF Serving's ``ModelVersionStatus.State`` names."""


@dataclass(frozen=True)
class Target:
    """What a ``/v1/models/...`` path addresses."""

    version: int | None
    label: str | None
    metadata: bool
    verb: str | None


def parse_target(path: str) -> Target:
    """``mnist[/versions/<v>|/labels/<l>][/metadata]`` or ``...:<verb>``, checked."""
    verb = None
    if ":" in path:
        path, verb = path.rsplit(":", 1)
        if verb not in VERBS:
            raise NotFound(
                f"unknown method ':{verb}': TF Serving's are " + ", ".join(f":{v}" for v in VERBS),
                reason="not_found",
            )
    model, *rest = path.split("/")
    if model != MODEL_NAME:
        raise NotFound(
            f"unknown model '{model}': this server serves '{MODEL_NAME}'",
            reason="unknown_model",
            field="model",
        )
    metadata = verb is None and rest[-1:] == ["metadata"]
    if metadata:
        rest = rest[:-1]
    version = label = None
    if len(rest) == 4 and {rest[0], rest[2]} == {"versions", "labels"}:
        raise InputError(
            "give a version or a label, not both", reason="bad_request", field="version"
        )
    if len(rest) == 2 and rest[0] == "versions":
        if not rest[1].isdigit() or int(rest[1]) < 1:
            raise InputError(
                f"version must be a positive integer, got {rest[1]!r}",
                reason="invalid_version",
                field="version",
            )
        version = int(rest[1])
    elif len(rest) == 2 and rest[0] == "labels" and rest[1]:
        label = rest[1]
    elif rest:
        raise NotFound(f"no such resource: /v1/models/{path}", reason="not_found")
    return Target(version, label, metadata, verb)


@dataclass(frozen=True)
class PredictRequest:
    images: np.ndarray
    columnar: bool


def parse_predict(body: bytes, *, max_images: int) -> PredictRequest:
    """A ``:predict`` body as validated images, and which form it came in."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"body is not valid JSON: {exc}", reason="invalid_json") from None
    if not isinstance(payload, dict):
        raise InputError("the request body must be a JSON object", reason="bad_request")
    signature = payload.get("signature_name", SIGNATURE_NAME)
    if signature != SIGNATURE_NAME:
        raise InputError(
            f"serving signature name {signature!r} not found: the model has '{SIGNATURE_NAME}'",
            reason="unknown_signature",
            field="signature_name",
        )
    has_rows, has_columns = "instances" in payload, "inputs" in payload
    if has_rows == has_columns:
        raise InputError(
            "send exactly one of 'instances' (row format) or 'inputs' (columnar format)",
            reason="bad_request",
            field="instances" if has_rows else "inputs",
        )
    if has_rows:
        rows = payload["instances"]
        if not isinstance(rows, list) or not rows:
            raise InputError(
                "'instances' must be a non-empty list", reason="invalid_type", field="instances"
            )
        if all(isinstance(row, dict) for row in rows):
            rows = [_named(row, f"instances[{i}]") for i, row in enumerate(rows)]
        elif any(isinstance(row, dict) for row in rows):
            raise InputError(
                "'instances' mixes named objects and bare tensors",
                reason="bad_request",
                field="instances",
            )
        return PredictRequest(_images(rows, "instances", max_images), columnar=False)
    columns = payload["inputs"]
    if isinstance(columns, dict):
        columns = _named(columns, "inputs")
    return PredictRequest(_images(columns, "inputs", max_images), columnar=True)


def _named(value: dict[str, Any], where: str) -> Any:
    """The ``images`` entry of a named-input object; any other name is an error."""
    if INPUT_NAME not in value:
        raise InputError(
            f"{where} is missing the named input '{INPUT_NAME}'",
            reason="missing_field",
            field=where,
        )
    unknown = sorted(set(value) - {INPUT_NAME})
    if unknown:
        raise InputError(
            f"{where} names inputs the model does not have: {', '.join(unknown)}",
            reason="unknown_input",
            field=where,
        )
    return value[INPUT_NAME]


def _images(value: object, where: str, max_images: int) -> np.ndarray:
    if not isinstance(value, list):
        raise InputError(f"'{where}' must be a list of images", reason="invalid_type", field=where)
    check_count(len(value), max_images, field=where)
    try:
        batch = np.array(value)
    except (ValueError, TypeError, OverflowError):
        batch = None
    rule = f"the input '{INPUT_NAME}' is uint8: each value a JSON integer 0..255"
    if batch is not None and batch.dtype.kind == "f":
        raise InputError(
            f"'{where}' holds fractional or float values: {rule}",
            reason="not_integer",
            field=where,
        )
    if batch is None or batch.dtype.kind not in "iu" or _spells_boolean(value):
        raise InputError(
            f"'{where}' holds non-integer values or ragged images: {rule}, each image 28x28 or 784",
            reason="invalid_type",
            field=where,
        )
    if batch.shape[1:] not in ((SIDE, SIDE), (PIXELS,)):
        raise InputError(
            f"'{where}' has shape {list(batch.shape)}: expected [N, 28, 28] or [N, 784]",
            reason="invalid_shape",
            field=where,
        )
    return to_pixels(batch.reshape(len(batch), SIDE, SIDE))


def _spells_boolean(value: list[Any]) -> bool:
    text = json.dumps(value)
    return "true" in text or "false" in text


def predict_answer(
    request: PredictRequest, probabilities: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    if request.columnar:
        return {"outputs": {"probabilities": probabilities, "label": labels}}
    return {
        "predictions": [
            {"probabilities": row, "label": label}
            for row, label in zip(probabilities, labels.tolist(), strict=True)
        ]
    }


def model_status(versions: list[dict[str, Any]]) -> dict[str, Any]:
    """``GET /v1/models/mnist``: each version's state in TF Serving's layout."""
    found = []
    for version in versions:
        failed = version["state"] == "failed"
        found.append(
            {
                "version": str(version["version"]),
                "state": STATES[version["state"]],
                "status": {
                    "error_code": "UNKNOWN" if failed else "OK",
                    "error_message": (version.get("error") or "") if failed else "",
                },
            }
        )
    return {"model_version_status": found}


def _tensor_info(name: str, spec: dict[str, Any], tensor: str) -> dict[str, Any]:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec["shape"]]
    return {
        "dtype": _TF_TYPES[spec["dtype"]],
        "tensor_shape": {"dim": dims, "unknown_rank": False},
        "name": tensor,
    }


def model_metadata(version: int) -> dict[str, Any]:
    """``GET /v1/models/mnist/metadata``: the serving signature in TF Serving's layout.

    Tensor names follow TensorFlow 2's export: inputs ``serving_default_<name>:0``,
    outputs ``StatefulPartitionedCall:<i>`` in sorted output order.
    """
    inputs = {
        n: _tensor_info(n, s, f"{SIGNATURE_NAME}_{n}:0") for n, s in SIGNATURE["inputs"].items()
    }
    outputs = {
        n: _tensor_info(n, SIGNATURE["outputs"][n], f"StatefulPartitionedCall:{i}")
        for i, n in enumerate(sorted(SIGNATURE["outputs"]))
    }
    signature = {
        "inputs": inputs,
        "outputs": outputs,
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    return {
        "model_spec": {"name": MODEL_NAME, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE_NAME: signature}}},
    }
