"""The Open Inference Protocol (V2) for our model: its metadata, infer requests and answers.

Pure logic, no HTTP: :func:`parse_infer` turns a request (its JSON header and, with
Triton's binary tensor extension, the raw bytes after it) into validated images and the
outputs asked for; :func:`infer_answer` builds the answer's JSON header and the raw
bytes of its binary outputs. The contract is the model's own
(:data:`~mnist_core.modeldir.SIGNATURE`): input ``images`` UINT8 ``[-1, 28, 28]``
(``[N, 784]`` accepted too), outputs ``probabilities`` FP32 ``[-1, 10]`` and ``label``
INT64 ``[-1]``.

Binary extension: the header's length is the ``Inference-Header-Content-Length`` HTTP
header; an input with ``parameters.binary_data_size`` takes that many bytes, in input
order, from what follows; an output is sent binary when it asks (``binary_data``) or the
request does (``binary_data_output``), its size in its ``binary_data_size``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import tensors
from .errors import InputError, NotFound
from .modeldir import INPUT_NAME, MODEL_NAME, SIGNATURE

PLATFORM = "tensorflow_savedmodel"
EXTENSIONS = ("binary_tensor_data", "model_repository")
HEADER_LENGTH = "inference-header-content-length"
OUTPUTS = tuple(SIGNATURE["outputs"])
_V2_TYPES = {"uint8": "UINT8", "float32": "FP32", "int64": "INT64"}


def _tensor_meta(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    shape = [-1 if d is None else d for d in spec["shape"]]
    return {"name": name, "datatype": _V2_TYPES[spec["dtype"]], "shape": shape}


def model_metadata(versions: list[int]) -> dict[str, Any]:
    """``GET /v2/models/mnist``: name, versions (as strings), platform, inputs, outputs."""
    return {
        "name": MODEL_NAME,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [_tensor_meta(n, s) for n, s in SIGNATURE["inputs"].items()],
        "outputs": [_tensor_meta(n, s) for n, s in SIGNATURE["outputs"].items()],
    }


def check_model(name: str) -> None:
    if name != MODEL_NAME:
        raise NotFound(
            f"unknown model '{name}': this server serves '{MODEL_NAME}'",
            reason="unknown_model",
            field="model",
        )


@dataclass(frozen=True)
class Requested:
    """One output to send, and whether as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    images: np.ndarray
    outputs: tuple[Requested, ...]


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part after it (empty without the extension)."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit():
        raise InputError(
            f"Inference-Header-Content-Length must be a byte count, got {header_length!r}",
            reason="bad_header_length",
            field="Inference-Header-Content-Length",
        )
    length = int(header_length)
    if length > len(body) or length == 0:
        raise InputError(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes",
            reason="bad_header_length",
            field="Inference-Header-Content-Length",
        )
    return body[:length], memoryview(body)[length:]


_KEY = b'"data"'
_AFTER_KEY = re.compile(rb"\s*:\s*\[")
_MARK = "\x00mnist-fast-data"
_SENTINEL = json.dumps(_MARK).encode()


def read_header(header: bytes) -> tuple[Any, bytes | None]:
    """The parsed JSON header, with the one ``data`` array kept as bytes where possible.

    A million pixels as Python objects cost several times the model call. When the
    header holds exactly one ``"data": [...]``, that array is cut out and left for
    :func:`~mnist_core.tensors.json_uint8` to read from its bytes; the rest is parsed
    with a marker in its place, and the cut is trusted only if the marker lands as the
    input's ``data`` (anywhere else, the header is parsed whole).
    """
    key = header.find(_KEY)
    after = _AFTER_KEY.match(header, key + len(_KEY)) if key != -1 else None
    if after and header.find(_KEY, key + 1) == -1 and _SENTINEL not in header:
        start = after.end() - 1
        end = _array_end(header, start)
        if end is not None:
            try:
                parsed = json.loads(header[:start] + _SENTINEL + header[end:])
            except (ValueError, RecursionError):
                parsed = None
            if _marked(parsed):
                return parsed, header[start:end]
    return _loads(header), None


def _array_end(text: bytes, start: int) -> int | None:
    """Just past the bracket closing the one opened at ``start`` (strings not considered:
    a wrong cut fails the marker check)."""
    close = text.find(b"]", start)
    if close == -1:
        return None
    if text.find(b"[", start + 1, close) == -1:  # flat, as Triton's clients send it
        return close + 1
    chars = np.frombuffer(text, dtype=np.uint8, offset=start)
    depth = np.cumsum((chars == ord("[")).astype(np.int32) - (chars == ord("]")))
    closed = np.flatnonzero(depth == 0)
    return start + int(closed[0]) + 1 if len(closed) else None


def _marked(parsed: Any) -> bool:
    if not isinstance(parsed, dict):
        return False
    inputs = parsed.get("inputs")
    return (
        isinstance(inputs, list)
        and len(inputs) == 1
        and isinstance(inputs[0], dict)
        and inputs[0].get("data") == _MARK
    )


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InputError(
            f"the inference request is not valid JSON: {exc}", reason="invalid_json"
        ) from None


def parse_infer(header: bytes, binary: memoryview, *, max_images: int) -> InferRequest:
    """A V2 infer request as validated images and the outputs to send."""
    payload, data_bytes = read_header(header)
    if not isinstance(payload, dict):
        raise InputError("the inference request must be a JSON object", reason="bad_request")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("'id' must be a string", reason="invalid_type", field="id")
    parameters = _parameters(payload, "request")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InputError(
            f"'inputs' must be a list of one tensor, '{INPUT_NAME}'",
            reason="missing_field",
            field="inputs",
        )
    images = _input(inputs[0], binary, data_bytes, header, max_images)
    binary_default = parameters.get("binary_data_output") is True
    return InferRequest(request_id, images, _outputs(payload.get("outputs"), binary_default))


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InputError(
            f"{what} 'parameters' must be a JSON object", reason="invalid_type", field="parameters"
        )
    return parameters


def _input(
    tensor: dict[str, Any],
    binary: memoryview,
    data_bytes: bytes | None,
    header: bytes,
    max_images: int,
) -> np.ndarray:
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise InputError(
            f"unknown input {name!r}: the model's input is '{INPUT_NAME}'",
            reason="unknown_input",
            field="inputs",
        )
    dtype = tensors.datatype_of(tensor.get("datatype"), field=name)
    shape = tensors.image_shape(tensor.get("shape"), field=name, max_images=max_images)
    size = _parameters(tensor, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise InputError(
                f"input '{name}' binary_data_size must be a byte count",
                reason="invalid_type",
                field=name,
            )
        if size > len(binary):
            raise InputError(
                f"input '{name}' declares {size} bytes of binary data; "
                f"{len(binary)} follow the JSON header",
                reason="truncated_binary",
                field=name,
            )
        if size != len(binary):
            raise InputError(
                f"{len(binary) - size} bytes after the binary data of input '{name}' "
                "belong to no input",
                reason="invalid_binary_size",
                field=name,
            )
        if "data" in tensor:
            raise InputError(
                f"input '{name}' has both 'data' and binary_data_size",
                reason="bad_request",
                field=name,
            )
        values = tensors.from_bytes(binary, dtype, shape, field=name)
    else:
        if len(binary):
            raise InputError(
                f"{len(binary)} bytes follow the JSON header but no input declares "
                "binary_data_size",
                reason="invalid_binary_size",
                field=name,
            )
        fast = tensors.json_uint8(data_bytes, shape) if data_bytes is not None else None
        if fast is not None:
            return tensors.to_images(fast, field=name)
        data = tensor.get("data") if data_bytes is None else _loads(data_bytes)
        if data is None:
            raise InputError(
                f"input '{name}' has no 'data' (nor binary_data_size)",
                reason="missing_field",
                field=name,
            )
        may_hold_booleans = b"true" in header or b"false" in header
        values = tensors.from_json(
            data, dtype, shape, field=name, may_hold_booleans=may_hold_booleans
        )
    return tensors.to_images(values, field=name)


def _outputs(asked: object, binary_default: bool) -> tuple[Requested, ...]:
    if asked is None:
        return tuple(Requested(name, binary_default) for name in OUTPUTS)
    if not isinstance(asked, list) or not asked:
        raise InputError(
            "'outputs' must be a non-empty list of {\"name\": ...} objects",
            reason="invalid_type",
            field="outputs",
        )
    chosen: list[Requested] = []
    for item in asked:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in OUTPUTS:
            raise InputError(
                f"unknown output {name!r}: the model's outputs are {', '.join(OUTPUTS)}",
                reason="unknown_output",
                field="outputs",
            )
        binary = _parameters(item, f"output '{name}'").get("binary_data", binary_default)
        chosen.append(Requested(name, binary is True))
    return tuple(chosen)


def infer_answer(
    request: InferRequest, version: int, probabilities: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, Any], list[bytes]]:
    """The answer's JSON header and, in output order, the bytes of its binary outputs."""
    values = {"probabilities": probabilities, "label": labels.astype(np.int64, copy=False)}
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for wanted in request.outputs:
        array = values[wanted.name]
        entry: dict[str, Any] = {
            "name": wanted.name,
            "datatype": tensors.datatype_name(array.dtype),
            "shape": list(array.shape),
        }
        if wanted.binary:
            raw = tensors.to_bytes(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.ravel()
        outputs.append(entry)
    answer: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": str(version)}
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = outputs
    return answer, chunks
