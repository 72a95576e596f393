"""Compressed dense indexes with rescoring: scalar int8 and binary (sign bits), bi-granular layout.

RAM holds only compact codes; a search takes ``rescore_multiplier × k`` candidates from the codes and
re-ranks them with the float32 vectors, which stay in the segments' memory-mapped ``dense.npy`` files on
disk (the bi-granular design of BiDR, Xiao et al., "Distill-VQ"/"Bi-Granular Document Representation",
WWW 2022; rescoring as in sentence-transformers' ``quantization.py``).

- :class:`Int8Index`: per-dimension affine scalar quantisation to int8, calibrated on each segment's vectors
  (min/max of each dimension), scored asymmetrically (float query against decoded codes) — 1/4 of float32.
- :class:`BinaryIndex`: one sign bit per dimension (binary embedding-based retrieval, Tencent BEBR,
  Gan et al., KDD 2023), scored by Hamming distance between the query's and the document's bits with a
  compiled popcount kernel — 1/32 of float32.

Why by hand: faiss offers the same codes (IndexScalarQuantizer, IndexBinaryFlat) but cannot take our
tombstone and filter masks inside the scan nor rescore from our memory-mapped segments; the scan, the
masks and the top-k heaps are shared with :class:`~retrievo.indexes.flat.FlatIndex`.

Persistence: each immutable segment keeps its codes beside its vectors (:class:`Int8Codes`,
:class:`BinaryCodes`: plain ``.npy``, written atomically, reopened memory-mapped), so a commit encodes only
the new segment and reopening a collection encodes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np

from retrievo._io import load_npy, save_npy
from retrievo.indexes._topk import select_topk
from retrievo.indexes.flat import FlatIndex

__all__ = ["BinaryCodes", "BinaryIndex", "Int8Codes", "Int8Index", "RescoringIndex", "pack_signs"]


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


class Int8Codes:
    """One segment's int8 codes: ``x ≈ offset + scale · code`` per dimension, calibrated on that segment.

    Segments are immutable, so each keeps its own calibration (min/max of each dimension over its rows)
    and its codes never change; :meth:`save` writes ``int8_codes.npy`` and ``int8_calib.npy`` (offset,
    scale) beside the segment and :meth:`load` reopens the codes memory-mapped.
    """

    FILES = ("int8_codes.npy", "int8_calib.npy")

    def __init__(self, codes: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> None:
        self.codes = codes
        self.offset = np.asarray(offset, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.shape = codes.shape

    @classmethod
    def encode(cls, vectors: np.ndarray) -> Int8Codes:
        x = np.asarray(vectors, dtype=np.float32)
        if len(x):
            lo, hi = x.min(axis=0), x.max(axis=0)
        else:
            lo = hi = np.zeros(x.shape[1], np.float32)
        scale = np.maximum((hi - lo) / 254.0, 1e-12).astype(np.float32)
        offset = ((hi + lo) / 2).astype(np.float32)
        codes = np.empty(x.shape, dtype=np.int8)
        for s in range(0, len(x), 65536):  # bounded temporaries for large segments
            codes[s : s + 65536] = np.clip(np.rint((x[s : s + 65536] - offset) / scale), -127, 127)
        return cls(codes, offset, scale)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.offset.nbytes + self.scale.nbytes)

    def take(self, local: np.ndarray) -> Int8Codes:
        return Int8Codes(np.asarray(self.codes[local]), self.offset, self.scale)

    def save(self, folder: Path) -> None:
        save_npy(folder / self.FILES[0], np.asarray(self.codes))
        save_npy(folder / self.FILES[1], np.stack([self.offset, self.scale]))

    @classmethod
    def load(cls, folder: Path) -> Int8Codes:
        calib = load_npy(folder / cls.FILES[1])
        return cls(load_npy(folder / cls.FILES[0], mmap_mode="r"), calib[0], calib[1])


class BinaryCodes:
    """One segment's sign bits (``binary_codes.npy``, uint64 words), reopened memory-mapped."""

    FILES = ("binary_codes.npy",)

    def __init__(self, words: np.ndarray) -> None:
        self.words = words
        self.shape = words.shape

    @classmethod
    def encode(cls, vectors: np.ndarray) -> BinaryCodes:
        return cls(pack_signs(vectors))

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)

    def take(self, local: np.ndarray) -> BinaryCodes:
        return BinaryCodes(np.asarray(self.words[local]))

    def save(self, folder: Path) -> None:
        save_npy(folder / self.FILES[0], np.asarray(self.words))

    @classmethod
    def load(cls, folder: Path) -> BinaryCodes:
        return cls(load_npy(folder / cls.FILES[0], mmap_mode="r"))


class _CodesIndex(FlatIndex):
    """A :class:`FlatIndex` whose blocks are per-segment code objects (``take``, ``shape``, ``nbytes``)."""

    codes_class: type = Int8Codes

    def __init__(self, blocks: list[tuple[int, np.ndarray]], live: np.ndarray) -> None:
        """Encode float blocks ``(offset, vectors)``; see :meth:`from_codes` for stored codes."""
        dim = int(blocks[0][1].shape[1]) if blocks else 0
        self._init_codes([(offset, self.codes_class.encode(mat)) for offset, mat in blocks], live, dim)

    def _init_codes(self, code_blocks: list, live: np.ndarray, dim: int) -> None:
        FlatIndex.__init__(self, code_blocks, live)
        self.dim = dim

    @classmethod
    def from_codes(cls, code_blocks: list, live: np.ndarray, dim: int):
        """An index over codes already encoded (e.g. loaded memory-mapped from the segments)."""
        self = cls.__new__(cls)
        self._init_codes(code_blocks, live, dim)
        return self

    @property
    def nbytes(self) -> int:
        return sum(int(c.nbytes) for _, c in self.blocks)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError("compressed indexes hold codes, not vectors: gather from the float index")

    def _take(self, mat, local: np.ndarray):
        return mat.take(local)


class Int8Index(_CodesIndex):
    """Scalar-quantised vectors, int8 codes calibrated per segment; scored as ``(q ∘ scale) · code + q · offset``."""

    codes_class = Int8Codes

    def _block_scores(self, qb: np.ndarray, mat: Int8Codes, start: int, stop: int) -> np.ndarray:
        scores = (qb * mat.scale) @ np.asarray(mat.codes[start:stop], dtype=np.float32).T
        scores += (qb @ mat.offset)[:, None]
        return scores


class BinaryIndex(_CodesIndex):
    """Sign bits of each vector, searched by Hamming distance (score = −distance)."""

    codes_class = BinaryCodes

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        return pack_signs(queries)

    def _block_scores(self, qb: np.ndarray, mat: BinaryCodes, start: int, stop: int) -> np.ndarray:
        return _neg_hamming(qb, np.ascontiguousarray(mat.words[start:stop]))


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
        valid = cand >= 0
        exact = np.full(cand.shape, -np.inf, dtype=np.float32)
        if valid.any():
            vecs = self.full.gather(cand[valid])
            exact[valid] = np.einsum("ij,ij->i", vecs, np.repeat(q, counts, axis=0))
        return select_topk(cand, exact, k)  # best exact score first; ties by lower row; padding last
