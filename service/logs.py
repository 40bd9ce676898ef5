"""The service's own log lines: one logger (``mnist``), one line per event, on stderr.

Set up once per worker process, before anything logs. BentoML configures its own
loggers; ours is kept apart so its lines stay ours and never repeat through the root.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "mnist"
FORMAT = "%(asctime)s %(levelname)s mnist: %(message)s"


def configure(level: int = logging.INFO) -> None:
    logger = logging.getLogger(LOGGER)
    if any(getattr(h, "mnist_handler", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.mnist_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
