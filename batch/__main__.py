"""``python -m batch``: the same as ``mnist-batch``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
