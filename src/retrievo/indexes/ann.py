"""Approximate dense search (HNSW, IVF, IVF-PQ) with faiss, per segment, with filter strategies.

Why faiss: it has well-tuned HNSW, IVF and PQ implementations, reads indexes memory-mapped, and — unlike
hnswlib's Python predicate callbacks — applies an id bitmap *inside* graph and cell traversal
(``IDSelectorBitmap`` in the search parameters), which is what filtered search and tombstones need.

One faiss index is built per immutable segment (over all its rows; dead rows are masked at search time),
saved next to the segment's vectors and reopened memory-mapped; a merge builds the merged segment's index.
Filtered search picks its strategy by the estimated selectivity ``s = allowed / live`` (as analysed in
the FANNS benchmark, Iff et al., 2024) and a cost estimate in distance computations (:func:`choose_strategy`):
exact search over the allowed rows costs ``allowed``; filtered HNSW traversal expands about ``ef / s``
nodes of ``2M`` neighbours each (only allowed nodes fill the result list); filtered IVF scans the allowed
rows of ``nprobe`` of ``nlist`` cells. Exact search wins for small allowed sets (at 1M rows, M=32,
efSearch=512 it wins up to s ≈ 18 %), filtered traversal in the middle, and post-filtering with
oversampling above s = 0.5; if a strategy returns fewer than k results while k allowed rows exist, exact
search over the allowed rows completes it, so a search never returns fewer than ``min(k, allowed)`` results.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retrievo._io import write_atomic
from retrievo._optional import require
from retrievo.config import DenseIndexConfig
from retrievo.indexes._topk import select_topk
from retrievo.indexes.flat import FlatIndex

__all__ = ["AnnIndex", "build_segment_index", "choose_strategy", "index_filename"]

EXACT_BELOW = 2048  # allowed rows at or under this count are always searched exactly
POSTFILTER_ABOVE = 0.5  # selectivity above which post-filtering with oversampling is used


def choose_strategy(n_allowed: int, n_live: int, k: int, cfg: DenseIndexConfig, filtered: bool = True,
                    exact_below: int = EXACT_BELOW) -> str:
    """The search strategy for a filter allowing ``n_allowed`` of ``n_live`` rows (see the module docstring).

    Returns one of "empty", "ann" (no filter), "exact", "filtered-traversal", "postfilter".
    """
    if n_allowed <= 0:
        return "empty"
    if not filtered:
        return "ann"
    if exact_below and n_allowed <= max(exact_below, k):
        return "exact"
    sel = n_allowed / max(n_live, 1)
    if cfg.kind == "hnsw":
        index_cost = max(cfg.ef_search, k) * 2 * cfg.M / sel
    else:  # IVF: the allowed rows of nprobe cells, plus the coarse quantiser
        nlist = _nlist(cfg, n_live)
        index_cost = min(cfg.nprobe, nlist) / nlist * n_allowed + nlist
    if exact_below and n_allowed <= index_cost:  # exact_below=0: always use the index
        return "exact"
    return "postfilter" if sel > POSTFILTER_ABOVE else "filtered-traversal"


def index_filename(cfg: DenseIndexConfig) -> str:
    """The file name of a segment's ANN index; the parameters that shape the structure are in the name."""
    if cfg.kind == "hnsw":
        return f"ann_hnsw_M{cfg.M}_efc{cfg.ef_construction}.faiss"
    if cfg.kind == "ivf":
        return f"ann_ivf_nl{cfg.nlist or 'auto'}.faiss"
    return f"ann_ivfpq_nl{cfg.nlist or 'auto'}_m{cfg.pq_m}x{cfg.pq_bits}.faiss"


def _nlist(cfg: DenseIndexConfig, n: int) -> int:
    return max(1, min(cfg.nlist or int(4 * math.sqrt(n)), n))


def build_segment_index(vectors: np.ndarray, cfg: DenseIndexConfig, path: Path | None = None):
    """Build a faiss index over ``vectors`` (inner product); save it atomically to ``path`` if given."""
    faiss = require("faiss", extra="ann", package="faiss-cpu")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    if cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
    else:
        nlist = _nlist(cfg, n)
        quantizer = faiss.IndexFlatIP(d)
        if cfg.kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            if d % cfg.pq_m:
                from retrievo.errors import ConfigError

                raise ConfigError(f"DenseIndexConfig.pq_m={cfg.pq_m} must divide the dimension {d}")
            index = faiss.IndexIVFPQ(quantizer, d, nlist, cfg.pq_m, cfg.pq_bits, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        train = x if n <= 100_000 else x[rng.choice(n, 100_000, replace=False)]
        if cfg.kind == "ivfpq" and len(train) < 2**cfg.pq_bits:
            train = np.concatenate([train] * (-(-(2**cfg.pq_bits) // len(train))))
        # faiss prints a warning per k-means run when a cell gets fewer than 39 training points (one per PQ
        # sub-quantizer too: dozens of lines for a small segment); the recall a plan measures says what it costs
        index.cp.min_points_per_centroid = 1
        if cfg.kind == "ivfpq":
            index.pq.cp.min_points_per_centroid = 1
        index.train(train)
    index.add(x)
    if path is not None:
        write_atomic(path, lambda fh: faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write)))
    return index


def load_segment_index(path: Path):
    faiss = require("faiss", extra="ann", package="faiss-cpu")
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


def _swig_ptr(a: np.ndarray):
    import faiss

    return faiss.swig_ptr(a)


class AnnIndex:
    """ANN search over segments, each with its own faiss index, plus the exact index for small filters.

    Args:
        segments: ``(offset, faiss index, n_rows)`` per segment, in row order.
        flat: the exact index over the same rows (used for very selective filters and completion).
        live: boolean mask of live rows.
        cfg: search parameters (ef_search, nprobe).
        exact_below: filters allowing at most this many rows are searched exactly (0: always use the index).
    """

    def __init__(self, segments: list[tuple[int, object, int]], flat: FlatIndex, live: np.ndarray,
                 cfg: DenseIndexConfig, exact_below: int = EXACT_BELOW) -> None:
        self.exact_below = int(exact_below)
        self.segments = segments
        self.flat = flat
        self.live = np.asarray(live, dtype=bool)
        self.n_live = int(self.live.sum())
        self.all_live = self.n_live == len(self.live)
        self.cfg = cfg
        self.dim = flat.dim
        self.last_strategy = ""
        self._plain_params = None

    @property
    def nbytes(self) -> int:
        """Approximate bytes of the ANN structures (graph links / codes / vectors they hold)."""
        faiss = require("faiss", extra="ann", package="faiss-cpu")
        total = 0
        for _, index, n in self.segments:
            if self.cfg.kind == "hnsw":
                total += n * (self.dim * 4 + self.cfg.M * 2 * 4 + 8)
            else:
                ivf = faiss.extract_index_ivf(index)
                code = self.dim * 4 if self.cfg.kind == "ivf" else self.cfg.pq_m * self.cfg.pq_bits // 8
                total += n * (code + 8) + ivf.nlist * self.dim * 4
        return total

    def _params(self, bitmap_mask: np.ndarray | None):
        if bitmap_mask is None and self._plain_params is not None:
            return self._plain_params
        faiss = require("faiss", extra="ann", package="faiss-cpu")
        sel = None
        if bitmap_mask is not None:
            bits = np.packbits(bitmap_mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(bitmap_mask), faiss.swig_ptr(bits))
            sel.bits_keep = bits  # the selector points into this array
        if self.cfg.kind == "hnsw":
            p = faiss.SearchParametersHNSW(efSearch=max(self.cfg.ef_search, 1))
        else:
            p = faiss.SearchParametersIVF(nprobe=self.cfg.nprobe)
        if sel is not None:
            p.sel = sel
            p.sel_keep = sel
        else:
            self._plain_params = p
        return p

    def _search_segments(self, q: np.ndarray, k: int, mask: np.ndarray | None, use_bitmap: bool):
        nq = q.shape[0]
        all_rows = []
        all_scores = []
        for offset, index, n in self.segments:
            seg_mask = None if mask is None else mask[offset : offset + n]
            if seg_mask is not None and not seg_mask.any():
                continue
            params = self._params(seg_mask if use_bitmap else None)
            kk = min(k, n)
            scores, rows = index.search(q, kk, params=params)
            rows = rows.astype(np.int64)
            scores = scores.astype(np.float32)
            bad = rows < 0
            if seg_mask is not None and not use_bitmap:
                bad |= ~seg_mask[np.where(rows < 0, 0, rows)]
            rows = np.where(bad, -1, rows + offset)
            scores = np.where(bad, -np.inf, scores)
            all_rows.append(rows)
            all_scores.append(scores)
        if not all_rows:
            return np.full((nq, 0), -1, np.int64), np.full((nq, 0), -np.inf, np.float32)
        return np.concatenate(all_rows, axis=1), np.concatenate(all_scores, axis=1)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(int(k), 1)
        nq = q.shape[0]
        if allowed is None:  # O(1) per call: counts are cached
            mask = self.live
            n_allowed = self.n_live
        else:
            mask = self.live & np.asarray(allowed, dtype=bool)
            n_allowed = int(mask.sum())
        n_live = max(self.n_live, 1)
        if n_allowed == 0:
            self.last_strategy = "empty"
            return (np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf, np.float32), np.zeros(nq, np.int64))
        selectivity = n_allowed / n_live
        strategy = choose_strategy(n_allowed, n_live, k, self.cfg, allowed is not None or not self.all_live,
                                   self.exact_below)
        if strategy == "exact":
            self.last_strategy = "exact"
            return self.flat.search(q, k, mask, threads)
        if allowed is None and self.all_live:
            self.last_strategy = "ann"
            if len(self.segments) == 1:  # fast path: faiss already returns sorted, padded rows
                offset, index, n = self.segments[0]
                kk = min(k, n)
                scores = np.empty((nq, kk), dtype=np.float32)
                rows = np.empty((nq, kk), dtype=np.int64)
                # the SWIG entry point directly: faiss' Python wrapper costs ~10 µs a call, a tenth of a query
                index.search_c(nq, _swig_ptr(q), kk, _swig_ptr(scores), _swig_ptr(rows), self._params(None))
                out_idx = np.full((nq, k), -1, dtype=np.int64)
                out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
                found = rows >= 0
                out_idx[:, : rows.shape[1]] = np.where(found, rows + offset, -1)
                out_scores[:, : rows.shape[1]] = np.where(found, scores, -np.inf)
                counts = found.sum(axis=1).astype(np.int64)
                if (counts >= min(k, n_allowed)).all():
                    return out_idx, out_scores, counts
            rows, scores = self._search_segments(q, k, None, False)
        elif selectivity > POSTFILTER_ABOVE:
            self.last_strategy = "postfilter"
            over = int(math.ceil(k / selectivity * 1.5)) + 10
            rows, scores = self._search_segments(q, over, mask, False)
        else:
            self.last_strategy = "filtered-traversal"
            rows, scores = self._search_segments(q, k, mask, True)
        out_idx, out_scores, counts = select_topk(rows, scores, k)
        # never fewer than min(k, allowed): complete short rows exactly
        short = np.flatnonzero(counts < min(k, n_allowed))
        if len(short):
            r2, s2, c2 = self.flat.search(q[short], k, mask, threads)
            out_idx[short], out_scores[short], counts[short] = r2, s2, c2
        return out_idx, out_scores, counts
