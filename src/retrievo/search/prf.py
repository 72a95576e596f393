"""Pseudo-relevance feedback: RM3 query expansion for BM25 and Rocchio for dense query vectors.

Both take the first search's top documents as relevant and search again with a query moved towards them.

RM3 (Abdul-Jaleel et al., "UMass at TREC 2004"; the variant and defaults of Anserini/Pyserini, the
reference implementation for BM25 baselines on BEIR): each feedback document's term frequencies are
scaled to sum 1 and weighted by the document's BM25 score; terms in more than 10 % of the documents are
left out; the ``fb_terms`` heaviest terms of the sum, scaled to sum 1, are interpolated with the original
query (its term counts scaled to sum 1) as ``original_weight · q + (1 − original_weight) · rm``. The
expanded query is searched with those weights (the BM25 kernel takes a weight per query term).

Rocchio for dense retrieval (Rocchio 1971; applied to dense retrievers by Li et al., "Pseudo Relevance
Feedback with Deep Language Models and Dense Retrievers: Successes and Pitfalls", TOIS 2023):
``q' = alpha · q + beta · mean(top dense_fb_docs document vectors)``, rescaled to the original query's
norm so that scores keep their scale for fusion.

Written here rather than taken from a library: Pyserini's RM3 runs inside Lucene (Java), and both methods
are a few array operations over data the collection already holds (term frequencies per document,
stored vectors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from retrievo.search.stages import Stage

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import SearchRequest
    from retrievo.signals.base import Candidates, SearchContext, Signal

__all__ = ["FeedbackStage", "rm3_query", "rocchio"]


def rm3_query(
    query_terms: np.ndarray,
    fb_rows: np.ndarray,
    fb_scores: np.ndarray,
    doc_terms: Callable[[int], tuple[np.ndarray, np.ndarray]],
    doc_freq: np.ndarray,
    n_docs: int,
    fb_terms: int = 10,
    original_weight: float = 0.5,
    max_df: float = 0.1,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The RM3 expansion of one query.

    Args:
        query_terms: the query's term ids (repeats count).
        fb_rows: the feedback documents (rows), best first.
        fb_scores: their first-pass scores (the relevance model's document weights).
        doc_terms: ``row -> (term ids, counts)`` of a document.
        doc_freq: documents per term id.
        n_docs: documents in the collection (for the ``max_df`` filter).
        fb_terms: expansion terms kept.
        original_weight: weight of the original query in the interpolation, in ``[0, 1]``.
        max_df: terms in more than this fraction of the documents are not expansion terms.
        order: where each term id comes when two candidate terms weigh the same (default: the id itself); the
            collections pass each term's alphabetical rank, so that one collection and its shards, whose
            vocabularies number the terms differently, expand a query with the same terms.

    Returns:
        ``(term ids, weights)`` of the expanded query, weights summing to 1 (the original query alone when
        there is no feedback).
    """
    q_ids, q_counts = np.unique(np.asarray(query_terms, dtype=np.int64), return_counts=True)
    q_w = q_counts / max(q_counts.sum(), 1)
    if len(fb_rows) == 0 or original_weight >= 1.0:
        return q_ids, q_w.astype(np.float32)
    acc: dict[int, float] = {}
    limit = max_df * max(n_docs, 1)
    for row, score in zip(fb_rows, fb_scores, strict=True):
        terms, counts = doc_terms(int(row))
        total = float(counts.sum())
        if total <= 0 or not score > 0:
            continue
        keep = doc_freq[terms] <= limit
        for t, c in zip(terms[keep].tolist(), counts[keep].tolist(), strict=True):
            acc[t] = acc.get(t, 0.0) + float(score) * c / total
    if not acc:
        return q_ids, q_w.astype(np.float32)
    ids = np.fromiter(acc.keys(), dtype=np.int64, count=len(acc))
    w = np.fromiter(acc.values(), dtype=np.float64, count=len(acc))
    tie = ids if order is None else np.asarray(order)[ids]
    top = np.lexsort((tie, -w))[:fb_terms]  # heaviest first, ties to the term that comes first
    ids, w = ids[top], w[top] / w[top].sum()
    all_ids = np.union1d(q_ids, ids)
    out = np.zeros(len(all_ids), dtype=np.float64)
    out[np.searchsorted(all_ids, q_ids)] += original_weight * q_w
    out[np.searchsorted(all_ids, ids)] += (1.0 - original_weight) * w
    return all_ids, out.astype(np.float32)


def rocchio(query_vectors: np.ndarray, fb_vectors: list[np.ndarray], alpha: float = 1.0,
            beta: float = 0.75) -> np.ndarray:
    """``alpha · q + beta · mean(feedback vectors)`` per query, rescaled to ``|q|``; a query without
    feedback documents is kept as it is."""
    q = np.asarray(query_vectors, dtype=np.float32)
    out = q.copy()
    for i, fb in enumerate(fb_vectors):
        if len(fb) == 0:
            continue
        v = alpha * q[i] + beta * np.asarray(fb, dtype=np.float32).mean(axis=0)
        norm = float(np.linalg.norm(v))
        if norm > 0:
            out[i] = v * (float(np.linalg.norm(q[i])) / norm)
    return out


class FeedbackStage(Stage):
    """The stage of pseudo-relevance feedback: each signal with a :meth:`~retrievo.signals.base.Signal.feedback`
    (BM25: RM3, dense: Rocchio) first retrieves only its feedback documents, then searches again with the
    moved query at its full depth; the other signals (SPLADE) keep their lists."""

    name = "feedback"
    order = 100

    def active(self, request: SearchRequest) -> bool:
        return request.prf is not None

    def first_depth(self, request: SearchRequest, signal: Signal, depth: int) -> int:
        fb = signal.feedback_depth(request.prf) if request.prf is not None else None
        return depth if fb is None else fb

    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        prf = ctx.request.prf
        depth = ctx.request.depth()
        out = dict(lists)
        for name, sig in ctx.signals.items():
            if prf is not None and name in lists and sig.feedback_depth(prf) is not None:
                out[name] = sig.feedback(ctx, lists[name], depth, prf)
        return out
