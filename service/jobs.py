"""Async batch jobs: an uploaded file of images scored into the batch client's output.

Exposed as the BentoML task ``batch``::

    POST /batch/submit   multipart: file=<.npy, .npz or IDX images (gzipped or raw)>,
                         optional format=csv|jsonl           -> {"task_id": ..., "status": ...}
    GET  /batch/status?task_id=...                            -> {"status": "in_progress" | ...}
    GET  /batch/get?task_id=...                               -> the CSV / JSON Lines rows

The rows are formatted by :mod:`mnist_core.rows`, so a job's result has the same columns
and the same bytes as ``mnist-batch`` writes for the same file and model. Images go
through the worker's batcher in chunks, sharing the model with online traffic instead of
competing with it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import BaseModel, Field, RootModel
from starlette.responses import Response

from mnist_core.errors import DataFileError, InputError, MnistError
from mnist_core.rows import FORMATS, Format, format_rows, header
from mnist_core.sources import Chunk, ImageSource, open_source

from .errors import error_response
from .worker import Scored, Worker

Predict = Callable[[np.ndarray], Awaitable[Scored]]
CHUNK_IMAGES = 1000
MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


class JobRows(RootModel[str]):
    """The job's rows as ``mnist-batch`` writes them: CSV, or JSON Lines on request."""


class JobUpload(BaseModel):
    """A file of images to score (multipart field ``file``) and the output format."""

    file: Path = Field(description=".npy, .npz or IDX images ([N, 28, 28] or [N, 784])")
    format: str = Field(default="csv", description="csv or jsonl")

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Self:
        fields = obj if isinstance(obj, dict) else {}
        return cls.model_construct(file=fields.get("file"), format=fields.get("format", "csv"))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:
        return cls.model_construct(file=None, format="csv")


def _saved_upload(upload: Any, directory: Path) -> Path:
    """The uploaded file copied to disk, keeping its suffixes (readers sniff .gz and .csv)."""
    from starlette.datastructures import UploadFile

    if not isinstance(upload, UploadFile):
        raise InputError(
            "send the images as a multipart file upload in field 'file'",
            reason="missing_field",
            field="file",
        )
    suffixes = "".join(Path(upload.filename or "upload").suffixes)[-16:]
    target = directory / f"upload{suffixes}"
    upload.file.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
    return target


def _format(value: object) -> Format:
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise InputError(
        f"format must be one of {', '.join(FORMATS)}", reason="bad_format", field="format"
    )


async def score_source(
    source: ImageSource, predict: Predict, model_version: int, fmt: Format
) -> str:
    """Every image of ``source`` scored in order, as output rows (header included)."""
    parts = [header(fmt, source.key)]
    chunks: Iterator[Chunk] = source.chunks(0, CHUNK_IMAGES)
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        n = len(chunk)
        scored = await predict(chunk.images)
        keys = range(chunk.start, chunk.stop)
        parts.append(
            await asyncio.to_thread(
                format_rows, fmt, keys, scored.labels[:n], scored.probabilities[:n], model_version
            )
        )
    return "".join(parts)


async def run_job(upload: Any, fmt_value: object, predict: Predict, model_version: int) -> Response:
    """The scored rows of an uploaded file; ``InputError`` for a file we cannot read."""
    fmt = _format(fmt_value)
    with tempfile.TemporaryDirectory(prefix="mnist-job-") as tmp:
        path = await asyncio.to_thread(_saved_upload, upload, Path(tmp))
        name = getattr(upload, "filename", None) or "file"
        try:
            source = open_source(path)
            if source.key != "index":
                raise DataFileError(path.name, "only files of images are accepted")
            text = await score_source(source, predict, model_version, fmt)
        except DataFileError as exc:
            message = f"{name}: {exc.problem}"
            raise InputError(message, reason="invalid_file", field="file") from None
    return Response(text, media_type=MEDIA_TYPES[fmt])


async def run(worker: Worker, upload: Any, fmt: object) -> Response:
    """The ``batch`` task's answer: the rows, or the error (which marks the task failed).

    The whole job is scored by the version that was the default when it started.
    """
    try:
        await worker.wait_ready()
        version = worker.repository.resolve()

        async def predict(images: np.ndarray) -> Scored:
            return await worker.predict(images, version=version)

        return await run_job(upload, fmt, predict, version)
    except MnistError as exc:
        return error_response(exc, worker.metrics.reject)
