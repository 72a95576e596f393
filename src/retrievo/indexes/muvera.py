"""MUVERA fixed-dimensional encodings (FDEs): a set of vectors as one vector whose inner product approximates
the sets' Chamfer (MaxSim) similarity (Jayaram et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional
Encodings", NeurIPS 2024).

Per repetition ``r`` (of ``repetitions``), ``simhash`` Gaussian hyperplanes cut the space into
``2**simhash`` partitions; a token falls in the partition whose index is its sign bits read as a Gray code
(neighbouring partitions differ in one hyperplane). Each token is projected to ``projection_dim``
coordinates by a random ±1 matrix scaled by 1/√d_proj (the paper's; ``projection="ams"``: the C++ reference's
sparse sketch, one ±1 per input coordinate; both unbiased for inner products; ``None`` keeps the token as
it is). A **query**'s block of a partition is the SUM of its tokens' projections there; a
**document**'s is their AVERAGE, and an empty partition takes the projection of the document token whose
sign bits are nearest (Hamming) to the partition's — so every query token meets its likely MaxSim partner.
With ``partitions="sampled"`` the partitions of repetition ``r`` are the cells of ``2**simhash`` centres drawn
from the collection's own token vectors (:func:`sample_centroids`, seeded with ``seed + r``; a token goes to the
centre of largest inner product), and an empty partition of a document takes the projection of its token
nearest the centre: cells follow the density of the tokens, so a query token and its MaxSim partner share a
cell more often than under random hyperplanes, while each repetition's cells stay independent of the others'.
The blocks of all repetitions are concatenated (``repetitions · 2**simhash · projection_dim`` values) and,
with ``final_dim``, Count-Sketched down to that many. Random matrices come from ``numpy``'s PCG64 seeded
with ``seed + r`` (the final sketch with ``seed``), so an encoding is a pure function of its config, which
the collection keeps in its manifest. The layout follows Google's reference implementation
(``graph-mining/sketching/point_cloud/fixed_dimensional_encoding.cc``); the random streams differ.

Written here rather than taken from a library: the peers (fastembed's ``Muvera``, ``muvera-py``) encode
one document at a time in Python and neither has the Gray-code partitions with nearest-partition filling
and the final Count-Sketch together. Here a batch of documents is encoded with two matrix products per
batch and one compiled pass over its tokens.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from retrievo.config import FDEConfig
from retrievo.errors import ConfigError

__all__ = ["FDEConfig", "FixedDimensionalEncoder", "chamfer", "sample_centroids"]

SCORE_BUDGET = 1 << 24  # token-centre similarities held at once while encoding with sampled partitions


def gray_partition(bits: np.ndarray) -> np.ndarray:
    """Partition index of sign-bit rows ``bits`` (``(..., k)`` bool, first hyperplane first): each bit
    appended to a Gray code (``index = (index << 1) + (bit ^ (index & 1))``), as the reference does."""
    k = bits.shape[-1]
    index = np.zeros(bits.shape[:-1], dtype=np.int64)
    for j in range(k):
        index = (index << 1) + (bits[..., j].astype(np.int64) ^ (index & 1))
    return index


def chamfer(query: np.ndarray, doc: np.ndarray) -> float:
    """Chamfer similarity (ColBERT's MaxSim): for each query vector its best inner product with a document
    vector, summed."""
    return float((np.asarray(query, np.float32) @ np.asarray(doc, np.float32).T).max(axis=1).sum())


@nb.njit(cache=True, nogil=True)
def _scatter(doc_of, part, proj, counts, out, reps, n_part, pdim):  # pragma: no cover - compiled
    """Add each token's projection (``proj[t, r]``) into its document's partition block of repetition r."""
    for t in range(part.shape[0]):
        d = doc_of[t]
        for r in range(reps):
            p = part[t, r]
            counts[d, r, p] += 1
            base = (r * n_part + p) * pdim
            for c in range(pdim):
                out[d, base + c] += proj[t, r, c]


@nb.njit(cache=True, nogil=True)
def _average_and_fill(indptr, codes, part_codes, proj, counts, out, reps, n_part, pdim, fill):  # pragma: no cover
    """Documents: divide each non-empty block by its token count; fill an empty one with the projection of
    the first token whose sign bits are nearest (Hamming) to the partition's."""
    for d in range(indptr.shape[0] - 1):
        lo, hi = indptr[d], indptr[d + 1]
        for r in range(reps):
            for p in range(n_part):
                base = (r * n_part + p) * pdim
                n = counts[d, r, p]
                if n > 0:
                    for c in range(pdim):
                        out[d, base + c] /= n
                elif fill and hi > lo:
                    best, best_t = 1 << 30, lo
                    want = part_codes[p]
                    for t in range(lo, hi):
                        x = codes[t, r] ^ want
                        dist = 0
                        while x:
                            x &= x - 1
                            dist += 1
                        if dist < best:
                            best, best_t = dist, t
                    for c in range(pdim):
                        out[d, base + c] = proj[best_t, r, c]


@nb.njit(cache=True, nogil=True)
def _fill_nearest(indptr, score, proj, counts, out, reps, n_part, pdim):  # pragma: no cover - compiled
    """Documents, sampled partitions: an empty block takes the projection of the document's token whose inner
    product with the partition's centroid (``score[t, r, p]``) is largest (the first of equals)."""
    for d in range(indptr.shape[0] - 1):
        lo, hi = indptr[d], indptr[d + 1]
        if hi == lo:
            continue
        for r in range(reps):
            for p in range(n_part):
                if counts[d, r, p] > 0:
                    continue
                best_t, best = lo, score[lo, r, p]
                for t in range(lo + 1, hi):
                    if score[t, r, p] > best:
                        best, best_t = score[t, r, p], t
                base = (r * n_part + p) * pdim
                for c in range(pdim):
                    out[d, base + c] = proj[best_t, r, c]


def sample_centroids(tokens: np.ndarray, config: FDEConfig) -> np.ndarray:
    """The data-dependent partitions of ``config`` for these token vectors: ``(repetitions, 2**simhash, dim)``
    unit centres, those of repetition ``r`` distinct tokens drawn uniformly with ``seed + r`` (normalised); with
    fewer distinct tokens than partitions, the missing centres are random unit vectors (seeded).

    Drawn, not clustered: k-means centres (25 Lloyd iterations, or k-means++ seeding) found fewer of the exact top
    10 than SimHash on ToolLens's MiniLM tokens, and no more than drawn tokens on SciFact's at (40, 5, 16) — fitted
    cells make the repetitions alike, and their independence is what MUVERA's averaging relies on."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not len(tokens):
        raise ConfigError("FDE sampled partitions: no token vectors to draw the centres from")
    n_part, dim = 1 << config.simhash, tokens.shape[1]
    out = np.empty((config.repetitions, n_part, dim), dtype=np.float32)
    for r in range(config.repetitions):
        rng = np.random.default_rng(config.seed + r)
        # a few more draws than partitions, duplicates dropped (padding and repeated pieces share vectors)
        take = np.sort(rng.choice(len(tokens), min(len(tokens), 2 * n_part + 16), replace=False))
        x = np.asarray(tokens[take], dtype=np.float32)
        _, first = np.unique(x, axis=0, return_index=True)
        x = x[np.sort(first)][:n_part]
        c = np.concatenate([x, rng.standard_normal((n_part - len(x), dim)).astype(np.float32)])
        out[r] = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return out


class FixedDimensionalEncoder:
    """Encode token sets of dimension ``dim`` with ``config`` (default: the paper's SimHash partitions; the random
    matrices are drawn once; ``centroids`` — :func:`sample_centroids` — are the partitions when
    ``config.partitions`` is ``"sampled"``)."""

    def __init__(self, dim: int, config: FDEConfig | None = None, centroids: np.ndarray | None = None) -> None:
        self.config = cfg = config or FDEConfig(partitions="simhash")  # no tokens to draw centres from
        self.dim = int(dim)
        self.centroids = None
        if cfg.partitions == "sampled":
            want = (cfg.repetitions, 1 << cfg.simhash, self.dim)
            if centroids is None or np.shape(centroids) != want:
                raise ConfigError(f"FDE sampled partitions need centroids shaped {want}, got "
                                  f"{None if centroids is None else np.shape(centroids)}")
            self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
            # (dim, reps * n_part): one product scores a token against every centroid of every repetition
            self._centroid_matrix = np.ascontiguousarray(self.centroids.reshape(-1, self.dim).T)
        if cfg.projection_dim is not None and cfg.projection_dim > self.dim:
            raise ConfigError(f"FDEConfig.projection_dim ({cfg.projection_dim}) exceeds the token dimension {self.dim}")
        self.pdim = cfg.projection_dim or self.dim
        self.n_part = 1 << cfg.simhash
        hyper, proj = [], []
        for r in range(cfg.repetitions):
            rng = np.random.default_rng(cfg.seed + r)
            hyper.append(rng.standard_normal((self.dim, cfg.simhash)).astype(np.float32))
            if cfg.projection_dim is None:
                proj.append(np.eye(self.dim, dtype=np.float32))
            elif cfg.projection == "dense":  # the paper's: iid ±1 entries, scaled by 1/sqrt(d_proj)
                signs = rng.choice(np.array([-1.0, 1.0], np.float32), (self.dim, self.pdim))
                proj.append((signs / np.sqrt(self.pdim)).astype(np.float32))
            else:  # AMS sketch (the C++ reference): input coordinate i goes to one output coordinate, random sign
                m = np.zeros((self.dim, self.pdim), dtype=np.float32)
                m[np.arange(self.dim), rng.integers(0, self.pdim, self.dim)] = rng.choice([-1.0, 1.0], self.dim)
                proj.append(m)
        self.hyperplanes = np.concatenate(hyper, axis=1) if cfg.simhash else np.zeros((self.dim, 0), np.float32)
        self.projection = np.concatenate(proj, axis=1)  # (dim, reps * pdim)
        # the sign-bit pattern of each partition (Gray code -> its bits), to measure a token's distance to it
        idx = np.arange(self.n_part, dtype=np.int64)
        self.part_codes = idx ^ (idx >> 1)
        self.raw_dim = cfg.raw_dim(self.dim)
        self.out_dim = cfg.out_dim(self.dim)
        self._final = None
        if cfg.final_dim is not None:
            import scipy.sparse as sp

            rng = np.random.default_rng(cfg.seed)
            cols = rng.integers(0, cfg.final_dim, self.raw_dim)
            signs = rng.choice(np.array([-1.0, 1.0], np.float32), self.raw_dim)
            self._final = sp.csr_matrix((signs, (np.arange(self.raw_dim), cols)), shape=(self.raw_dim, cfg.final_dim),
                                        dtype=np.float32)

    def _sketch(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per token: partition per repetition, sign bits per repetition (as an int;
        with sampled partitions the similarity to every centre, ``(n, reps, n_part)``), projections."""
        cfg, n = self.config, vectors.shape[0]
        if self.centroids is not None:
            codes = (vectors @ self._centroid_matrix).reshape(n, cfg.repetitions, self.n_part)
            part = codes.argmax(axis=2)
        elif cfg.simhash:
            bits = (vectors @ self.hyperplanes > 0).reshape(n, cfg.repetitions, cfg.simhash)
            part = gray_partition(bits)
            weights = (1 << np.arange(cfg.simhash - 1, -1, -1)).astype(np.int64)
            codes = bits.astype(np.int64) @ weights  # first hyperplane = most significant bit
        else:
            part = codes = np.zeros((n, cfg.repetitions), dtype=np.int64)
        proj = (vectors @ self.projection).reshape(n, cfg.repetitions, self.pdim)
        return np.ascontiguousarray(part), np.ascontiguousarray(codes), np.ascontiguousarray(proj, dtype=np.float32)

    def encode(self, indptr: np.ndarray, vectors: np.ndarray, documents: bool, block: int = 512) -> np.ndarray:
        """FDEs of the sets ``vectors[indptr[i]:indptr[i+1]]`` (``documents``: AVERAGE and fill; else SUM),
        as a ``(n_sets, out_dim)`` float32 array; ``block`` sets are encoded at a time."""
        indptr = np.asarray(indptr, dtype=np.int64)
        n_sets = len(indptr) - 1
        out = np.zeros((n_sets, self.out_dim), dtype=np.float32)
        if vectors.shape[-1] != self.dim and len(vectors):
            raise ConfigError(f"FDE: token vectors have dimension {vectors.shape[-1]}, the encoder {self.dim}")
        cfg = self.config
        if self.centroids is not None and n_sets:  # the similarities of a block's tokens are held at once
            per_set = max(1.0, float(indptr[-1] - indptr[0]) / n_sets) * cfg.repetitions * self.n_part
            block = max(1, min(block, int(SCORE_BUDGET / per_set)))
        for s in range(0, n_sets, block):
            e = min(s + block, n_sets)
            lo, hi = int(indptr[s]), int(indptr[e])
            ptr = indptr[s:e + 1] - lo
            vec = np.asarray(vectors[lo:hi], dtype=np.float32)
            raw = np.zeros((e - s, self.raw_dim), dtype=np.float32)
            if hi > lo:
                part, codes, proj = self._sketch(vec)
                counts = np.zeros((e - s, cfg.repetitions, self.n_part), dtype=np.int64)
                doc_of = np.repeat(np.arange(e - s, dtype=np.int64), np.diff(ptr))
                _scatter(doc_of, part, proj, counts, raw, cfg.repetitions, self.n_part, self.pdim)
                if documents and self.centroids is not None:  # (codes hold similarities here: not passed)
                    _average_and_fill(ptr, np.zeros((1, 1), np.int64), self.part_codes, proj, counts, raw,
                                      cfg.repetitions, self.n_part, self.pdim, False)
                    if cfg.fill_empty:
                        _fill_nearest(ptr, codes, proj, counts, raw, cfg.repetitions, self.n_part, self.pdim)
                elif documents:
                    _average_and_fill(ptr, codes, self.part_codes, proj, counts, raw, cfg.repetitions, self.n_part,
                                      self.pdim, bool(cfg.fill_empty and cfg.simhash))
            out[s:e] = raw if self._final is None else np.asarray(raw @ self._final, dtype=np.float32)
        return out

    def documents(self, indptr: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return self.encode(indptr, vectors, documents=True)

    def queries(self, indptr: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return self.encode(indptr, vectors, documents=False)
