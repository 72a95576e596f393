"""Rank fusion of several result lists.

- Reciprocal rank fusion (Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and
  individual Rank Learning Methods", SIGIR 2009): ``score(d) = Σ_i w_i / (k + rank_i(d))``, ranks from 1;
  documents with equal scores in a list share the best of their ranks (competition ranking, "1224"), so the
  fused scores do not depend on how an index orders ties — one collection and its shards order them
  differently.
- Convex combination of min-max normalised scores (Bruch, Gai and Ingber, "An Analysis of Fusion
  Functions for Hybrid Retrieval", TOIS 2023): ``score(d) = Σ_i w_i · (s_i(d) - min_i) / (max_i - min_i)``,
  where min/max are taken over each list's candidates and a document missing from a list gets 0 there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from retrievo.search.stages import Stage

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import SearchRequest
    from retrievo.signals.base import Candidates, SearchContext

__all__ = ["FusionStage", "competition_ranks", "convex", "fuse", "rrf"]

Ranked = tuple[np.ndarray, np.ndarray, int]  # (keys, scores, count) of one query, best first


def competition_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks from 1 of a list sorted best first, equal scores sharing the best rank of their group."""
    s = np.asarray(scores)
    n = len(s)
    if n == 0:
        return np.zeros(0, np.int64)
    first = np.r_[True, s[1:] != s[:-1]]
    return np.maximum.accumulate(np.where(first, np.arange(n), 0)) + 1


def rrf(lists: Sequence[Ranked], weights: Sequence[float], k: float = 60.0) -> dict[int, float]:
    """Reciprocal rank fusion of one query's ranked lists; returns ``{key: fused score}``."""
    fused: dict[int, float] = {}
    for (keys, scores, n), w in zip(lists, weights, strict=True):
        if w == 0:
            continue
        ranks = competition_ranks(scores[:n])
        for i in range(n):
            key = int(keys[i])
            fused[key] = fused.get(key, 0.0) + w / (k + int(ranks[i]))
    return fused


def convex(lists: Sequence[Ranked], weights: Sequence[float]) -> dict[int, float]:
    """Convex combination of min-max normalised scores; returns ``{key: fused score}``."""
    fused: dict[int, float] = {}
    for (keys, scores, n), w in zip(lists, weights, strict=True):
        if n == 0:
            continue
        s = np.asarray(scores[:n], dtype=np.float64)
        lo, hi = float(s.min()), float(s.max())
        norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
        for key, v in zip(keys[:n].tolist(), norm.tolist(), strict=True):
            fused[key] = fused.get(key, 0.0) + w * v
    return fused


def fuse(
    lists: Sequence[Ranked], weights: Sequence[float], k: int, method: str = "convex", rrf_k: float = 60.0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fuse one query's lists and return its top-k ``(keys, scores, count)`` (ties: lower key first).

    Vectorised: each list's contributions (as :func:`convex` / :func:`rrf` compute them) are added per key in
    the lists' order, in float64, so the result is the same, bit for bit, as summing them in a dict.
    """
    if len(weights) != len(lists):
        raise ValueError(f"fusion needs one weight per signal: {len(lists)} signals, {len(weights)} weights")
    keys_l, parts = [], []
    for (keys, scores, n), w in zip(lists, weights, strict=True):
        if n == 0 or (method == "rrf" and w == 0):
            continue
        if method == "rrf":
            contrib = w / (rrf_k + competition_ranks(scores[:n]).astype(np.float64))
        else:
            s = np.asarray(scores[:n], dtype=np.float64)
            lo, hi = float(s.min()), float(s.max())
            contrib = w * ((s - lo) / (hi - lo) if hi > lo else np.ones_like(s))
        keys_l.append(np.asarray(keys[:n], dtype=np.int64))
        parts.append(contrib)
    if not keys_l:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), 0
    all_keys = np.concatenate(keys_l)
    uniq, inverse = np.unique(all_keys, return_inverse=True)
    fused = np.zeros(len(uniq), dtype=np.float64)
    np.add.at(fused, inverse, np.concatenate(parts))  # in order of occurrence: list 1, then list 2, …
    order = np.lexsort((uniq, -fused))[:k]
    return uniq[order], fused[order].astype(np.float32), len(order)


class FusionStage(Stage):
    """The stage that fuses the lists of several signals into one (the request's fusion config and weights)."""

    name = "fusion"
    order = 200

    def active(self, request: SearchRequest) -> bool:
        return len(request.signals) > 1

    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        from retrievo.signals.base import Candidates

        req = ctx.request
        weights = req.fusion_weights()
        nq, k = ctx.n_queries, req.width()  # a reranker after fusion takes more than k
        out = Candidates.empty(nq, k)
        ranked = [lists[s] for s in req.signals]
        for i in range(nq):
            keys, sc, n = fuse([c.query(i) for c in ranked], weights, k, req.fusion.method, req.fusion.rrf_k)
            out.rows[i, :n], out.scores[i, :n], out.counts[i] = keys, sc, n
        return {"fused": out}
