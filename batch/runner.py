"""Running a job: chunks scored concurrently, committed strictly in input order.

At most ``concurrency`` chunks are in flight or waiting to be written, so memory stays
bounded however large the input. A chunk is committed (written and recorded) only when
every chunk before it is, so the partial output is always a prefix of the final one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from mnist_core.errors import MnistError
from mnist_core.rows import Format, format_rows
from mnist_core.sources import Chunk, ImageSource

from .journal import Journal
from .scores import Scorer, Scores


class ModelChanged(MnistError):
    """The service started answering with another model version in the middle of a job."""


@dataclass
class JobStats:
    """What the final summary reports."""

    total: int
    resumed_from: int
    scored: int = 0
    retries: int = 0
    failures: int = 0
    seconds: float = 0.0
    model_version: int | None = None
    confusion: np.ndarray | None = field(default=None, repr=False)

    @property
    def images_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


class Job:
    """One scoring job of ``source`` into ``journal``'s output."""

    def __init__(
        self,
        source: ImageSource,
        scorer: Scorer,
        journal: Journal,
        *,
        fmt: Format,
        chunk_size: int,
        concurrency: int,
        labels: np.ndarray | None = None,
        show_progress: bool = True,
    ) -> None:
        self.source = source
        self.scorer = scorer
        self.journal = journal
        self.fmt: Format = fmt
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.labels = labels
        self.show_progress = show_progress
        # Set by the command's SIGINT handler, checked before each chunk: cancelling the
        # task alone is not enough, the HTTP client can absorb a cancellation.
        self.interrupted = False
        progress = journal.progress
        self.stats = JobStats(
            total=source.count, resumed_from=progress.rows, model_version=progress.model_version
        )
        if labels is not None or source.has_labels:
            saved = progress.confusion
            self.stats.confusion = (
                np.array(saved, dtype=np.int64) if saved else np.zeros((10, 10), dtype=np.int64)
            )

    def _commit(self, chunk: Chunk, scores: Scores) -> None:
        progress = self.journal.progress
        if progress.model_version is None:
            progress.model_version = scores.model_version
        elif scores.model_version != progress.model_version:
            raise ModelChanged(
                f"rows before {chunk.start} were scored by model version "
                f"{progress.model_version}, but rows {chunk.start}..{chunk.stop - 1} by version "
                f"{scores.model_version}; rerun with --restart to score everything with one model"
                " (and --model-version N to pin the job to one version)"
            )
        truth = self.labels[chunk.start : chunk.stop] if self.labels is not None else chunk.labels
        if self.stats.confusion is not None and truth is not None:
            np.add.at(self.stats.confusion, (truth, scores.labels), 1)
            progress.confusion = self.stats.confusion.tolist()
        keys: Sequence[int] | Sequence[str] = (
            chunk.names if chunk.names is not None else range(chunk.start, chunk.stop)
        )
        text = format_rows(
            self.fmt,
            keys,
            scores.labels,
            scores.probabilities,
            scores.model_version,
            key=self.source.key,
        )
        self.journal.commit(text, len(chunk))
        self.stats.model_version = scores.model_version
        self.stats.scored += len(chunk)

    async def run(self) -> JobStats:
        """Score every remaining row and publish the output; raises on the first failure."""
        started = time.perf_counter()
        chunks: Iterator[Chunk] = self.source.chunks(self.stats.resumed_from, self.chunk_size)
        pending: deque[tuple[Chunk, asyncio.Task[Scores]]] = deque()
        bar = tqdm(
            total=self.stats.total,
            initial=self.stats.resumed_from,
            unit="img",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not self.show_progress,
        )
        try:
            exhausted = False
            while True:
                if self.interrupted:
                    raise KeyboardInterrupt
                while not exhausted and len(pending) < self.concurrency:
                    # Reading (decompressing, parsing CSV, decoding images) overlaps scoring.
                    chunk = await asyncio.to_thread(next, chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.append((chunk, asyncio.create_task(self.scorer.score(chunk))))
                if not pending:
                    break
                chunk, task = pending.popleft()
                # Formatting and fsyncing off the event loop keeps other responses flowing.
                await asyncio.to_thread(self._commit, chunk, await task)
                bar.update(len(chunk))
            self.journal.finish()
        except Exception:
            self.stats.failures += 1
            raise
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
            bar.close()
            self.stats.retries = self.scorer.retries
            self.stats.seconds = time.perf_counter() - started
        return self.stats
