"""Keeping TensorFlow's C++ start-up chatter off the terminal.

Importing TensorFlow and initialising its devices writes lines such as
``I0000 00:00:... cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...`` and,
on a machine without a GPU, ``E0000 ... failed call to cuInit: CUDA error``. Most are
written before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so no setting hides them: the
only way is to catch what the process writes to file descriptor 2 meanwhile.
:func:`native_stderr_filtered` does that and passes every other line through.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

VERBOSE_ENV = "MNIST_TF_LOG"
"""Set to 1 (or true) to see TensorFlow's C++ log lines again."""

# absl's line format (severity, date, time, thread, file:line]) and the notes around it.
_NOISE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w.\-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: )"
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Drop TensorFlow's C++ log lines written to fd 2 in the block; keep everything else."""
    if verbose():
        yield
        return
    # What TensorFlow logs later: its ERROR lines too (spurious ones, such as a NodeDef
    # attribute unknown to this build, appear on every training run; failures still raise).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured if not _NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def start_tensorflow() -> Any:
    """``import tensorflow`` and discover its devices, with the C++ chatter filtered out.

    Device discovery is where a machine without a GPU logs ``failed call to cuInit``;
    it is done here, once, so it happens inside the filter.
    """
    with native_stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf
