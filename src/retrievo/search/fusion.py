"""Rank fusion of several result lists.

- Reciprocal rank fusion (Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and
  individual Rank Learning Methods", SIGIR 2009): ``score(d) = Σ_i w_i / (k + rank_i(d))``, ranks from 1.
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

__all__ = ["FusionStage", "convex", "fuse", "rrf"]

Ranked = tuple[np.ndarray, np.ndarray, int]  # (keys, scores, count) of one query, best first


def rrf(lists: Sequence[Ranked], weights: Sequence[float], k: float = 60.0) -> dict[int, float]:
    """Reciprocal rank fusion of one query's ranked lists; returns ``{key: fused score}``."""
    fused: dict[int, float] = {}
    for (keys, _scores, n), w in zip(lists, weights, strict=True):
        if w == 0:
            continue
        for rank in range(n):
            key = int(keys[rank])
            fused[key] = fused.get(key, 0.0) + w / (k + rank + 1)
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
    """Fuse one query's lists and return its top-k ``(keys, scores, count)`` (ties: lower key first)."""
    if len(weights) != len(lists):
        raise ValueError(f"fusion needs one weight per signal: {len(lists)} signals, {len(weights)} weights")
    fused = rrf(lists, weights, rrf_k) if method == "rrf" else convex(lists, weights)
    items = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    keys = np.array([kv[0] for kv in items], dtype=np.int64)
    scores = np.array([kv[1] for kv in items], dtype=np.float32)
    return keys, scores, len(items)


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
        nq, k = ctx.n_queries, req.k
        out = Candidates.empty(nq, k)
        ranked = [lists[s] for s in req.signals]
        for i in range(nq):
            keys, sc, n = fuse([c.query(i) for c in ranked], weights, k, req.fusion.method, req.fusion.rrf_k)
            out.rows[i, :n], out.scores[i, :n], out.counts[i] = keys, sc, n
        return {"fused": out}
