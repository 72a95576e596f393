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

import numpy as np
from scipy import stats

from retrievo.eval.measures import DEFAULT_MEASURES, per_query

__all__ = ["MeasureComparison", "compare_runs", "randomization_test"]


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
