"""Exact (flat) inner-product search over L2-normalised vectors.

Vectors stay in their segments' memory-mapped ``dense.npy`` files; a search multiplies the query block
with each segment in row chunks (BLAS sgemm through numpy), masks dead or filtered rows with ``-inf``,
and keeps a running top-k with ``argpartition``. This is what faiss ``IndexFlatIP`` does; doing it here
keeps tombstones and filter masks in the same pass without copying vectors into another library.
"""

from __future__ import annotations

import numpy as np

from retrievo.indexes._topk import topk_rows

__all__ = ["FlatIndex"]

_CHUNK_ROWS = 65536


class FlatIndex:
    """Exact search over one or more row blocks that together number rows ``0..n-1``.

    Args:
        blocks: ``(offset, matrix)`` pairs; ``matrix`` is ``(rows, dim)`` float32 (may be memory-mapped).
        live: boolean mask over all rows; dead rows are never returned.
    """

    def __init__(self, blocks: list[tuple[int, np.ndarray]], live: np.ndarray) -> None:
        self.blocks = blocks
        self.live = np.asarray(live, dtype=bool)
        self.dim = int(blocks[0][1].shape[1]) if blocks else 0

    @property
    def nbytes(self) -> int:
        return sum(int(m.nbytes) for _, m in self.blocks)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k rows by inner product for each query row.

        Returns:
            ``(rows, scores, counts)`` with padding ``-1`` / ``-inf`` where fewer than k rows qualify.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        nq = q.shape[0]
        mask = self.live if allowed is None else (self.live & np.asarray(allowed, dtype=bool))
        best_idx = np.full((nq, 0), -1, dtype=np.int64)
        best_scores = np.full((nq, 0), -np.inf, dtype=np.float32)
        for offset, mat in self.blocks:
            n = mat.shape[0]
            for start in range(0, n, _CHUNK_ROWS):
                stop = min(n, start + _CHUNK_ROWS)
                m = mask[offset + start : offset + stop]
                if not m.any():
                    continue
                if m.all():
                    sub = np.asarray(mat[start:stop])
                    rows = None
                else:
                    rows = np.flatnonzero(m)
                    sub = np.asarray(mat[start:stop])[rows]
                scores = q @ sub.T
                idx, sc = topk_rows(scores, k)
                glob = (offset + start + (idx if rows is None else rows[idx])).astype(np.int64)
                best_idx = np.concatenate([best_idx, glob], axis=1)
                best_scores = np.concatenate([best_scores, sc.astype(np.float32)], axis=1)
                if best_idx.shape[1] > k:
                    sel, sc2 = topk_rows(best_scores, k)
                    best_idx = np.take_along_axis(best_idx, sel, axis=1)
                    best_scores = sc2
        counts = np.full(nq, min(k, best_idx.shape[1]), dtype=np.int64)
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        w = best_idx.shape[1]
        if w:
            order, _ = topk_rows(best_scores, k)
            out_idx[:, :w] = np.take_along_axis(best_idx, order, axis=1)
            out_scores[:, :w] = np.take_along_axis(best_scores, order, axis=1)
        return out_idx, out_scores, counts
