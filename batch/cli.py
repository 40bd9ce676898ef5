"""Score a file of digits through the MNIST service (or in process) into CSV or JSON Lines."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnist_core.errors import DataFileError, MnistError
from mnist_core.rows import FORMATS, Format, header
from mnist_core.sources import ImageSource, open_source, read_labels

from .client import RetryPolicy, ServiceClient
from .journal import Journal, ResumeError
from .report import summary
from .runner import Job, JobStats
from .scores import Scorer

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
JSONL_SUFFIXES = (".jsonl", ".ndjson")
LOCAL_PIPELINE = 2
"""Chunks in flight with --local: one in the model while the next is read."""
MAX_IMAGE_PIXELS = 16_000_000
"""Largest image file decoded by ``--local`` (width x height), as the service's default."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-batch",
        description=__doc__,
        epilog="Interrupted jobs resume: run the same command again. Exit status: 0 done, "
        "1 scoring failed, 2 bad input or options, 130 interrupted.",
    )
    parser.add_argument(
        "input", type=Path, help="IDX images (.gz or raw), .npy, .npz, .csv or a directory"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--url", default="http://127.0.0.1:3000", help="the service (default: %(default)s)"
    )
    where.add_argument(
        "--local", type=Path, metavar="MODEL_DIR", help="score in process with this SavedModel"
    )
    pin = parser.add_mutually_exclusive_group()
    pin.add_argument(
        "--model-version",
        type=int,
        metavar="N",
        help="score with model version N only (with --local: <MODEL_DIR>/N); a rollout "
        "during the job does not change it",
    )
    pin.add_argument(
        "--label", help="score with the version the service's label names (e.g. canary)"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=1000, help="images per request (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)"
    )
    parser.add_argument("--labels", type=Path, help="true labels (IDX or .npy) for accuracy")
    parser.add_argument(
        "--format", choices=FORMATS, help="csv or jsonl (default: from the output name, else csv)"
    )
    parser.add_argument(
        "--transport",
        choices=("auto", "npy", "json"),
        default="auto",
        help="request body: binary .npy, JSON, or .npy falling back to JSON (default)",
    )
    parser.add_argument(
        "--retries", type=int, default=10, help="retries per chunk (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)"
    )
    parser.add_argument(
        "--restart", action="store_true", help="discard an unfinished output and start over"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _image_decoder() -> Callable[[bytes, int], np.ndarray]:
    from mnist_core.images import to_mnist

    def decode(data: bytes, index: int) -> np.ndarray:
        image: np.ndarray = to_mnist(data, max_pixels=MAX_IMAGE_PIXELS, index=index)
        return image

    return decode


def _output_format(args: argparse.Namespace) -> Format:
    if args.format:
        fmt: Format = args.format
        return fmt
    return "jsonl" if args.output.suffix.lower() in JSONL_SUFFIXES else "csv"


def _scorer(args: argparse.Namespace) -> Scorer:
    if args.local is not None:
        from .local import LocalModel

        where = args.local / str(args.model_version) if args.model_version else args.local
        return LocalModel(where)
    return ServiceClient(
        args.url,
        transport=args.transport,
        timeout_s=args.timeout,
        concurrency=args.concurrency,
        policy=RetryPolicy(retries=args.retries),
        model_version=args.model_version,
        label=args.label,
    )


async def _run(job: Job) -> JobStats:
    try:
        return await job.run()
    finally:
        await job.scorer.aclose()


def _open(args: argparse.Namespace, fmt: Format) -> tuple[ImageSource, np.ndarray | None, Journal]:
    """The input, its labels and the (possibly resumed) output; raises on bad input."""
    source = open_source(
        args.input, decode_image=_image_decoder() if args.local is not None else None
    )
    labels = read_labels(args.labels, source.count) if args.labels else None
    job_id = {
        "input": source.fingerprint(),
        "format": fmt,
        "labels": str(args.labels.resolve()) if args.labels else None,
    }
    journal = Journal(args.output, job_id, header(fmt, source.key), restart=args.restart)
    if journal.resumed_from:
        print(
            f"mnist-batch: resuming {journal.partial} at row {journal.resumed_from} "
            f"of {source.count}",
            file=sys.stderr,
        )
    return source, labels, journal


def _error(message: object) -> None:
    print(f"mnist-batch: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.chunk_size < 1 or args.concurrency < 1 or args.retries < 0 or args.timeout <= 0:
        parser.error("--chunk-size and --concurrency must be >= 1, --retries >= 0, --timeout > 0")
    if args.model_version is not None and args.model_version < 1:
        parser.error("--model-version must be a positive integer")
    if args.label is not None and args.local is not None:
        parser.error("--label names a version of the service; with --local use --model-version")
    if not args.output.parent.is_dir():
        parser.error(f"the output directory {args.output.parent} does not exist")
    fmt = _output_format(args)
    try:
        source, labels, journal = _open(args, fmt)
    except (DataFileError, ResumeError) as exc:
        _error(exc)
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc}")
        return EXIT_USAGE
    try:
        scorer = _scorer(args)
    except MnistError as exc:
        journal.close_empty()
        _error(exc)
        return EXIT_USAGE
    job = Job(
        source,
        scorer,
        journal,
        fmt=fmt,
        chunk_size=args.chunk_size,
        concurrency=LOCAL_PIPELINE if args.local is not None else args.concurrency,
        labels=labels,
        show_progress=not args.quiet,
    )
    saved = f"{{rows}} of {source.count} rows are saved in {journal.partial}"
    status = EXIT_OK
    try:
        asyncio.run(_run(job))
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        print(
            f"mnist-batch: interrupted; {saved.format(rows=journal.progress.rows)}: "
            "run the same command again to continue",
            file=sys.stderr,
        )
    except DataFileError as exc:
        status = EXIT_USAGE
        _error(exc)
    except (MnistError, OSError) as exc:
        status = EXIT_FAILED
        _error(exc)
        print(
            f"mnist-batch: {saved.format(rows=journal.progress.rows)}; "
            "the same command continues from there",
            file=sys.stderr,
        )
    finally:
        journal.close()
    print(summary(job.stats), file=sys.stdout if status == EXIT_OK else sys.stderr)
    if status == EXIT_OK:
        print(f"wrote {args.output}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
