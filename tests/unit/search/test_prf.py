"""Pseudo-relevance feedback: RM3's expansion by hand, weighted BM25 against brute force, RM3 and Rocchio
through a real collection (several segments, a delete), and bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, PRFConfig
from retrievo.config import DenseConfig
from retrievo.errors import ConfigError, InvalidInputError
from retrievo.search.prf import rm3_query, rocchio


def test_rm3_expansion_by_hand():
    # two feedback documents: row 0 (score 2) = {5: 1, 6: 3}, row 1 (score 1) = {6: 1, 7: 1, 9: 2}
    docs = {0: (np.array([5, 6]), np.array([1, 3])), 1: (np.array([6, 7, 9]), np.array([1, 1, 2]))}
    df = np.zeros(10, np.int64)
    df[[5, 6, 7]] = 1
    df[9] = 50  # in more than 10 % of the 100 documents: never an expansion term
    terms, w = rm3_query(np.array([5, 5, 8]), np.array([0, 1]), np.array([2.0, 1.0]), docs.__getitem__, df, 100,
                         fb_terms=2, original_weight=0.5)
    # relevance model: t5 = 2·1/4 = 0.5, t6 = 2·3/4 + 1·1/4 = 1.75, t7 = 1·1/4 = 0.25 -> top 2: t6, t5
    # scaled to sum 1: t6 = 1.75/2.25, t5 = 0.5/2.25; query: t5 = 2/3, t8 = 1/3
    assert terms.tolist() == [5, 6, 8]
    np.testing.assert_allclose(w, [0.5 * 2 / 3 + 0.5 * 0.5 / 2.25, 0.5 * 1.75 / 2.25, 0.5 / 3], rtol=1e-6)
    assert abs(w.sum() - 1) < 1e-6
    # no feedback documents, or all weight on the original query: the query alone
    for rows, ow in ((np.array([], np.int64), 0.5), (np.array([0, 1]), 1.0)):
        t, w = rm3_query(np.array([5, 5, 8]), rows, np.ones(len(rows)), docs.__getitem__, df, 100, original_weight=ow)
        assert t.tolist() == [5, 8] and np.allclose(w, [2 / 3, 1 / 3])


def test_rocchio_moves_towards_the_feedback_and_keeps_the_norm():
    q = np.array([[3.0, 0.0], [0.0, 2.0]], np.float32)
    fb = [np.array([[0.0, 1.0], [0.0, 3.0]], np.float32), np.zeros((0, 2), np.float32)]
    out = rocchio(q, fb, alpha=1.0, beta=0.5)
    v = np.array([3.0, 0.0]) + 0.5 * np.array([0.0, 2.0])
    np.testing.assert_allclose(out[0], v / np.linalg.norm(v) * 3.0, rtol=1e-6)
    np.testing.assert_allclose(out[1], q[1])  # no feedback: unchanged


def test_weighted_bm25_equals_brute_force(tmp_path, scifact_small, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(scifact_small[:120])
    coll.commit()
    inv = coll._state.inverted
    rng = np.random.default_rng(3)
    queries = [rng.choice(len(inv.p_indptr) - 1, 6) for _ in range(40)]
    weights = [rng.random(6).astype(np.float32) for _ in range(40)]
    rows, scores, counts = inv.search(queries, 5, weights=weights, threads=2)
    for q, w, r, s, n in zip(queries, weights, rows, scores, counts, strict=True):
        full = np.zeros(inv.n_rows)
        for t, wt in zip(q, w, strict=True):
            full += wt * inv.get_scores(np.array([t]))
        want = np.sort(full[full > 0])[::-1][:5]
        np.testing.assert_allclose(s[:n], want, rtol=1e-5)
        np.testing.assert_allclose(full[r[:n]], s[:n], rtol=1e-5)  # each row's own weighted score
    with pytest.raises(ValueError, match="one weight per query term"):
        inv.search(queries[:2], 5, weights=weights[:1])


def test_rm3_through_a_collection_finds_documents_the_query_does_not_name(tmp_path, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    filler = [{"_id": f"f{i}", "text": f"unrelated filler text number {i} about weather and trains"} for i in range(40)]
    coll.add(filler + [
        {"_id": "a1", "text": "zebra stripes and savanna grass"},
        {"_id": "a2", "text": "zebra herds migrate across the savanna"},
    ])
    coll.commit()  # first segment
    coll.add([{"_id": "b1", "text": "the savanna at dusk, lions resting"},
              {"_id": "gone", "text": "zebra zebra savanna savanna"}])
    coll.commit()  # second segment
    coll.delete(["gone"])
    coll.commit()
    plain = coll.search("zebra", k=5)
    assert set(plain.ids[0, :plain.counts[0]]) == {"a1", "a2"}
    expanded = coll.search("zebra", k=5, prf=PRFConfig(fb_docs=2, fb_terms=3))
    got = list(expanded.ids[0, :expanded.counts[0]])
    assert got[:2] in (["a1", "a2"], ["a2", "a1"])  # the original matches stay on top
    assert "b1" in got and "gone" not in got  # reached through "savanna"; the deleted document never
    assert coll.search("zebra", k=5, prf=False).ids.tolist() == plain.ids.tolist()


def test_rocchio_through_a_collection_equals_the_moved_query(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [{"_id": f"d{i}", "text": f"document {i}"} for i in range(60)]
    coll = Collection.create(tmp_path / "v", CollectionConfig(dense=DenseConfig(model=str(tmp_path / "no-model"))))
    coll.add(docs[:30], vectors=x[:30])
    coll.commit()
    coll.add(docs[30:], vectors=x[30:])
    coll.commit()
    q = rng.normal(size=(4, 16)).astype(np.float32)
    prf = PRFConfig(dense_fb_docs=3, alpha=1.0, beta=0.75)
    got = coll.search(None, k=10, method="dense", query_vectors=q, prf=prf)
    top3 = np.argsort(-(q @ x.T), axis=1)[:, :3]
    moved = q + 0.75 * x[top3].mean(axis=1)
    moved *= (np.linalg.norm(q, axis=1) / np.linalg.norm(moved, axis=1))[:, None]
    want = np.argsort(-(moved @ x.T), axis=1)[:, :10]
    assert got.ids.tolist() == [[f"d{i}" for i in row] for row in want]
    np.testing.assert_allclose(got.scores, np.take_along_axis(moved @ x.T, want, axis=1), rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"fb_docs": 0}, {"fb_terms": 2.5}, {"dense_fb_docs": True},
                                    {"original_weight": 1.5}, {"alpha": 0, "beta": 0}, {"beta": -1}])
def test_bad_prf_settings(kwargs):
    with pytest.raises(ConfigError, match="PRFConfig"):
        PRFConfig(**kwargs)


def test_prf_argument_is_checked(tmp_path, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add([{"_id": "a", "text": "x y"}])
    coll.commit()
    with pytest.raises(InvalidInputError, match="prf must be a bool or a PRFConfig"):
        coll.search("x", prf={"fb_docs": 3})
