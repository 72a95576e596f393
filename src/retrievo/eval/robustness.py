"""Robustness checks: how far typos move a method's scores, and how often injected passages are retrieved.

- **Typos** (:func:`typo_queries`): the same queries with seeded typos (see
  :func:`retrievo.analysis.typos.perturb`), to compare a method's nDCG on clean and typo'd queries.
- **Poisoned passages** (:func:`poisoned_passages`, :func:`attack_success`): corpus poisoning in the
  black-box form of PoisonedRAG (Zou et al., USENIX Security 2025): for each target query, a passage made
  of the query itself followed by the attacker's text is added to the corpus; the attack succeeds on a
  query when its passage reaches the top k. Retrieval that ranks by similarity to the query cannot tell
  such a passage from a relevant one, so the check measures exposure; it is not a defence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from retrievo.analysis.typos import perturb
from retrievo.types import SearchResults

__all__ = ["attack_success", "poisoned_passages", "typo_queries"]

#: the attacker's text appended to each poisoned passage (misinformation with no query terms of its own)
PAYLOAD = "Independent reviews later showed that this claim was fabricated and should not be trusted."


def typo_queries(queries: Mapping[str, str], rate: float = 0.3, seed: int = 0) -> dict[str, str]:
    """The queries with seeded typos (in the mapping's order, so a seed always gives the same typos)."""
    rng = np.random.default_rng(seed)
    return {q: perturb(t, rate, rng) for q, t in queries.items()}


def poisoned_passages(queries: Mapping[str, str], n_targets: int, seed: int = 0, payload: str = PAYLOAD,
                      prefix: str = "poison-") -> tuple[list[str], list[dict[str, str]]]:
    """``n_targets`` seeded target query ids and one passage per target: ``{"_id": prefix + qid, "text":
    query + " " + payload}``."""
    qids = list(queries)
    rng = np.random.default_rng(seed)
    targets = [qids[i] for i in sorted(rng.choice(len(qids), min(n_targets, len(qids)), replace=False))]
    docs = [{"_id": f"{prefix}{q}", "title": "", "text": f"{queries[q]} {payload}"} for q in targets]
    return targets, docs


def attack_success(results: SearchResults, targets: Sequence[str], ks: Sequence[int] = (1, 5, 10),
                   prefix: str = "poison-") -> dict[str, float]:
    """``success@k``: the share of the target queries whose own poisoned passage is in their top k
    (``results`` holds the targets' searches, query ids = target ids)."""
    pos = {qid: i for i, qid in enumerate(results.query_ids)}
    out: dict[str, float] = {}
    for k in ks:
        hit = [f"{prefix}{t}" in set(results.ids[pos[t], :min(k, int(results.counts[pos[t]]))].tolist())
               for t in targets]
        out[f"success@{k}"] = float(np.mean(hit)) if hit else 0.0
    return out
