"""Compressed dense indexes with rescoring: scalar int8 and binary (sign bits), bi-granular layout.

RAM holds only compact codes; a search takes ``rescore_multiplier × k`` candidates from the codes and
re-ranks them with the float32 vectors, which stay in the segments' memory-mapped ``dense.npy`` files on
disk (the bi-granular design of BiDR, Xiao et al., "Distill-VQ"/"Bi-Granular Document Representation",
WWW 2022; rescoring as in sentence-transformers' ``quantization.py``).

- :class:`Int8Index`: per-dimension affine scalar quantisation to int8, calibrated on the indexed vectors
  (min/max of each dimension), scored asymmetrically (float query against decoded codes) — 1/4 of float32.
- :class:`BinaryIndex`: one sign bit per dimension (binary embedding-based retrieval, Tencent BEBR,
  Gan et al., KDD 2023), scored by Hamming distance between the query's and the document's bits with a
  compiled popcount kernel — 1/32 of float32.

Why by hand: faiss offers the same codes (IndexScalarQuantizer, IndexBinaryFlat) but cannot take our
tombstone and filter masks inside the scan nor rescore from our memory-mapped segments; the scan, the
masks and the top-k heaps are shared with :class:`~retrievo.indexes.flat.FlatIndex`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from retrievo.indexes.flat import FlatIndex

__all__ = ["BinaryIndex", "Int8Index", "RescoringIndex", "pack_signs"]


def pack_signs(x: np.ndarray) -> np.ndarray:
    """Sign bits of each row packed into uint64 words, ``(n, ceil(dim / 64))``."""
    bits = np.packbits(np.asarray(x) > 0, axis=1)
    pad = (-bits.shape[1]) % 8
    if pad:
        bits = np.pad(bits, ((0, 0), (0, pad)))
    return np.ascontiguousarray(bits).view(np.uint64)


@nb.njit(nogil=True, cache=True)
def _popcount64(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@nb.njit(nogil=True, cache=True)
def _neg_hamming(q, codes):  # pragma: no cover - compiled
    out = np.empty((q.shape[0], codes.shape[0]), dtype=np.float32)
    for i in range(q.shape[0]):
        for j in range(codes.shape[0]):
            d = 0
            for w in range(q.shape[1]):
                d += _popcount64(q[i, w] ^ codes[j, w])
            out[i, j] = -np.float32(d)
    return out


class Int8Index(FlatIndex):
    """Scalar-quantised vectors: ``x ≈ offset + scale · code`` per dimension, codes in int8.

    The constant term ``q · offset`` is folded into the product by a trailing code column of ones.
    """

    def __init__(self, blocks: list[tuple[int, np.ndarray]], live: np.ndarray) -> None:
        live = np.asarray(live, dtype=bool)
        dim = int(blocks[0][1].shape[1]) if blocks else 0
        lo = np.full(dim, np.inf, dtype=np.float32)
        hi = np.full(dim, -np.inf, dtype=np.float32)
        for offset, mat in blocks:
            rows = np.asarray(mat)[live[offset : offset + mat.shape[0]]]
            if len(rows):
                lo = np.minimum(lo, rows.min(axis=0))
                hi = np.maximum(hi, rows.max(axis=0))
        lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float32)
        hi = np.where(np.isfinite(hi), hi, 0.0).astype(np.float32)
        self.scale = np.maximum((hi - lo) / 254.0, 1e-12).astype(np.float32)
        self.offset = ((hi + lo) / 2).astype(np.float32)
        coded = []
        for offset, mat in blocks:
            codes = np.clip(np.rint((np.asarray(mat) - self.offset) / self.scale), -127, 127).astype(np.int8)
            coded.append((offset, np.hstack([codes, np.ones((len(codes), 1), dtype=np.int8)])))
        super().__init__(coded, live)
        self.dim = dim

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        bias = queries @ self.offset
        return np.hstack([queries * self.scale, bias[:, None]]).astype(np.float32)

    def _block_scores(self, qb: np.ndarray, mat: np.ndarray, start: int, stop: int) -> np.ndarray:
        return qb @ np.asarray(mat[start:stop], dtype=np.float32).T


class BinaryIndex(FlatIndex):
    """Sign bits of each vector, searched by Hamming distance (score = −distance)."""

    def __init__(self, blocks: list[tuple[int, np.ndarray]], live: np.ndarray) -> None:
        dim = int(blocks[0][1].shape[1]) if blocks else 0
        super().__init__([(offset, pack_signs(mat)) for offset, mat in blocks], live)
        self.dim = dim

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        return pack_signs(queries)

    def _block_scores(self, qb: np.ndarray, mat: np.ndarray, start: int, stop: int) -> np.ndarray:
        return _neg_hamming(qb, np.ascontiguousarray(mat[start:stop]))


class RescoringIndex:
    """Candidates from a compressed index, re-ranked with the float32 vectors (memory-mapped).

    Args:
        coarse: the compressed index (RAM).
        full: the exact index over the float vectors (disk, memory-mapped); only candidate rows are read.
        rescore_multiplier: candidates fetched per wanted result.
    """

    def __init__(self, coarse: FlatIndex, full: FlatIndex, rescore_multiplier: int = 4) -> None:
        self.coarse = coarse
        self.full = full
        self.rescore_multiplier = int(rescore_multiplier)
        self.dim = full.dim

    @property
    def nbytes(self) -> int:
        """Bytes held in RAM (the codes); the float vectors stay on disk."""
        return self.coarse.nbytes

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(int(k), 1)
        cand, _, counts = self.coarse.search(q, k * self.rescore_multiplier, allowed, threads)
        nq = q.shape[0]
        valid = cand >= 0
        exact = np.full(cand.shape, -np.inf, dtype=np.float32)
        if valid.any():
            vecs = self.full.gather(cand[valid])
            exact[valid] = np.einsum("ij,ij->i", vecs, np.repeat(q, counts, axis=0))
        # best exact score first; ties by lower row; padding (-inf, row -1 -> a huge key) last
        keys = np.where(valid, cand, np.iinfo(np.int64).max)
        order = np.lexsort((keys, -exact), axis=1)[:, :k]
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        width = order.shape[1]
        out_idx[:, :width] = np.take_along_axis(cand, order, axis=1)
        out_scores[:, :width] = np.take_along_axis(exact, order, axis=1)
        out_counts = np.minimum(counts, k)
        out_idx[np.arange(k)[None, :] >= out_counts[:, None]] = -1
        return out_idx, out_scores, out_counts
