"""Training data from several judged sources, mixed by weights.

A :class:`TrainingSource` is a set of judged queries over its own collection (its documents, its negatives mined
there by :mod:`retrievo.training.judged`): the train split of another BEIR folder, say. :func:`mix_rows` draws a
training set from every source's rows in proportion to the sources' weights, whole queries at a time (seeded);
a source asked for more rows than it has is repeated, one asked for fewer is sampled.

Weights learnt from a development split (Inf-DDS, Doshi et al., 2026: a sampling policy rewarded by each source's
influence on development queries) were prototyped and are not offered: with the bundled MiniLM on SciFact titles,
none of three rewards — the alignment of a source's gradient with the development gradient, the development
loss after a proxy run of 8-16 optimiser steps on the source, and the development ranking after such a run —
reliably ranked a source of mismatched (query, document) pairs below correct ones at the scale a CPU affords.

Why by hand: sentence-transformers samples datasets round-robin or proportionally to their size; weights per
source, whole queries and the rows are retrievo's (:mod:`retrievo.training.dense`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError

__all__ = ["TrainingSource", "mix_rows"]

Row = tuple[str, str, list[str], list[int]]  # query text, positive text, negative texts, [query id, document ids...]


@dataclass
class TrainingSource:
    """Judged queries over their own collection (an open :class:`~retrievo.store.collection.Collection` holding
    the judged documents), with a mixing weight (> 0)."""

    collection: Any
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    weight: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.weight) and self.weight > 0):
            raise InvalidInputError(f"training source {self.name or self.collection.path}: weight must be > 0, "
                                    f"got {self.weight}")
        self.name = self.name or str(getattr(self.collection, "path", "source"))


def mix_rows(rows_by_source: Sequence[list[Row]], weights: Sequence[float], total: int,
             rng: np.random.Generator) -> tuple[list[Row], list[int]]:
    """``total`` rows (about) drawn from the sources in proportion to ``weights``, whole queries at a time; returns
    the rows (shuffled) and how many came from each source."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(rows_by_source) or not (w > 0).all():
        raise InvalidInputError(f"mix: one weight > 0 per source is needed, got {list(weights)}")
    out: list[Row] = []
    counts = []
    for rows, share in zip(rows_by_source, w / w.sum(), strict=True):
        want = int(round(share * total))
        by_query: dict[int, list[Row]] = {}
        for r in rows:
            by_query.setdefault(r[3][0], []).append(r)
        groups = [by_query[q] for q in sorted(by_query)]
        taken: list[Row] = []
        while groups and len(taken) < want:  # whole queries; a source smaller than its share is repeated
            for i in rng.permutation(len(groups)):
                if len(taken) >= want:
                    break
                taken += groups[int(i)]
        out += taken
        counts.append(len(taken))
    return [out[int(i)] for i in rng.permutation(len(out))], counts
