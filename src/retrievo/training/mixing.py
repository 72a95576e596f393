"""Training data from several judged sources, mixed by weights.

A :class:`TrainingSource` is a set of judged queries over its own collection (its documents, its negatives mined
there by :mod:`retrievo.training.judged`): the train split of another BEIR folder, say. :func:`mix_rows` draws a
training set from every source's rows in proportion to the sources' weights, whole queries at a time (seeded);
a source asked for more rows than it has is repeated, one asked for fewer is sampled.

With ``learn_weights`` the weights are learnt from the development queries (the held-out judged queries of the
collection being trained), after Inf-DDS (Doshi et al., 2026: a sampling policy rewarded by each source's
influence on development queries), simple version: one step of the policy with a cheap proxy for the model.
:func:`source_rewards` fits a linear query adapter (:func:`~retrievo.search.adapters.fit_query_adapter`, the
frozen model's query vectors moved towards their relevant documents, seconds on a CPU) to each source's rows alone
and measures how much it moves the development queries' nDCG@10 (their first-stage candidates ranked by the
adapted query vectors, against the unadapted ones); :func:`learnt_weights` multiplies each given weight by
``exp(reward / temperature)`` (an exponentiated-gradient step from the given weights). Only the ratios matter:
a source is scaled down by ``exp(-(best reward - its reward) / temperature)``, so one whose pairs teach the wrong
thing gets a weight near zero and one that helps less than the best loses part of its share. On SciFact (the 40
held-out training queries, the bundled MiniLM, three seeds; ``benchmarks/bench_mixing.py``, RESULTS.md "mixing"):
SciFact's own training queries +0.141 to +0.163, ToolLens's −0.028 to +0.007, SciFact's with their judgements
shuffled between queries −0.193 to −0.203, so weights 1 / 0.03–0.07 / ≤ 0.001. Rewarding
sources by the full model instead — the alignment of a source's gradient with the development gradient, or the
development loss or ranking after 8–16 optimiser steps on it — was tried first and did not rank the shuffled
source below correct ones at the scale a CPU affords.

Why by hand: sentence-transformers samples datasets round-robin or proportionally to their size; weights per
source, whole queries, the rows (:mod:`retrievo.training.dense`) and the proxy reward are retrievo's (no library
ships Inf-DDS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError

__all__ = ["TrainingSource", "development_queries", "learnt_weights", "mix_rows", "source_rewards"]

PROXY_EPOCHS = 10  # epochs of the proxy adapter on one source

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


def development_queries(judged: Any) -> list[tuple[str, list[str], list[bool]]]:
    """The held-out queries of a :class:`~retrievo.training.judged.JudgedSet` as :func:`source_rewards` takes them:
    text, the texts of their first-stage candidates and relevant documents, and which of those are relevant."""
    out = []
    for q in judged.val:
        cands = list(dict.fromkeys([*q.ranked, *q.positives]))
        out.append((q.text, [judged.texts[d] for d in cands], [d in q.positives for d in cands]))
    return out


def source_rewards(rows_by_source: Sequence[list[Row]], dev: Sequence[tuple[str, list[str], list[bool]]],
                   encode_queries: Any, encode_documents: Any, *, max_queries: int = 1000, seed: int = 0,
                   names: Sequence[str] | None = None) -> tuple[list[float], float]:
    """Each source's influence on the development queries through a linear proxy (see the module docstring):
    the change in their mean nDCG@10 when their query vectors are moved by a query adapter fitted to that source's
    rows alone (at most ``max_queries`` of its queries, a seeded sample). ``dev``: per development query, its text,
    its candidates' texts and which of them are relevant. Returns the rewards and the development nDCG@10
    without an adapter."""
    from retrievo.eval.measures import evaluate
    from retrievo.search.adapters import fit_query_adapter

    names = list(names or [f"source {i}" for i in range(len(rows_by_source))])
    dev = [d for d in dev if any(d[2])]
    if len(dev) < 2:
        raise InvalidInputError(f"learnt weights: {len(dev)} development queries with a relevant candidate; 2 are needed")
    rng = np.random.default_rng(seed)
    dq = np.asarray(encode_queries([d[0] for d in dev]), dtype=np.float32)
    cands = [np.asarray(encode_documents(d[1]), dtype=np.float32) for d in dev]
    qrels = {str(i): {str(j): 1 for j, r in enumerate(d[2]) if r} for i, d in enumerate(dev)}

    def dev_ndcg(q: np.ndarray) -> float:  # candidates ranked by the (adapted) query vectors, measured by ir-measures
        run = {str(i): {str(j): float(s) for j, s in enumerate(c @ v)}
               for i, (v, c) in enumerate(zip(q, cands, strict=True))}
        return evaluate(run, qrels, {"ndcg@10": "nDCG@10"})["ndcg@10"]

    base = dev_ndcg(dq)
    rewards = []
    for name, rows in zip(names, rows_by_source, strict=True):
        by_query: dict[int, list[Row]] = {}
        for r in rows:
            by_query.setdefault(r[3][0], []).append(r)
        groups = [by_query[q] for q in sorted(by_query)]
        if len(groups) > max_queries:
            groups = [groups[int(i)] for i in sorted(rng.choice(len(groups), max_queries, replace=False))]
        if len(groups) < 5:
            raise InvalidInputError(f"learnt weights: {name} has {len(groups)} queries with mined negatives; 5 are needed")
        qv = np.asarray(encode_queries([g[0][0] for g in groups]), dtype=np.float32)
        texts = sorted({t for g in groups for r in g for t in (r[1], *r[2])})
        at = {t: i for i, t in enumerate(texts)}
        dv = np.asarray(encode_documents(texts), dtype=np.float32)
        pos = [dv[[at[r[1]] for r in g]] for g in groups]
        neg = [dv[[at[t] for t in g[0][2]]] for g in groups]
        adapter = fit_query_adapter(qv, pos, neg, epochs=PROXY_EPOCHS, val_fraction=0.0, seed=seed)
        rewards.append(dev_ndcg(adapter.apply(dq)) - base)
    return rewards, base


def learnt_weights(weights: Sequence[float], rewards: Sequence[float], temperature: float = 0.05) -> list[float]:
    """``weight · exp(reward / temperature)`` per source, scaled so the largest is 1 (only ratios matter)."""
    if not temperature > 0:
        raise InvalidInputError(f"learnt weights: temperature must be > 0, got {temperature}")
    r = np.asarray(rewards, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64) * np.exp((r - r.max()) / temperature)
    w = np.maximum(w / w.max(), 1e-6)
    return [float(x) for x in w]
