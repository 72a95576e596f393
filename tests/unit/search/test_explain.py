import numpy as np
import pytest

from retrievo import Collection, SearchRequest
from retrievo.config import CollectionConfig, DenseConfig


@pytest.fixture()
def hybrid_coll(tmp_path):
    """40 documents with hand-made vectors; only some share words with the query, so BM25 retrieves fewer."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    words = ["apple pie", "apple tart", "pear cake", "plum jam", "river stone"]
    docs = [{"_id": f"d{i}", "text": f"{words[i % 5]} number {i}" + (" apple" * (i % 3))} for i in range(40)]
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(model=str(tmp_path / "no-model"))))
    coll.add(docs, vectors=x)
    coll.commit()
    yield coll, rng.normal(size=(2, 8)).astype(np.float32)
    coll.close()


def test_explain_reports_each_signals_own_rank_and_score_and_the_fused_one(hybrid_coll):
    coll, qv = hybrid_coll
    queries = ["apple pie", "pear cake"]
    req = SearchRequest(method="hybrid", k=15, explain=True)
    res = coll.searcher.search(queries, req, query_vectors=qv)
    plain = coll.searcher.search(queries, req.replace(explain=False), query_vectors=qv)
    assert res.ids.tolist() == plain.ids.tolist() and plain.explanations is None  # explaining changes nothing
    np.testing.assert_array_equal(res.scores, plain.scores)
    alone = {m: coll.searcher.search(queries, SearchRequest(method=m, k=1000), query_vectors=qv if m == "dense" else None)
             for m in ("bm25", "dense")}
    saw_missing = False
    for i in range(len(queries)):
        hits = res.row(i)
        assert len(res.explanations[i]) == len(hits)
        for rank, ((doc, score), e) in enumerate(zip(hits, res.explanations[i], strict=True), start=1):
            assert list(e) == ["bm25", "dense", "fusion"]
            assert e["fusion"] == {"rank": rank, "score": pytest.approx(score)}
            for m in ("bm25", "dense"):
                own = [d for d, _ in alone[m].row(i)]
                if doc in own:
                    j = own.index(doc)
                    assert e[m] == {"rank": j + 1, "score": pytest.approx(alone[m].row(i)[j][1], rel=1e-6)}
                else:
                    assert m == "bm25" and e[m] is None  # BM25 never retrieved it: no standing
                    saw_missing = True
    assert saw_missing
    assert res.to_dicts()[0]["results"][0]["explain"] == res.explanations[0][0]


def test_explain_names_stages_per_signal_and_follows_the_cut(hybrid_coll):
    coll, qv = hybrid_coll
    res = coll.searcher.search(["apple"], SearchRequest(method="hybrid", k=3, prf=True, explain=True), query_vectors=qv[:1])
    assert list(res.explanations[0][0]) == ["bm25", "dense", "feedback:bm25", "feedback:dense", "fusion"]
    assert len(res.explanations[0]) == 3
    one = coll.searcher.search(["apple"], SearchRequest(method="bm25", k=5, explain=True))
    assert [list(e) for e in one.explanations[0]] == [["bm25"]] * len(one.row(0))
    assert [e["bm25"]["score"] for e in one.explanations[0]] == pytest.approx([s for _, s in one.row(0)])
    keys = {SearchRequest(method="hybrid", explain=e).resolve(coll.config).key() for e in (True, False)}
    assert len(keys) == 1  # a calibrator fitted without explain applies with it
