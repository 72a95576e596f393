"""The encoder interface: text in, vectors out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder"]


@runtime_checkable
class Encoder(Protocol):
    """A text encoder. Implementations return float32 arrays shaped ``(len(texts), dim)``."""

    dim: int
    fingerprint: str

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray: ...
