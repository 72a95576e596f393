"""Effectiveness measures, computed by ir-measures (pytrec_eval / trec_eval underneath), never by hand."""

from __future__ import annotations

from collections.abc import Mapping

import ir_measures

__all__ = ["DEFAULT_MEASURES", "evaluate", "per_query"]

# name in our JSON output -> ir-measures measure
DEFAULT_MEASURES: dict[str, str] = {"ndcg@10": "nDCG@10", "recall@100": "R@100", "mrr@10": "RR@10"}


def _parse(measures: Mapping[str, str]) -> dict[str, object]:
    return {name: ir_measures.parse_measure(m) for name, m in measures.items()}


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Mapping[str, str] = DEFAULT_MEASURES,
) -> dict[str, float]:
    """Mean of each measure over the queries of ``qrels`` (a query with no results scores 0)."""
    parsed = _parse(measures)
    pq = per_query(run, qrels, measures)
    n = len(qrels)
    return {name: (sum(pq[name].values()) / n if n else 0.0) for name in parsed}


def per_query(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Mapping[str, str] = DEFAULT_MEASURES,
) -> dict[str, dict[str, float]]:
    """``{measure name: {query id: value}}`` for every query in ``qrels`` (missing queries get 0)."""
    parsed = _parse(measures)
    by_measure = {m: name for name, m in parsed.items()}
    out: dict[str, dict[str, float]] = {name: {qid: 0.0 for qid in qrels} for name in parsed}
    run = {q: dict(d) for q, d in run.items() if d}
    for metric in ir_measures.iter_calc(list(parsed.values()), qrels, run):
        name = by_measure[metric.measure]
        if metric.query_id in out[name]:
            out[name][metric.query_id] = float(metric.value)
    return out
