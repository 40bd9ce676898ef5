"""The service's own log lines: one logger (``mnist``), one line per event, on stderr.

``MNIST_LOG_FORMAT=json`` makes each line a JSON object (``time``, ``level``,
``message`` and, for requests, ``request_id``, ``method``, ``path``, ``status``,
``reason``, ``duration_ms``) for log collectors; the default is plain text. Set up once
per worker process, before anything logs. BentoML configures its own loggers; ours is
kept apart so its lines stay ours and never repeat through the root logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

LOGGER = "mnist"
TEXT_FORMAT = "%(asctime)s %(levelname)s mnist: %(message)s"
FIELDS = ("request_id", "method", "path", "status", "reason", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "mnist_handler", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.mnist_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
