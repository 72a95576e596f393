"""Explanations: where each result stood in every list a search made (``SearchRequest(explain=True)``).

A search makes one ranked list per signal, then each active stage turns lists into new ones (feedback per
signal, fusion into one, rerank, collapse, cut-off). With ``explain`` the searcher keeps each of those lists
and, for every returned hit, reports its 1-based rank and score in each of them — ``None`` where the hit was
not in that list (e.g. BM25 never retrieved a document that dense found). Keys are the signal names for the
retrieval lists, then the stage's name (``"fusion"``, ``"rerank"``…), or ``"<stage>:<signal>"`` for a stage
that keeps one list per signal (feedback over hybrid: ``"feedback:bm25"``, ``"feedback:dense"``)::

    {"bm25": {"rank": 3, "score": 14.2}, "dense": {"rank": 1, "score": 0.71}, "fusion": {"rank": 1, "score": 0.93}}

So a user sees why a hit ranks where it does (a strong dense match that BM25 ranked 40th, a reranker that
moved it up) without re-running each signal alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.signals.base import Candidates

__all__ = ["Trace"]


class Trace:
    """The lists of one search, in the order they were made."""

    def __init__(self) -> None:
        self.lists: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def record(self, stage: str | None, lists: dict[str, Candidates]) -> None:
        """Keep ``lists`` (by name) as the output of ``stage`` (``None``: the signals' retrieval)."""
        for name, c in lists.items():
            label = name if stage is None else stage if len(lists) == 1 else f"{stage}:{name}"
            self.lists.append((label, np.array(c.rows, copy=True), np.array(c.scores, copy=True),
                               np.array(c.counts, copy=True)))

    def explain(self, rows: np.ndarray, counts: np.ndarray) -> tuple[list[dict[str, Any]], ...]:
        """Per query, per returned hit (``rows[i, :counts[i]]``): ``{label: {"rank", "score"} | None}``."""
        out = []
        for i in range(len(counts)):
            hits = [int(r) for r in rows[i, :int(counts[i])]]
            per_hit: list[dict[str, Any]] = [{} for _ in hits]
            for label, lrows, lscores, lcounts in self.lists:
                n = int(lcounts[i])
                at = {int(r): j for j, r in enumerate(lrows[i, :n])}
                for h, row in zip(per_hit, hits, strict=True):
                    j = at.get(row)
                    h[label] = None if j is None else {"rank": j + 1, "score": float(lscores[i, j])}
            out.append(per_hit)
        return tuple(out)
