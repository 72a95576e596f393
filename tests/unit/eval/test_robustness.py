"""Robustness checks: seeded typo'd queries, poisoned passages, and attack success by hand and through a
real collection."""

from __future__ import annotations

import numpy as np

from retrievo import Collection
from retrievo.eval.robustness import (
    PAYLOAD,
    attack_success,
    on_topic_passages,
    poisoned_passages,
    typo_queries,
)
from retrievo.types import SearchResults


def test_typo_queries_are_seeded():
    q = {"a": "microglia immune cells", "b": "cerebral white matter development"}
    assert typo_queries(q, 1.0, seed=1) == typo_queries(q, 1.0, seed=1)
    assert typo_queries(q, 1.0, seed=1) != q and typo_queries(q, 0.0) == q


def test_poisoned_passages_and_attack_success_by_hand():
    q = {f"q{i}": f"query number {i}" for i in range(10)}
    targets, docs = poisoned_passages(q, 3, seed=0)
    assert len(targets) == 3 and targets == poisoned_passages(q, 3, seed=0)[0]
    assert [d["_id"] for d in docs] == [f"poison-{t}" for t in targets]
    assert all(d["text"] == f"{q[t]} {PAYLOAD}" for d, t in zip(docs, targets, strict=True))
    ids = np.array([["poison-x", "d1", "d2"], ["d3", "d4", "poison-y"], ["d5", "poison-x", ""]], dtype=object)
    res = SearchResults(ids=ids, scores=np.zeros((3, 3), np.float32), counts=np.array([3, 3, 2]),
                        query_ids=("x", "y", "z"))
    # x: its passage at rank 1; y: at rank 3; z: another query's passage only
    assert attack_success(res, ["x", "y", "z"], ks=(1, 3)) == {"success@1": 1 / 3, "success@3": 2 / 3}


def test_poisoned_passages_through_a_collection(tmp_path, scifact_small, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(scifact_small[:200])
    coll.commit()
    queries = {d["_id"]: d["title"] for d in scifact_small[:200] if len(d["title"].split()) >= 4}
    targets, docs = poisoned_passages(queries, 20, seed=0)
    coll.add(docs)
    coll.commit()
    res = coll.search([queries[t] for t in targets], k=10, query_ids=targets)
    succ = attack_success(res, targets)
    # a passage that repeats the query is found by BM25 for (almost) every target
    assert succ["success@10"] >= 0.9 and succ["success@1"] <= succ["success@5"] <= succ["success@10"]


def test_on_topic_passages_open_with_the_query_and_go_on_with_its_top_document(tmp_path, scifact_small,
                                                                             lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(scifact_small[:100])
    coll.commit()
    doc = scifact_small[7]
    queries = {"q": doc["title"]}
    (passage,) = on_topic_passages(coll, queries, ["q"], words=5)
    top = coll.search(doc["title"], k=1).ids[0, 0]
    assert passage["_id"] == "ontopic-q"
    assert passage["text"] == doc["title"] + " " + " ".join(coll.get(top).content(("title", "text")).split()[:5])
    assert on_topic_passages(coll, queries, ["q"], words=5) == [passage]


def test_gradient_attacker_raises_similarity(tiny_st):
    """The HotFlip attacker only accepts substitutions that bring the passage closer to its target query, and the
    same seed gives the same passages."""
    from sentence_transformers import SentenceTransformer

    from retrievo.eval.robustness import gradient_passages

    queries = {"q1": "microglia are the immune cells of the brain", "q2": "vitamin D and bone density"}
    kw = {"trigger_tokens": 6, "steps": 6, "candidates": 8, "seed": 1}
    docs, cost = gradient_passages(tiny_st, queries, ["q1", "q2"], **kw)
    assert [d["_id"] for d in docs] == ["grad-q1", "grad-q2"] and all(d["text"] for d in docs)
    assert cost["forward_passes_per_passage"] == 12 and cost["seconds_per_passage"] > 0
    st = SentenceTransformer(tiny_st, device="cpu")
    q = st.encode([queries["q1"]], normalize_embeddings=True)[0]
    start, _ = gradient_passages(tiny_st, queries, ["q1"], **{**kw, "steps": 0})
    sims = [float(st.encode([d["text"]], normalize_embeddings=True)[0] @ q) for d in (start[0], docs[0])]
    assert sims[1] >= sims[0] - 1e-3  # decoded text re-tokenises almost as optimised
    again, _ = gradient_passages(tiny_st, queries, ["q1", "q2"], **kw)
    assert again == docs
