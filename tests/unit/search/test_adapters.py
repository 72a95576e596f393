"""Query adapter: it learns a query-side map on synthetic data where one is needed, keeps norms, round-trips,
and works through a collection of supplied vectors (no model), without touching the stored vectors."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import DenseConfig
from retrievo.errors import InvalidInputError
from retrievo.search.adapters import QueryAdapter, fit_query_adapter


def rotated_world(n_docs=400, n_queries=300, dim=16, seed=0):
    """Queries are their relevant document seen through a fixed rotation, plus noise: the identity map
    retrieves badly, a learnt linear map well."""
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n_docs, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    rot, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    mix = 0.3 * np.eye(dim) + 0.7 * rot
    target = rng.integers(n_docs, size=n_queries)
    q = docs[target] @ mix.T + 0.05 * rng.normal(size=(n_queries, dim))
    return docs, q.astype(np.float32), target


def test_the_adapter_learns_a_needed_map_and_round_trips(tmp_path):
    docs, q, target = rotated_world()
    sims = q @ docs.T
    negs = [np.argsort(-sims[i])[:20] for i in range(len(q))]
    negs = [docs[n[n != target[i]]] for i, n in enumerate(negs)]
    ad = fit_query_adapter(q, [docs[t][None] for t in target], negs, epochs=40, lr=1e-2)
    assert ad.info.val_hit_after > ad.info.val_hit_before + 0.2
    moved = ad.apply(q)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), np.linalg.norm(q, axis=1), rtol=1e-5)
    before = np.mean(np.argmax(q @ docs.T, axis=1) == target)
    after = np.mean(np.argmax(moved @ docs.T, axis=1) == target)
    assert after > before + 0.2
    ad.save(tmp_path / "a")
    again = QueryAdapter.load(tmp_path / "a")
    np.testing.assert_array_equal(again.apply(q), moved)
    assert again.info == ad.info
    with pytest.raises(InvalidInputError, match="dimension 3"):
        ad.apply(np.ones((1, 3), np.float32))
    with pytest.raises(InvalidInputError, match="no readable query adapter"):
        QueryAdapter.load(tmp_path / "missing")


def test_query_adapter_through_a_collection_of_supplied_vectors(tmp_path):
    docs, q, target = rotated_world(seed=1)
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(model=str(tmp_path / "no-model"))))
    coll.add([{"_id": f"d{i}", "text": f"document {i}"} for i in range(len(docs))], vectors=docs)
    coll.commit()
    stored = coll._state.flat.gather(np.arange(len(docs))).copy()
    queries = {f"q{i}": f"query {i}" for i in range(len(q))}
    qrels = {f"q{i}": {f"d{t}": 1} for i, t in enumerate(target)}
    train, test = list(queries)[:200], list(queries)[200:]
    with pytest.raises(InvalidInputError, match="no query adapter"):
        coll.search(None, k=5, method="dense", query_vectors=q[:1], adapter=True)
    ad = coll.fit_query_adapter({k: queries[k] for k in train}, qrels, negatives=20, query_vectors=q[:200],
                                epochs=40, lr=1e-2)
    assert (tmp_path / "c" / "adapters" / "query_adapter.npy").exists() and ad.info.n_train + ad.info.n_val == 200

    def top1(adapter):
        res = coll.search(None, k=1, method="dense", query_vectors=q[200:], adapter=adapter)
        return np.mean([res.ids[i, 0] == f"d{target[200 + i]}" for i in range(len(test))])

    assert top1(True) > top1(False) + 0.2  # held-out queries
    np.testing.assert_array_equal(coll._state.flat.gather(np.arange(len(docs))), stored)  # no re-indexing
    with pytest.raises(InvalidInputError, match="adapter is for the dense signal"):
        coll.search("x", method="bm25", adapter=True)
    with pytest.raises(InvalidInputError, match="5 needed"):
        coll.fit_query_adapter({"q0": "x"}, qrels, query_vectors=q[:1])


def test_fitting_shows_progress_when_asked(capsys):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(12, 8)).astype(np.float32)
    pos = [rng.normal(size=(1, 8)).astype(np.float32) for _ in range(12)]
    neg = [rng.normal(size=(3, 8)).astype(np.float32) for _ in range(12)]
    fit_query_adapter(q, pos, neg, epochs=3)
    assert "query adapter" not in capsys.readouterr().err
    fit_query_adapter(q, pos, neg, epochs=3, show_progress=True)
    err = capsys.readouterr().err
    assert "query adapter" in err and "3/3" in err


def test_without_held_out_queries_the_last_epoch_is_kept_even_when_it_is_worse():
    """``val_fraction=0`` (the mixing proxy): every query is trained on and what the pairs teach is kept, also
    when it is the wrong thing."""
    docs, q, target = rotated_world()
    wrong = (target + 1) % len(docs)  # every query's "relevant" document is another one
    negs = [docs[[t]] for t in target]  # and its true document is the negative
    ad = fit_query_adapter(q, [docs[t][None] for t in wrong], negs, epochs=5, lr=1e-2, val_fraction=0.0)
    assert ad.info.n_val == 0 and ad.info.best_epoch == 5 and ad.info.n_train == len(q)
    hits = np.mean(np.argmax(ad.apply(q) @ docs.T, axis=1) == target)
    assert hits < np.mean(np.argmax(q @ docs.T, axis=1) == target)
