"""Where retrievo keeps caches: ``$RETRIEVO_CACHE_DIR`` or ``~/.cache/retrievo``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    return Path(os.environ.get("RETRIEVO_CACHE_DIR") or Path.home() / ".cache" / "retrievo")
