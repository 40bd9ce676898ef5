"""Scoring a data set too large for one driver with Ray Data: files in, Parquet out.

    python -m batch.ray_data INPUT... -o OUTPUT_DIR --model MODEL_DIR [--ray-address auto]

``mnist-batch`` reads every row in its driver, which is what makes its one output file
byte-identical and resumable; past what one machine should read, this pipeline spreads
the reading too. The driver reads only the inputs' headers (row counts); read tasks on
the cluster read row ranges, a pool of actors (each loading the SavedModel once, as in
``--engine ray``) scores them, and write tasks store Parquet files.

Each row keeps its key, ``index``: its position in the inputs taken in the order given
(the rows of the first file, then the second...). Every index appears exactly once in
the output: a read task yields exactly its range, and a retried task (a lost actor, a
lost node) writes the file names its first attempt would have, so it replaces rather
than adds. The files are in no particular order; sort by ``index`` to line them up.

Inputs: ``.npy`` files and raw IDX image files (memory-mapped, so a read task touches
only its range), or Parquet files or directories with an ``index`` column (int64) and an
``image`` column of 784 pixel bytes (binary or fixed-size binary). The output has the
columns of ``mnist-batch``'s CSV: ``index``, ``label``, ``confidence``, ``p0``..``p9``
(float32, the model's own numbers) and ``model_version``; formatted with
:func:`mnist_core.rows.format_rows` they give ``mnist-batch``'s exact bytes.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mnist_core.chunks import IMAGE_SHAPE
from mnist_core.errors import DataFileError, MnistError
from mnist_core.modeldir import resolve_model
from mnist_core.rows import PROBABILITY_COLUMNS
from mnist_core.sources import ArraySource, open_source

from .ray_cluster import RayCluster
from .ray_pool import ScoringActor

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
IMAGE_TYPE = pa.binary(PIXELS)
ROWS_PER_READ = 10_000
"""Rows per read task: about 8 MB of pixels, many tasks for the cluster to spread."""
BATCH_SIZE = 1000
"""Images per model call, as ``mnist-batch``'s default chunk."""


def _image_column(images: np.ndarray) -> pa.Array:
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), PIXELS)
    return pa.FixedSizeBinaryArray.from_buffers(
        IMAGE_TYPE, len(flat), [None, pa.py_buffer(flat.tobytes())]
    )


def _images(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """``uint8 (n, 28, 28)`` from a column of 784-byte values."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.type != IMAGE_TYPE:
        if column.null_count or not pc.all(pc.equal(pc.binary_length(column), PIXELS)).as_py():
            raise ValueError(f"every image must be {PIXELS} bytes (28 x 28 pixels)")
        column = pa.array(column.to_pylist(), type=IMAGE_TYPE)
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    start = column.offset * PIXELS
    return data[start : start + len(column) * PIXELS].reshape(len(column), *IMAGE_SHAPE)


def _read_range(path: str, lo: int, hi: int, offset: int) -> Iterator[pa.Table]:
    source = open_source(path)
    for chunk in source.chunks(lo, BATCH_SIZE):
        stop = min(chunk.stop, hi)
        images = chunk.images[: stop - chunk.start]
        index = np.arange(offset + chunk.start, offset + stop, dtype=np.int64)
        yield pa.table({"index": index, "image": _image_column(images)})
        if stop >= hi:
            return


def _open_array_file(path: Path) -> ArraySource:
    source = open_source(path)
    if not isinstance(source, ArraySource) or source.has_labels:
        raise DataFileError(path, "the pipeline reads .npy, raw IDX or Parquet files")
    return source


def indexed_files(paths: list[Path], ray: Any, rows_per_read: int = ROWS_PER_READ) -> Any:
    """A Ray dataset of ``index``, ``image`` over ``.npy``/raw IDX files, in the given order."""
    counts = [_open_array_file(p).count for p in paths]

    class IndexedImages(ray.data.Datasource):  # type: ignore[misc]
        def estimate_inmemory_data_size(self) -> int:
            return sum(counts) * (PIXELS + 8)

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            tasks, offset = [], 0
            for path, count in zip(paths, counts, strict=True):
                for lo in range(0, count, rows_per_read):
                    hi = min(count, lo + rows_per_read)
                    meta = ray.data.block.BlockMetadata(
                        num_rows=hi - lo,
                        size_bytes=(hi - lo) * (PIXELS + 8),
                        exec_stats=None,
                        input_files=[str(path)],
                    )
                    read = functools.partial(_read_range, str(path.resolve()), lo, hi, offset)
                    tasks.append(ray.data.ReadTask(read, meta))
                offset += count
            return tasks

    return ray.data.read_datasource(IndexedImages())


class BatchScorer(ScoringActor):
    """A Ray Data map actor: a table of ``index``, ``image`` in, scores out."""

    def __call__(self, table: pa.Table) -> pa.Table:
        probabilities, labels, version = self.predict(_images(table["image"]))
        columns: dict[str, Any] = {
            "index": table["index"],
            "label": labels,
            "confidence": probabilities[np.arange(len(labels)), labels],
        }
        columns.update({name: probabilities[:, d] for d, name in enumerate(PROBABILITY_COLUMNS)})
        columns["model_version"] = np.full(len(labels), version, dtype=np.int64)
        return pa.table(columns)


def score_dataset(
    inputs: list[Path],
    output: Path,
    model_dir: Path,
    cluster: RayCluster,
    *,
    actors: int | None = None,
    actor_cpus: int = 1,
    batch_size: int = BATCH_SIZE,
    rows_per_read: int = ROWS_PER_READ,
) -> int:
    """Score ``inputs`` into Parquet files under ``output``; returns the rows written."""
    info = resolve_model(model_dir)
    ray = cluster.connect()
    parquet = [p for p in inputs if p.is_dir() or p.suffix.lower() == ".parquet"]
    if parquet and len(parquet) != len(inputs):
        raise DataFileError(parquet[0], "Parquet inputs cannot be mixed with other files")
    if parquet:
        dataset = ray.data.read_parquet([str(p) for p in parquet]).select_columns(
            ["index", "image"]
        )
    else:
        dataset = indexed_files(inputs, ray, rows_per_read)
    count = actors or max(1, int(cluster.cpus() // actor_cpus) - 1)
    scored = dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs={"version_dir": str(info.path.resolve()), "threads": actor_cpus},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=count),
        num_cpus=actor_cpus,
    )
    scored.write_parquet(str(output))
    written: int = ray.data.read_parquet(str(output)).count()
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m batch.ray_data", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", type=Path, nargs="+", help=".npy, raw IDX or Parquet inputs")
    parser.add_argument("-o", "--output", type=Path, required=True, help="a new directory")
    parser.add_argument("--model", type=Path, required=True, help="model root or version")
    parser.add_argument("--ray-address", help="join this cluster; default: a local one")
    parser.add_argument("--actors", type=int, help="scoring actors (default: CPUs - 1)")
    parser.add_argument("--actor-cpus", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.output.exists() and any(args.output.iterdir()):
        print(f"ray_data: {args.output} is not empty; write to a new directory", file=sys.stderr)
        return 2
    # Ray Data reports every operator's progress at INFO; the result is the line below.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    cluster = RayCluster(args.ray_address)
    try:
        rows = score_dataset(
            args.inputs,
            args.output,
            args.model,
            cluster,
            actors=args.actors,
            actor_cpus=args.actor_cpus,
            batch_size=args.batch_size,
        )
    except MnistError as exc:
        print(f"ray_data: error: {exc}", file=sys.stderr)
        return 2
    finally:
        cluster.close()
    print(f"wrote {rows} rows to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
