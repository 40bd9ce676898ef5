"""The crash-safe output: commits, resuming after a crash, refusing a different job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from batch.journal import Journal, ResumeError, partial_path, record_path
from mnist_core.rows import columns, format_rows, header

JOB = {"input": {"path": "/data/x.npy", "size": 10}, "format": "csv"}
HEADER = header("csv")


def rows(start: int, stop: int) -> str:
    probabilities = np.full((stop - start, 10), 0.1, dtype=np.float32)
    labels = np.arange(start, stop) % 10
    return format_rows("csv", range(start, stop), labels, probabilities, 1)


def test_rows_are_committed_to_the_partial_file_and_published_at_the_end(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    journal = Journal(output, JOB, HEADER, restart=False)
    journal.commit(rows(0, 3), 3)
    assert not output.exists()
    assert partial_path(output).read_text() == HEADER + rows(0, 3)
    record = json.loads(record_path(output).read_text())
    assert (record["rows"], record["bytes"]) == (3, len(HEADER + rows(0, 3)))
    journal.commit(rows(3, 5), 2)
    journal.finish()
    assert output.read_text() == HEADER + rows(0, 5)
    assert not partial_path(output).exists()
    assert not record_path(output).exists()


def test_resume_drops_bytes_written_after_the_last_record(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    first = Journal(output, JOB, HEADER, restart=False)
    first.commit(rows(0, 3), 3)
    first.close()
    # A crash between writing a chunk and recording it leaves uncounted bytes behind.
    with partial_path(output).open("a") as handle:
        handle.write(rows(3, 4) + "5,half a ro")
    second = Journal(output, JOB, HEADER, restart=False)
    assert second.resumed_from == 3
    second.commit(rows(3, 6), 3)
    second.finish()
    assert output.read_text() == HEADER + rows(0, 6)


def test_a_different_job_is_refused_unless_restarted(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    first = Journal(output, JOB, HEADER, restart=False)
    first.commit(rows(0, 2), 2)
    first.close()
    other = {**JOB, "format": "jsonl"}
    with pytest.raises(ResumeError, match=r"different format.*--restart"):
        Journal(output, other, "", restart=False)
    fresh = Journal(output, other, "", restart=True)
    assert fresh.resumed_from == 0
    assert partial_path(output).read_text() == ""
    fresh.close()


def test_two_runs_cannot_write_the_same_output(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    first = Journal(output, JOB, HEADER, restart=False)
    with pytest.raises(ResumeError, match="another job is writing"):
        Journal(output, JOB, HEADER, restart=False)
    first.close()


def test_a_partial_file_without_a_record_is_started_over(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    partial_path(output).write_text("stale")
    journal = Journal(output, JOB, HEADER, restart=False)
    assert journal.resumed_from == 0
    journal.finish()
    assert output.read_text() == HEADER


def test_output_formats_are_fixed_text() -> None:
    probabilities = np.array([[0.5, 0.25, 0.125, 0.0625, 0.0625, 0, 0, 0, 0, 1e-9]], np.float32)
    csv = format_rows("csv", ["a,b.png"], np.array([0]), probabilities, 3, key="file")
    assert header("csv", "file").rstrip("\n").split(",") == list(columns("file"))
    assert csv == (
        '"a,b.png",0,0.50000000,0.50000000,0.25000000,0.12500000,0.06250000,0.06250000,'
        "0.00000000,0.00000000,0.00000000,0.00000000,0.00000000,3\n"
    )
    line = json.loads(format_rows("jsonl", [7], np.array([1]), probabilities, 3))
    assert line == {
        "index": 7,
        "label": 1,
        "confidence": 0.25,
        "probabilities": [0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0],
        "model_version": 3,
    }
    with pytest.raises(ValueError, match="disagree"):
        format_rows("csv", [1, 2], np.array([0]), probabilities, 3)


def test_an_output_that_never_got_a_row_leaves_nothing_behind(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    Journal(output, JOB, HEADER, restart=False).close_empty()
    assert list(tmp_path.iterdir()) == []
    journal = Journal(output, JOB, HEADER, restart=False)
    journal.commit(rows(0, 1), 1)
    journal.close_empty()
    assert partial_path(output).exists()  # a committed row is kept for resuming
