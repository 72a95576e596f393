"""Judged queries for training: checked against a collection, split into training and held-out queries, with
hard negatives mined by the collection's own signals.

Shared by everything that learns from relevance judgements (the reranker trainer, the dense fine-tuner).
Every check runs before anything is trained or written, and an error names what is wrong: a split with no
judgements, judged queries without a text, judged documents the collection does not hold.

Negatives are mined with the collection's own retrieval (``hybrid`` — BM25 and dense fused — when it stores
dense vectors, else ``bm25``), not with an embedding model alone as sentence-transformers' ``mine_hard_negatives``
does: the reranker will be asked to reorder exactly such lists, so it should learn on them. Any document a
query has a judgement for (relevant or not) is never taken as its negative; negatives are drawn at random from
the top ``depth`` unjudged results (seeded), so that the single hardest results — the likeliest unjudged
relevant ones — do not dominate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError

__all__ = ["JudgedQuery", "JudgedSet", "judged_set"]


@dataclass
class JudgedQuery:
    qid: str
    text: str
    positives: list[str]  # relevant document ids (relevance > 0), best first
    judged: set[str]  # every document judged for this query (relevant or not)
    ranked: list[str]  # the first stage's top ``depth`` ids
    negatives: list[str]  # sampled from ``ranked``, none of them judged


@dataclass
class JudgedSet:
    train: list[JudgedQuery]
    val: list[JudgedQuery]
    method: str
    depth: int
    texts: dict[str, str]  # document id -> the text a reranker sees (title and text)

    @property
    def n_positive_pairs(self) -> int:
        return sum(len(q.positives) for q in self.train)


def _names(ids: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def judged_set(collection: Any, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], *,
               what: str = "training", method: str | None = None, depth: int = 30, negatives: int = 7,
               val_queries: int = 40, seed: int = 0, show_progress: bool = False) -> JudgedSet:
    """Check judged ``queries`` / ``qrels`` against ``collection`` and mine each query's negatives.

    Args:
        collection: an open :class:`~retrievo.store.collection.Collection` holding the judged documents.
        queries: ``{query_id: text}``; every judged query needs one.
        qrels: ``{query_id: {doc_id: relevance}}``; relevance > 0 is relevant.
        what: the name errors start with (the command).
        method: the first stage that mines negatives (default ``hybrid`` if the collection has dense vectors,
            else ``bm25``).
        depth: results per query the negatives are drawn from.
        negatives: negatives per query.
        val_queries: judged queries held out (seeded) to choose the best checkpoint on; never trained on.
        seed: sampling seed.

    Raises:
        InvalidInputError: no judged query; judged queries with no text; judged documents not in the collection;
            no relevant judgement; too few queries to hold some out.
    """
    from retrievo.request import SearchRequest

    if not qrels:
        raise InvalidInputError(f"{what}: the split has no judged queries")
    no_text = [q for q in qrels if q not in queries]
    if no_text:
        raise InvalidInputError(f"{what}: {len(no_text)} judged queries have no text in the queries file: "
                                f"{_names(no_text)}")
    snap = collection.snapshot()
    row_of = {snap.ids[r]: int(r) for r in np.flatnonzero(snap.live)}
    unknown = sorted({d for judged in qrels.values() for d in judged if d not in row_of})
    if unknown:
        raise InvalidInputError(f"{what}: {len(unknown)} judged documents are not in {collection.path}: "
                                f"{_names(unknown)} (index the folder the judgements are about)")
    qids = [q for q in qrels if any(v > 0 for v in qrels[q].values())]
    if not qids:
        raise InvalidInputError(f"{what}: the split judges no document relevant (every relevance is <= 0)")
    if len(qids) < 2 * max(1, val_queries) and val_queries:
        val_queries = len(qids) // 4
        if val_queries < 1:
            raise InvalidInputError(f"{what}: {len(qids)} queries with a relevant document; at least 4 are needed "
                                    "(some are held out to choose the best model)")
    if depth < 1 or negatives < 0:
        raise InvalidInputError(f"{what}: depth must be >= 1 and negatives >= 0, got {depth} and {negatives}")
    if method is None:
        method = "hybrid" if "dense" in collection.signals else "bm25"
    rng = np.random.default_rng(seed)
    texts = [queries[q] for q in qids]
    ranked: list[list[int]] = []
    searcher = collection.searcher
    chunk = 64
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc=f"mining negatives ({method}, top {depth})", unit="query")
    for s in range(0, len(texts), chunk):
        res = searcher.search(texts[s:s + chunk], SearchRequest(method=method, k=depth), snapshot=snap)
        ranked += [res.rows[i, :res.counts[i]].tolist() for i in range(len(res.rows))]
        if bar is not None:
            bar.update(len(res.rows))
    if bar is not None:
        bar.close()
    out: list[JudgedQuery] = []
    for qid, text, rows in zip(qids, texts, ranked, strict=True):
        judged = set(qrels[qid])
        ids = [snap.ids[r] for r in rows]
        pos = sorted((d for d, v in qrels[qid].items() if v > 0), key=lambda d: -qrels[qid][d])
        pool = [d for d in ids if d not in judged]
        pick = sorted(rng.choice(len(pool), size=min(negatives, len(pool)), replace=False).tolist()) if pool else []
        out.append(JudgedQuery(qid, text, pos, judged, ids, [pool[i] for i in pick]))
    order = rng.permutation(len(out))
    val = [out[i] for i in sorted(order[:val_queries])]
    train = [out[i] for i in sorted(order[val_queries:])]
    wanted = sorted({d for q in out for d in (*q.positives, *q.ranked, *q.negatives)}, key=lambda d: row_of[d])
    docs = collection.documents_at([row_of[d] for d in wanted], snap)
    return JudgedSet(train, val, method, depth,
                     {d: doc.content(("title", "text")) for d, doc in zip(wanted, docs, strict=True)})
