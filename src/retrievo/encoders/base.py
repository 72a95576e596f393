"""The encoder interface: text in, vectors out."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["THREADS_ENV", "Encoder", "default_threads"]

#: threads an encoder uses when none are given (``retrievo serve --workers N`` divides the cores)
THREADS_ENV = "RETRIEVO_ENCODER_THREADS"


def default_threads() -> int:
    """The encoders' default thread count: ``$RETRIEVO_ENCODER_THREADS``, else every core."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV) or 0) or os.cpu_count() or 1)
    except ValueError:
        return os.cpu_count() or 1


@runtime_checkable
class Encoder(Protocol):
    """A text encoder. Implementations return float32 arrays shaped ``(len(texts), dim)``."""

    dim: int
    fingerprint: str

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray: ...
