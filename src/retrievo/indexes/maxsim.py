"""Exact late interaction: MaxSim (Chamfer similarity) of query token sets against stored document token sets.

``score(q, d) = Σ_i max_j <q_i, d_j>`` over the query's tokens ``i`` and the document's tokens ``j``.

Document tokens stay in their segments' memory-mapped ``mv_tokens.npy`` (float16, rows of a CSR layout:
``mv_indptr`` gives each document's token range). A full search reads the tokens a block of documents at a
time, converts the block to float32 and multiplies it with every query token of the batch at once (one
BLAS sgemm, both cores); a compiled kernel then takes each document's maximum per query token and sums per
query, skipping dead and filtered documents. Rescoring candidates (MUVERA's second step, the MaxSim rerank
stage) gathers only their tokens. No library does this over our segment layout with tombstones and filter
masks (PyLate and fastembed score in-memory tensors of one query against a list of documents).

A full search may scan compressed copies of the tokens instead (:class:`TokenCodes`, kept beside each
segment): ``int8`` (one float32 scale per token, about half the bytes of float16) or ``binary`` (sign bits, an
eighth); the best ``rescore_multiplier · k`` documents of the scan are then rescored with the float16 tokens, so
returned scores are always exact MaxSim.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba as nb
import numpy as np

from retrievo._io import load_npy

__all__ = ["MaxSimIndex", "TokenCodes", "as_float32", "maxsim_scores", "query_batch"]

_TOKEN_BLOCK = 1 << 16  # document tokens converted and multiplied at a time


def _threads() -> int:
    from retrievo.encoders.base import default_threads

    return default_threads()


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrievo-maxsim")


@nb.njit(cache=True, nogil=True)
def _half_bits(src, dst):  # pragma: no cover - compiled
    """First step of half -> single: the half's exponent and mantissa shifted into a float32's place."""
    for i in range(src.size):
        dst[i] = (np.uint32(src[i]) & np.uint32(0x7FFF)) << np.uint32(13)


@nb.njit(cache=True, nogil=True)
def _half_finish(src, dst):  # pragma: no cover - compiled
    """Last step: infinities and NaNs get the all-ones exponent, and the sign goes back."""
    for i in range(src.size):
        x = np.uint32(src[i])
        sign = (x & np.uint32(0x8000)) << np.uint32(16)
        em = x & np.uint32(0x7FFF)
        special = np.uint32(0x7F800000) | ((em & np.uint32(0x03FF)) << np.uint32(13))
        dst[i] = (special if em >= np.uint32(0x7C00) else dst[i]) | sign


def as_float32(tokens: np.ndarray) -> np.ndarray:
    """Token vectors as a contiguous float32 array. float16 is converted without branches, so every step
    vectorises (numpy's cast does not, and is about three times slower): exponent and mantissa shifted into
    place and read as a float32 scaled by 2**112 (exact for normal and subnormal halves), then infinities,
    NaNs and the sign."""
    if tokens.dtype != np.float16:
        return np.ascontiguousarray(tokens, dtype=np.float32)
    src = np.ascontiguousarray(tokens).view(np.uint16).reshape(-1)
    out = np.empty(tokens.shape, dtype=np.float32)
    bits = out.reshape(-1).view(np.uint32)
    _half_bits(src, bits)
    np.multiply(out, np.float32(2.0 ** 112), out=out)
    _half_finish(src, bits)
    return out


def query_batch(queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Query token sets as ``(indptr, float32 tokens)``."""
    ptr = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum([len(q) for q in queries], out=ptr[1:])
    dim = queries[0].shape[1] if queries else 0
    tokens = np.concatenate([np.asarray(q, np.float32).reshape(-1, dim) for q in queries]) if queries else \
        np.zeros((0, 0), np.float32)
    return ptr, np.ascontiguousarray(tokens, dtype=np.float32)


def maxsim_scores(q_ptr: np.ndarray, q_tok: np.ndarray, d_ptr: np.ndarray, d_tok: np.ndarray,
                  keep: np.ndarray | None = None) -> np.ndarray:
    """MaxSim of every query against every document given as CSR token sets: ``(n_queries, n_docs)``
    (``-inf`` where ``keep`` is false; 0 for a document or query without tokens).

    One matrix product of all query tokens with all document tokens, then each document's maximum per query
    token (``np.maximum.reduceat`` over its columns) and each query's sum (``np.add.reduceat`` over its rows)."""
    nq, nd = len(q_ptr) - 1, len(d_ptr) - 1
    out = np.zeros((nq, nd), dtype=np.float32)
    d_ptr = np.asarray(d_ptr, np.int64) - int(d_ptr[0])
    if nd and nq and d_ptr[-1] and q_ptr[-1]:
        sim = q_tok @ as_float32(d_tok).T
        full_d = np.flatnonzero(np.diff(d_ptr) > 0)
        full_q = np.flatnonzero(np.diff(q_ptr) > 0)
        best = np.maximum.reduceat(sim, d_ptr[full_d], axis=1)  # (query tokens, documents with tokens)
        out[np.ix_(full_q, full_d)] = np.add.reduceat(best, np.asarray(q_ptr, np.int64)[full_q], axis=0)
    if keep is not None:
        out[:, ~np.asarray(keep, bool)] = -np.inf
    return out


class TokenCodes:
    """Compressed token vectors of one segment for the full scan: ``int8`` codes with a scale per token, or
    ``binary`` sign bits (see the module docstring)."""

    KINDS = ("int8", "binary")

    def __init__(self, kind: str, codes: np.ndarray, scale: np.ndarray | None, dim: int) -> None:
        self.kind, self.codes, self.scale, self.dim = kind, codes, scale, int(dim)

    @staticmethod
    def files(kind: str) -> tuple[str, ...]:
        return ("mv_int8_codes.npy", "mv_int8_scale.npy") if kind == "int8" else ("mv_binary.npy",)

    @classmethod
    def encode(cls, kind: str, tokens: np.ndarray) -> TokenCodes:
        dim = tokens.shape[1]
        codes, scale = [], []
        for s in range(0, len(tokens), _TOKEN_BLOCK):
            t = np.asarray(tokens[s:s + _TOKEN_BLOCK], dtype=np.float32)
            if kind == "int8":
                sc = np.maximum(np.abs(t).max(axis=1), 1e-12) / 127.0
                codes.append(np.clip(np.rint(t / sc[:, None]), -127, 127).astype(np.int8))
                scale.append(sc.astype(np.float32))
            else:
                codes.append(np.packbits(t > 0, axis=1))
        width = dim if kind == "int8" else (dim + 7) // 8
        cat = np.concatenate(codes) if codes else np.zeros((0, width), np.int8 if kind == "int8" else np.uint8)
        return cls(kind, cat, np.concatenate(scale) if scale else (np.zeros(0, np.float32) if kind == "int8" else None),
                   dim)

    def save(self, folder) -> None:
        from retrievo._io import save_npy

        names = self.files(self.kind)
        save_npy(folder / names[0], self.codes)
        if self.kind == "int8":
            save_npy(folder / names[1], self.scale)

    @classmethod
    def load(cls, kind: str, folder, dim: int) -> TokenCodes | None:
        names = cls.files(kind)
        if not all((folder / n).exists() for n in names):
            return None
        codes = load_npy(folder / names[0], mmap_mode="r")
        scale = load_npy(folder / names[1], mmap_mode="r") if kind == "int8" else None
        return cls(kind, codes, scale, dim)

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        """Tokens ``lo:hi`` decoded to float32 (binary: ±1/√dim, unit length like the tokens)."""
        if self.kind == "int8":
            return np.asarray(self.codes[lo:hi], np.float32) * np.asarray(self.scale[lo:hi])[:, None]
        bits = np.unpackbits(np.asarray(self.codes[lo:hi]), axis=1, count=self.dim).astype(np.float32)
        return (2.0 * bits - 1.0) / np.sqrt(self.dim)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes) + (int(self.scale.nbytes) if self.scale is not None else 0)


class MaxSimIndex:
    """Exact MaxSim over token blocks that together number rows ``0..n-1``.

    Args:
        blocks: ``(offset, indptr, tokens)`` per segment; ``tokens`` is ``(n_tokens, dim)`` (float16,
            memory-mapped) and ``indptr`` the ``n_rows + 1`` token offsets of its rows.
        live: boolean mask over all rows; dead rows are never returned.
        scan: per block, the :class:`TokenCodes` a full search scans instead of the float16 tokens (then the
            best ``rescore_multiplier · k`` are rescored exactly); ``None``: scan the tokens themselves.
    """

    def __init__(self, blocks: list[tuple[int, np.ndarray, np.ndarray]], live: np.ndarray,
                 scan: list[TokenCodes] | None = None, rescore_multiplier: int = 4) -> None:
        self.blocks = blocks
        self.scan = scan
        self.rescore_multiplier = int(rescore_multiplier)
        self.live = np.asarray(live, dtype=bool)
        self.n_rows = len(self.live)
        self.dim = int(blocks[0][2].shape[1]) if blocks else 0
        self._offsets = np.array([o for o, _, _ in blocks], dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return sum(int(t.nbytes) + int(p.nbytes) for _, p, t in self.blocks)

    @property
    def scan_nbytes(self) -> int:
        """Bytes a full search reads: the compressed codes, or the float16 tokens."""
        return self.nbytes if self.scan is None else sum(c.nbytes for c in self.scan)

    @property
    def n_tokens(self) -> int:
        return sum(int(p[-1]) for _, p, _ in self.blocks)

    def tokens(self, row: int) -> np.ndarray:
        """The stored token vectors of one row (float32)."""
        b = int(np.searchsorted(self._offsets, row, side="right") - 1)
        offset, ptr, tok = self.blocks[b]
        local = row - offset
        return as_float32(tok[ptr[local]:ptr[local + 1]])

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token sets of global ``rows`` as ``(indptr, tokens)`` in the order given (tokens in the stored dtype),
        read with one indexed copy per segment in increasing file order."""
        rows = np.asarray(rows, dtype=np.int64)
        dtype = self.blocks[0][2].dtype if self.blocks else np.float32
        which = np.searchsorted(self._offsets, rows, side="right") - 1
        lengths = np.zeros(len(rows), np.int64)
        starts = np.zeros(len(rows), np.int64)
        for b in np.unique(which):
            sel = which == b
            offset, ptr, _ = self.blocks[b]
            local = rows[sel] - offset
            starts[sel], lengths[sel] = ptr[local], ptr[local + 1] - ptr[local]
        out_ptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=out_ptr[1:])
        out = np.empty((int(out_ptr[-1]), self.dim), dtype=dtype)
        for b in np.unique(which):
            sel = np.flatnonzero(which == b)
            dst = _spans(out_ptr, sel)
            src = np.repeat(starts[sel] - out_ptr[sel], lengths[sel]) + dst
            order = np.argsort(src, kind="stable")
            out[dst[order]] = self.blocks[b][2][src[order]]
        return out_ptr, out

    def score(self, queries: list[np.ndarray], rows: list[np.ndarray]) -> list[np.ndarray]:
        """MaxSim of query ``i`` with each of its candidate ``rows[i]``. Queries are scored side by side, one per
        core, each with a single-threaded matrix product (a query's candidate set is too small for a product to
        use two cores well: 1.7x faster on 2 cores than one query at a time)."""

        def one(i: int) -> np.ndarray:
            r = np.asarray(rows[i], dtype=np.int64)
            if len(r) == 0:
                return np.zeros(0, np.float32)
            d_ptr, d_tok = self.gather(r)
            q_ptr = np.array([0, len(queries[i])], dtype=np.int64)
            return maxsim_scores(q_ptr, np.ascontiguousarray(queries[i], np.float32), d_ptr, d_tok)[0]

        if len(queries) != len(rows):
            raise ValueError(f"score: {len(queries)} queries but {len(rows)} candidate lists")
        threads = min(_threads(), len(queries))
        if threads <= 1:
            return [one(i) for i in range(len(queries))]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            return list(_pool(threads).map(one, range(len(queries))))

    def all_scores(self, queries: list[np.ndarray], allowed: np.ndarray | None = None,
                   compressed: bool = False) -> np.ndarray:
        """MaxSim of every query with every row (``-inf`` for dead or disallowed rows): ``(n_queries, n_rows)``;
        ``compressed``: through the scan codes (approximate)."""
        q_ptr, q_tok = query_batch(queries)
        keep_all = self.live if allowed is None else (self.live & np.asarray(allowed, dtype=bool))
        out = np.full((len(queries), self.n_rows), -np.inf, dtype=np.float32)
        for b, (offset, ptr, tok) in enumerate(self.blocks):
            codes = self.scan[b] if compressed and self.scan is not None else None
            n = len(ptr) - 1
            keep = keep_all[offset:offset + n]
            start = 0
            while start < n:
                if not keep[start]:
                    start += 1
                    continue
                # documents [start, end) whose tokens fit one block (at least one document)
                end = int(np.searchsorted(ptr, ptr[start] + _TOKEN_BLOCK, side="right")) - 1
                end = min(max(end, start + 1), n)
                lo, hi = int(ptr[start]), int(ptr[end])
                d_tok = tok[lo:hi] if codes is None else codes.tokens(lo, hi)
                out[:, offset + start:offset + end] = maxsim_scores(
                    q_ptr, q_tok, ptr[start:end + 1], d_tok, np.ascontiguousarray(keep[start:end]))
                start = end
        return out

    def search(self, queries: list[np.ndarray], k: int, allowed: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` rows of each query by exact MaxSim: ``(rows, scores, counts)`` padded with -1 / -inf. With scan
        codes, the best ``rescore_multiplier · k`` of the compressed scan are rescored with the float16 tokens."""
        if self.scan is None:
            return _top(self.all_scores(queries, allowed), k)
        rows_c, _, counts_c = _top(self.all_scores(queries, allowed, compressed=True), k * self.rescore_multiplier)
        cand = [rows_c[i, :counts_c[i]] for i in range(len(queries))]
        out_r = np.full((len(queries), k), -1, np.int64)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        counts = np.zeros(len(queries), np.int64)
        for i, (r, sc) in enumerate(zip(cand, self.score(queries, cand), strict=True)):
            order = np.lexsort((r, -sc))[:k]
            out_r[i, :len(order)], out_s[i, :len(order)], counts[i] = r[order], sc[order], len(order)
        return out_r, out_s, counts


def _spans(ptr: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Positions ``ptr[i]:ptr[i+1]`` of every ``i`` in ``sel``, concatenated."""
    lengths = ptr[sel + 1] - ptr[sel]
    return np.repeat(ptr[sel] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())


def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's best ``k`` columns (ties: the lower column), padded with -1 / -inf, skipping -inf."""
    from retrievo.indexes._topk import select_topk

    nq, n = scores.shape
    rows = np.broadcast_to(np.arange(n, dtype=np.int64), (nq, n))
    if n > 4 * k:  # keep a superset of each query's top k (ties at the boundary included), then sort
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
        width = int((scores >= kth).sum(axis=1).max())
        pick = np.argpartition(-scores, min(width, n) - 1, axis=1)[:, :width]
        rows, scores = pick.astype(np.int64), np.take_along_axis(scores, pick, axis=1)
    rows = np.where(np.isfinite(scores), rows, -1)
    return select_topk(rows, scores, k)
