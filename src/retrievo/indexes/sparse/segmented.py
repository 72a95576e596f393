"""Sparse search over a collection's immutable segments, each with its own index, merged into one top-k."""

from __future__ import annotations

import numpy as np

from retrievo.indexes._topk import select_topk
from retrievo.indexes.sparse.index import SparseIndex
from retrievo.indexes.sparse.params import as_csr

__all__ = ["SegmentedSparseIndex"]


class SegmentedSparseIndex:
    """Sparse search over immutable segments, each with its own :class:`SparseIndex`, merged into one top-k.

    Each segment's index is built once over all of its rows (so a commit builds only the new segment's)
    and kept beside it; rows deleted later are masked at search time through ``live``.

    Args:
        parts: ``(offset, index)`` per segment, in row order; index rows are ``offset .. offset + n_rows``.
        live: boolean mask over all rows; dead rows are never returned.
    """

    def __init__(self, parts: list[tuple[int, SparseIndex]], live: np.ndarray) -> None:
        self.parts = parts
        self.live = np.asarray(live, dtype=bool)
        self.n_rows = len(self.live)
        self.vocab_size = parts[0][1].vocab_size if parts else 0
        self.has_exact = all(ix.has_exact for _, ix in parts)
        self.params = parts[0][1].params if parts else None

    @property
    def nbytes(self) -> int:
        return sum(ix.nbytes for _, ix in self.parts)

    def search(self, queries, k: int, allowed: np.ndarray | None = None, mode: str = "exact",
               threads: int | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`SparseIndex.search`, over every segment; ties across segments go to the lower row."""
        q = as_csr(queries, "queries", self.vocab_size if self.parts else None)
        k = max(int(k), 1)
        nq = q.shape[0]
        mask = self.live if allowed is None else self.live & np.asarray(allowed, dtype=bool)
        rows_l, scores_l = [], []
        for offset, ix in self.parts:
            seg = mask[offset : offset + ix.n_rows]
            if not seg.any():
                continue
            r, sc, _ = ix.search(q, k, None if seg.all() else seg, mode, threads, **kwargs)
            rows_l.append(np.where(r >= 0, r + offset, -1))
            scores_l.append(sc)
        if not rows_l:
            return (np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf, np.float32), np.zeros(nq, np.int64))
        if len(rows_l) == 1:
            return rows_l[0], scores_l[0], (rows_l[0] >= 0).sum(axis=1).astype(np.int64)
        return select_topk(np.concatenate(rows_l, axis=1), np.concatenate(scores_l, axis=1), k)
