"""Score a file of digits through the MNIST service (or in process) into CSV or JSON Lines."""

from __future__ import annotations

import argparse
import asyncio
import signal
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
DEFAULT_URL = "http://127.0.0.1:3000"
ENGINES = ("service", "local", "ray")
SERVICE_CONCURRENCY = 4
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
    where.add_argument("--url", help=f"the service (default: {DEFAULT_URL})")
    where.add_argument(
        "--local",
        type=Path,
        metavar="MODEL_DIR",
        help="score with this SavedModel (a version or a model root's highest version): "
        "in this process, or on Ray actors with --engine ray",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="where chunks are scored: 'service' (--url; the default), 'local' (in this "
        "process; the default with --local) or 'ray' (a pool of Ray actors, each loading "
        "--local MODEL_DIR)",
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
        "--concurrency",
        type=int,
        help=f"chunks in flight (default: {SERVICE_CONCURRENCY} requests to the service, "
        "2 per Ray actor)",
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
    ray = parser.add_argument_group("Ray (--engine ray)")
    ray.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="join this cluster ('auto', HOST:PORT or ray://HOST:PORT); "
        "default: start a local one for the job",
    )
    ray.add_argument(
        "--actors", type=int, help="scoring actors (default: the cluster's CPUs / --actor-cpus)"
    )
    ray.add_argument(
        "--actor-cpus",
        type=int,
        default=1,
        help="CPUs, and so TensorFlow threads, per actor (default: %(default)s)",
    )
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


def _engine(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The engine the flags ask for; ``parser.error`` on a combination that makes no sense."""
    engine: str = args.engine or ("local" if args.local is not None else "service")
    if engine == "service" and args.local is not None:
        parser.error("--local MODEL_DIR scores with --engine local or ray, not the service")
    if engine != "service" and args.local is None:
        parser.error(f"--engine {engine} needs --local MODEL_DIR, the model to score with")
    if engine != "ray" and (args.ray_address is not None or args.actors is not None):
        parser.error("--ray-address and --actors apply to --engine ray")
    if (args.actors is not None and args.actors < 1) or args.actor_cpus < 1:
        parser.error("--actors and --actor-cpus must be >= 1")
    return engine


def _model_dir(args: argparse.Namespace) -> Path:
    """``--local``, or its version ``--model-version`` when one is pinned."""
    model_dir: Path = args.local
    return model_dir / str(args.model_version) if args.model_version else model_dir


def _scorer(args: argparse.Namespace, engine: str) -> tuple[Scorer, int]:
    """The scorer and how many chunks to keep in flight for it."""
    if engine == "local":
        from .local import LocalModel

        return LocalModel(_model_dir(args)), LOCAL_PIPELINE
    policy = RetryPolicy(retries=args.retries)
    if engine == "ray":
        from .ray_cluster import RayCluster
        from .ray_pool import RayPool

        # A cluster started for the job holds what the actors ask for, else every core.
        cpus = args.actors * args.actor_cpus if args.actors is not None else None
        pool = RayPool(
            _model_dir(args),
            RayCluster(args.ray_address, num_cpus=cpus),
            actors=args.actors,
            actor_cpus=args.actor_cpus,
            policy=policy,
        )
        return pool, args.concurrency or pool.default_concurrency
    client = ServiceClient(
        args.url or DEFAULT_URL,
        transport=args.transport,
        timeout_s=args.timeout,
        concurrency=args.concurrency or SERVICE_CONCURRENCY,
        policy=policy,
        model_version=args.model_version,
        label=args.label,
    )
    return client, args.concurrency or SERVICE_CONCURRENCY


async def _run(job: Job) -> JobStats:
    loop, main = asyncio.get_running_loop(), asyncio.current_task()

    def interrupt() -> None:
        job.interrupted = True
        if main is not None:
            main.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
        handled = True
    except (ValueError, RuntimeError):  # not the main thread: Ctrl-C is its caller's
        handled = False
    try:
        return await job.run()
    except asyncio.CancelledError:
        if job.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        await job.scorer.aclose()


def _open(
    args: argparse.Namespace, fmt: Format, engine: str
) -> tuple[ImageSource, np.ndarray | None, Journal]:
    """The input, its labels and the (possibly resumed) output; raises on bad input."""
    # Image files go to the service as they are; the other engines decode them here.
    decode = _image_decoder() if engine != "service" else None
    source = open_source(args.input, decode_image=decode)
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
    concurrency_ok = args.concurrency is None or args.concurrency >= 1
    if args.chunk_size < 1 or not concurrency_ok or args.retries < 0 or args.timeout <= 0:
        parser.error("--chunk-size and --concurrency must be >= 1, --retries >= 0, --timeout > 0")
    if args.model_version is not None and args.model_version < 1:
        parser.error("--model-version must be a positive integer")
    engine = _engine(parser, args)
    if args.label is not None and engine != "service":
        parser.error("--label names a version of the service; with --local use --model-version")
    if not args.output.parent.is_dir():
        parser.error(f"the output directory {args.output.parent} does not exist")
    fmt = _output_format(args)
    try:
        source, labels, journal = _open(args, fmt, engine)
    except (DataFileError, ResumeError) as exc:
        _error(exc)
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc}")
        return EXIT_USAGE
    try:
        scorer, concurrency = _scorer(args, engine)
    except MnistError as exc:
        journal.close_empty()
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        journal.close_empty()
        return EXIT_INTERRUPTED
    job = Job(
        source,
        scorer,
        journal,
        fmt=fmt,
        chunk_size=args.chunk_size,
        concurrency=concurrency,
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
