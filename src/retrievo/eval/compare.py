"""Compare two runs on the same queries with paired significance tests.

- Paired two-sided t-test on per-query values (scipy.stats.ttest_rel).
- Paired randomisation (permutation) test of the mean difference, as recommended for IR by Smucker,
  Allan and Carterette, "A Comparison of Statistical Significance Tests for Information Retrieval
  Evaluation", CIKM 2007: randomly swap each query's two values and count how often the absolute mean
  difference is at least the observed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from retrievo.eval.measures import DEFAULT_MEASURES, per_query

__all__ = ["MeasureComparison", "compare_runs", "randomization_test", "result_differences"]


@dataclass(frozen=True)
class MeasureComparison:
    measure: str
    a: float
    b: float
    diff: float
    p_ttest: float
    p_randomization: float
    wins: int
    losses: int
    ties: int


def randomization_test(a: np.ndarray, b: np.ndarray, trials: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of the paired randomisation test of ``mean(a - b) != 0``."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0 or not np.any(d):
        return 1.0
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(trials, len(d)))
    means = np.abs((signs * d).mean(axis=1))
    return float((np.sum(means >= observed - 1e-12) + 1) / (trials + 1))


def compare_runs(
    run_a: Mapping[str, Mapping[str, float]],
    run_b: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Mapping[str, str] = DEFAULT_MEASURES,
    trials: int = 10000,
) -> list[MeasureComparison]:
    """Per-measure means of both runs and paired tests over the queries of ``qrels``."""
    pa = per_query(run_a, qrels, measures)
    pb = per_query(run_b, qrels, measures)
    out = []
    qids = sorted(qrels)
    for name in measures:
        a = np.array([pa[name][q] for q in qids])
        b = np.array([pb[name][q] for q in qids])
        if len(qids) > 1 and np.any(a - b):
            p_t = float(stats.ttest_rel(a, b).pvalue)
        else:
            p_t = 1.0
        out.append(
            MeasureComparison(
                measure=name, a=float(a.mean()), b=float(b.mean()), diff=float((b - a).mean()),
                p_ttest=p_t, p_randomization=randomization_test(a, b, trials),
                wins=int(np.sum(b > a)), losses=int(np.sum(b < a)), ties=int(np.sum(a == b)),
            )
        )
    return out


def result_differences(a: Any, b: Any, atol: float = 1e-5) -> list[str]:
    """Where two :class:`~retrievo.types.SearchResults` of the same queries differ beyond ties (empty: they agree).

    Each position must hold the same score (to ``atol``) and the same id, except among documents whose scores tie
    (within ``atol``): their order, and which of those tied at the last place made the list, is a tie-break's
    choice (one collection and its shards, or two index builds, may choose differently)."""
    problems = []
    for i in range(len(a.query_ids)):
        na, nb = int(a.counts[i]), int(b.counts[i])
        if na != nb:
            problems.append(f"query {i}: {na} vs {nb} results")
            continue
        sa, sb = a.scores[i, :na].astype(np.float64), b.scores[i, :nb].astype(np.float64)
        if not np.allclose(sa, sb, atol=atol, rtol=0):
            problems.append(f"query {i}: scores {sa[:5]} vs {sb[:5]}")
            continue
        last = sa[-1] if na else 0.0
        for j in range(na):
            tied = np.abs(sa - sa[j]) <= atol
            if tied.sum() == 1 and abs(sa[j] - last) > atol and a.ids[i, j] != b.ids[i, j]:
                problems.append(f"query {i} rank {j}: {a.ids[i, j]} vs {b.ids[i, j]}")
        keep = np.abs(sa - last) > atol  # the group tied with the last place may hold different members
        if set(a.ids[i, :na][keep]) != set(b.ids[i, :nb][keep]):
            problems.append(f"query {i}: different documents above the last tie group")
    return problems
