"""BM25 over an impact-scored inverted index, with compiled (numba) query evaluation.

Scoring follows Lucene's BM25 (Robertson et al.; Lucene variant as analysed by Kamphuis et al., "Which
BM25 Do You Mean? A Large-Scale Reproducibility Study of Scoring Variants", ECIR 2020):

    idf(t)     = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(t,d) = idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))

or, by ``BM25Config.variant``, BM25L or BM25+ as the same study (and bm25s) define them.

As in bm25s (Lù, 2024) every (term, document) impact is precomputed once per commit, so a query is a
sum of posting-list slices. The collection statistics (N, avgdl, df) are computed from the *live*
documents only, which makes scores after any sequence of updates equal to those of a fresh build, and
they are a :class:`BM25Stats` value that can be summed over segments or shards.

Why by hand: bm25s scores with scipy/numba but owns its corpus and cannot take tombstones, incremental
segments or filter masks; the kernel here does scatter-add and a bounded heap per query in one
compiled loop (queries split over threads) and never touches documents a query does not match.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np
import scipy.sparse as sp

from retrievo.config import BM25Config
from retrievo.indexes._topk import accumulator_topk, heap_drain_sorted

__all__ = ["BM25Stats", "InvertedIndex", "compute_stats", "term_at_a_time", "term_frequencies"]

_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() costs microseconds a call


@dataclass(frozen=True)
class BM25Stats:
    """Collection statistics of BM25; ``a + b`` combines two disjoint parts (segments, shards)."""

    n_docs: int
    total_len: int
    df: np.ndarray  # int64, one entry per vocabulary term

    @property
    def avgdl(self) -> float:
        return self.total_len / self.n_docs if self.n_docs else 0.0

    def __add__(self, other: BM25Stats) -> BM25Stats:
        v = max(len(self.df), len(other.df))
        df = np.zeros(v, dtype=np.int64)
        df[: len(self.df)] += self.df
        df[: len(other.df)] += other.df
        return BM25Stats(self.n_docs + other.n_docs, self.total_len + other.total_len, df)

    def idf(self, variant: str = "lucene") -> np.ndarray:
        """Each term's idf under a BM25 variant (see :class:`~retrievo.config.BM25Config`); terms in no live
        document get 0 under ``bm25+``, whose formula divides by the document frequency."""
        df = self.df.astype(np.float64)
        if variant == "bm25l":
            return np.log((self.n_docs + 1.0) / (df + 0.5))
        if variant == "bm25+":
            with np.errstate(divide="ignore"):
                return np.where(df > 0, np.log((self.n_docs + 1.0) / np.maximum(df, 1.0)), 0.0)
        return np.log1p((self.n_docs - df + 0.5) / (df + 0.5))


def compute_stats(
    indptr: np.ndarray, terms: np.ndarray, doclen: np.ndarray, live: np.ndarray, vocab_size: int
) -> BM25Stats:
    """BM25 statistics over the rows of a document-major CSR where ``live`` is true."""
    live = np.asarray(live, dtype=bool)
    lengths = np.diff(indptr)
    posting_live = np.repeat(live, lengths)
    df = np.bincount(np.asarray(terms)[posting_live], minlength=vocab_size).astype(np.int64)
    return BM25Stats(int(live.sum()), int(np.asarray(doclen, dtype=np.int64)[live].sum()), df)


@nb.njit(nogil=True, cache=True)
def term_at_a_time(q_indptr, q_terms, q_w, p_indptr, p_docs, p_w, allowed, use_allowed, n_rows, k):  # pragma: no cover - compiled
    """Exact top-k by ``Σ q_w · p_w`` over the query terms' postings, for a batch of queries (CSR).

    BM25 (precomputed impacts, query weights 1) and learned sparse vectors (SPLADE) both use it. One
    accumulator serves the whole batch: :func:`accumulator_topk` leaves it zeroed after each query.
    """
    nq = len(q_indptr) - 1
    out_idx = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    counts = np.zeros(nq, dtype=np.int64)
    acc = np.zeros(n_rows, dtype=np.float32)
    h_scores = np.empty(k, dtype=np.float32)
    h_idx = np.empty(k, dtype=np.int64)
    for qi in range(nq):
        touched = 0
        for j in range(q_indptr[qi], q_indptr[qi + 1]):
            t = q_terms[j]
            qw = q_w[j]
            touched += p_indptr[t + 1] - p_indptr[t]
            for p in range(p_indptr[t], p_indptr[t + 1]):
                acc[p_docs[p]] += qw * p_w[p]
        size = accumulator_topk(acc, touched, q_indptr[qi], q_indptr[qi + 1], q_terms, p_indptr, p_docs, allowed,
                                use_allowed, h_scores, h_idx, k)
        heap_drain_sorted(h_scores, h_idx, size, out_scores[qi], out_idx[qi])
        counts[qi] = size
    return out_idx, out_scores, counts


def term_frequencies(
    token_lists: Iterable[list[str]], vocab: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Document-major term frequencies of analysed documents; new terms are added to ``vocab``.

    Returns:
        ``(indptr, terms, counts, doclen)``: CSR rows of (term id, frequency) and each document's length.
    """
    indptr = [0]
    terms_l: list[np.ndarray] = []
    counts_l: list[np.ndarray] = []
    doclen: list[int] = []
    for tokens in token_lists:
        tf: dict[int, int] = {}
        for t in tokens:
            tid = vocab.get(t)
            if tid is None:
                tid = vocab[t] = len(vocab)
            tf[tid] = tf.get(tid, 0) + 1
        terms_l.append(np.fromiter(tf.keys(), dtype=np.int32, count=len(tf)))
        counts_l.append(np.fromiter(tf.values(), dtype=np.int32, count=len(tf)))
        indptr.append(indptr[-1] + len(tf))
        doclen.append(len(tokens))
    empty = np.zeros(0, np.int32)
    return (
        np.asarray(indptr, dtype=np.int64),
        np.concatenate(terms_l) if terms_l else empty,
        np.concatenate(counts_l) if counts_l else empty,
        np.asarray(doclen, dtype=np.int32),
    )


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrievo-bm25")


class InvertedIndex:
    """Term-major postings of BM25 impacts over a collection's live documents.

    Args:
        indptr, terms, counts, doclen: the document-major term-frequency CSR of every row (live or not),
            rows numbered globally across segments.
        live: which rows are live documents.
        vocab_size: number of terms in the vocabulary.
        config: BM25 parameters.
        stats: collection statistics to score with; default: those of the live rows (pass the global
            statistics when this index is one shard of many).
    """

    def __init__(
        self,
        indptr: np.ndarray,
        terms: np.ndarray,
        counts: np.ndarray,
        doclen: np.ndarray,
        live: np.ndarray,
        vocab_size: int,
        config: BM25Config,
        stats: BM25Stats | None = None,
    ) -> None:
        self.config = config
        self.n_rows = len(doclen)
        self.vocab_size = vocab_size
        live = np.asarray(live, dtype=bool)
        self.stats = stats if stats is not None else compute_stats(indptr, terms, doclen, live, vocab_size)
        idf = self.stats.idf(config.variant)
        lengths = np.diff(indptr)
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), lengths)
        keep = live[rows]
        rows = rows[keep]
        t = np.asarray(terms)[keep].astype(np.int64)
        tf = np.asarray(counts)[keep].astype(np.float64)
        k1, b, delta = config.k1, config.b, config.lower_bound
        avgdl = self.stats.avgdl or 1.0
        length = 1.0 - b + b * np.asarray(doclen, dtype=np.float64)[rows] / avgdl
        if config.variant == "bm25l":
            c = tf / length
            weight = (k1 + 1.0) * (c + delta) / (k1 + c + delta)
        elif config.variant == "bm25+":
            weight = (k1 + 1.0) * tf / (k1 * length + tf) + delta
        else:
            weight = tf / (tf + k1 * length)
        impacts = (idf[t] * weight).astype(np.float32)
        csc = sp.csc_matrix((impacts, (rows, t)), shape=(self.n_rows, vocab_size))
        csc.sort_indices()
        self.p_indptr = csc.indptr.astype(np.int64)
        self.p_docs = csc.indices.astype(np.int32)
        self.p_impacts = csc.data.astype(np.float32)

    @classmethod
    def from_impacts(cls, p_indptr: np.ndarray, p_docs: np.ndarray, p_impacts: np.ndarray, n_rows: int,
                     config: BM25Config, stats: BM25Stats) -> InvertedIndex:
        """An index over precomputed term-major impacts (``p_indptr`` over the vocabulary; e.g. BM25F's)."""
        self = object.__new__(cls)
        self.config, self.n_rows, self.vocab_size, self.stats = config, int(n_rows), len(p_indptr) - 1, stats
        self.p_indptr = np.asarray(p_indptr, dtype=np.int64)
        self.p_docs = np.asarray(p_docs, dtype=np.int32)
        self.p_impacts = np.asarray(p_impacts, dtype=np.float32)
        return self

    @property
    def nbytes(self) -> int:
        return self.p_indptr.nbytes + self.p_docs.nbytes + self.p_impacts.nbytes

    @staticmethod
    def _queries_csr(queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # repeated terms are simply visited twice by the kernel, which adds their impacts twice
        if len(queries) == 1:  # one query (a served search): no concatenation
            terms = np.asarray(queries[0]).astype(np.int64, copy=False)
            return np.array([0, len(terms)], dtype=np.int64), terms
        lengths = np.fromiter((len(q) for q in queries), dtype=np.int64, count=len(queries))
        indptr = np.zeros(len(queries) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        terms = np.concatenate(queries).astype(np.int64, copy=False) if len(queries) else np.zeros(0, np.int64)
        return indptr, terms

    def search(
        self,
        queries: list[np.ndarray],
        k: int,
        allowed: np.ndarray | None = None,
        threads: int | None = None,
        weights: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k rows for each query (an array of term ids; repeated terms count repeatedly).

        Args:
            queries: term ids per query; ids outside the vocabulary must have been dropped.
            k: results per query.
            allowed: optional boolean mask over rows; only rows where it is true are returned.
            weights: optional weight per query term (as ``queries``; e.g. an expanded query), default 1.
            threads: worker threads for a batch (default: all cores). The compiled kernel releases the GIL,
                so plain Python threads run it in parallel; numba's OpenMP layer is avoided on purpose,
                because its spinning threads slow down PyTorch's own OpenMP pool in the same process.

        Returns:
            ``(rows, scores, counts)`` shaped ``(n, k)``, ``(n, k)``, ``(n,)``; padding rows are -1/-inf.
        """
        k = max(int(k), 1)
        use_allowed = allowed is not None
        mask = np.asarray(allowed, dtype=np.bool_) if use_allowed else np.zeros(1, dtype=np.bool_)
        threads = max(1, int(threads or _CPUS))
        nq = len(queries)
        if weights is not None and (len(weights) != nq or any(
                np.shape(w) != np.shape(q) for w, q in zip(weights, queries, strict=True))):
            raise ValueError("weights must give one weight per query term")
        if threads == 1 or nq < 32:
            return self._run(queries, k, mask, use_allowed, weights)
        bounds = np.linspace(0, nq, min(threads, nq) + 1).astype(int)
        parts = list(_pool(threads).map(
            lambda ab: self._run(queries[ab[0]:ab[1]], k, mask, use_allowed,
                                 None if weights is None else weights[ab[0]:ab[1]]),
            zip(bounds[:-1], bounds[1:], strict=True)
        ))
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    def _run(self, queries, k, mask, use_allowed, weights=None):
        q_indptr, q_terms = self._queries_csr(queries)
        q_w = (np.ones(len(q_terms), dtype=np.float32) if weights is None
               else np.concatenate([np.asarray(w, np.float32) for w in weights]) if len(weights)
               else np.zeros(0, np.float32))
        return term_at_a_time(
            q_indptr, q_terms, q_w, self.p_indptr, self.p_docs, self.p_impacts, mask, use_allowed, self.n_rows, k,
        )

    def score_unseen(self, queries: list[np.ndarray], indptr: np.ndarray, terms: np.ndarray, counts: np.ndarray,
                     doclen: np.ndarray) -> np.ndarray:
        """``(n_queries, n_docs)`` BM25 scores of documents this index does not hold (their term-frequency CSR,
        terms in its vocabulary; ``doclen`` counts every token), scored with this index's statistics and settings
        — what each would score here if it were added without changing them."""
        n = len(doclen)
        out = np.zeros((len(queries), n), dtype=np.float32)
        if not n or not len(queries):
            return out
        part = InvertedIndex(indptr, terms, counts, doclen, np.ones(n, dtype=bool), self.vocab_size, self.config,
                             stats=self.stats)
        rows, scores, _ = part.search(queries, n)
        hit = rows >= 0
        out[np.nonzero(hit)[0], rows[hit]] = scores[hit]
        return out

    def get_scores(self, query: np.ndarray) -> np.ndarray:
        """BM25 score of every row for one query (for tests and reranking)."""
        scores = np.zeros(self.n_rows, dtype=np.float64)
        u, c = np.unique(np.asarray(query, dtype=np.int64), return_counts=True)
        for t, w in zip(u, c, strict=True):
            s, e = self.p_indptr[t], self.p_indptr[t + 1]
            np.add.at(scores, self.p_docs[s:e], w * self.p_impacts[s:e].astype(np.float64))
        return scores
