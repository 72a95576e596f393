"""SPLADE inside a collection: stored vectors, exact and approximate search, updates, fusion, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import SparseConfig
from retrievo.errors import InvalidInputError

QUERIES = ["microglia in the brain", "vitamin D and bone density", "stem cell differentiation",
           "tumour suppressor genes in cancer"]


@pytest.fixture(scope="module")
def sparse_coll(tmp_path_factory, scifact_small):
    path = tmp_path_factory.mktemp("sp") / "c"
    coll = Collection.create(path, CollectionConfig(dense=None, sparse=SparseConfig()))
    coll.add(scifact_small[:80])
    coll.commit()
    yield coll
    coll.close()


def _brute_force(coll, queries, k):
    from retrievo.signals.splade import SpladeSignal, segment_csr
    from retrievo.store.segments import SegmentData

    state = coll._state
    data = SegmentData.concat([s.data for s in state.segments], SpladeSignal.layouts)
    docs = segment_csr(data)
    q = coll.sparse_encoder.encode_queries(queries)
    scores = (q @ docs.T).toarray()
    scores[:, ~state.live] = -np.inf
    return scores


def test_exact_splade_equals_brute_force(sparse_coll):
    res = sparse_coll.search(QUERIES, k=10, method="splade")
    scores = _brute_force(sparse_coll, QUERIES, 10)
    state = sparse_coll._state
    for i in range(len(QUERIES)):
        row = res.row(i)
        assert row, "every query shares terms with some document"
        want = np.sort(scores[i][scores[i] > 0])[::-1][: len(row)]
        np.testing.assert_allclose([s for _, s in row], want, rtol=1e-4, atol=1e-5)
        for doc_id, s in row:
            r = int(np.flatnonzero(state.ids == doc_id)[0])
            assert scores[i, r] == pytest.approx(s, rel=1e-4, abs=1e-5)


def test_approx_mode_close_to_exact(sparse_coll):
    exact = sparse_coll.search(QUERIES, k=10, method="splade")
    approx = sparse_coll.search(QUERIES, k=10, method="splade", sparse={"mode": "approx", "query_cut": 40,
                                                                          "heap_factor": 0.8})
    overlap = np.mean([len({d for d, _ in exact.row(i)} & {d for d, _ in approx.row(i)}) / max(1, len(exact.row(i)))
                       for i in range(len(QUERIES))])
    assert overlap >= 0.9


def test_updates_deletes_merges_and_reopen(tmp_path, scifact_small):
    path = tmp_path / "c"
    coll = Collection.create(path, CollectionConfig(dense=None, sparse=SparseConfig(), max_segments=2))
    coll.add(scifact_small[:30])
    coll.commit()
    top = coll.search("microglia brain immune", k=3, method="splade").row(0)[0][0]
    coll.delete([top])
    coll.commit()
    assert top not in [d for d, _ in coll.search("microglia brain immune", k=30, method="splade").row(0)]
    for start in (30, 40, 50):  # more segments than max_segments: merges keep the sparse vectors
        coll.add(scifact_small[start:start + 10])
        coll.commit()
    coll.upsert([{"id": "new", "text": "Microglia are the resident immune cells of the brain."}])
    coll.commit()
    assert coll.search("microglia immune brain", k=1, method="splade").row(0)[0][0] == "new"
    assert len(coll._state.segments) <= 2
    before = coll.search(QUERIES, k=5, method="splade")
    info = coll.info()
    assert info["sparse_vocabulary"] == 30522 and info["sparse_nnz_per_doc"] > 20
    coll.compact()
    coll.close()
    coll = Collection.open(path, readonly=True)
    after = coll.search(QUERIES, k=5, method="splade")
    for i in range(len(QUERIES)):
        assert [d for d, _ in after.row(i)] == [d for d, _ in before.row(i)]
        assert [s for _, s in after.row(i)] == pytest.approx([s for _, s in before.row(i)], rel=1e-5)
    coll.close()


def test_sparse_indexes_are_built_per_segment_and_kept(tmp_path, scifact_small):
    path = tmp_path / "seg"
    coll = Collection.create(path, CollectionConfig(dense=None, sparse=SparseConfig(mode="approx", n_postings=50)))
    coll.add(scifact_small[:25])
    coll.commit()
    first = sorted((path / "segments").glob("seg_*"))
    assert len(first) == 1 and (first[0] / "sparse_exact" / "meta.json").exists()
    approx_dirs = list(first[0].glob("sparse_approx_*"))
    assert len(approx_dirs) == 1  # mode="approx": built with the segment, at commit
    stamp = (approx_dirs[0] / "meta.json").stat().st_mtime_ns
    coll.add(scifact_small[25:45])
    gone = scifact_small[3]["_id"]
    coll.delete([gone])
    coll.commit()
    segs = sorted((path / "segments").glob("seg_*"))
    assert len(segs) == 2 and all((d / "sparse_exact" / "meta.json").exists() for d in segs)
    # the first segment's structures were not rebuilt by the second commit
    assert (approx_dirs[0] / "meta.json").stat().st_mtime_ns == stamp
    exact = coll.search(QUERIES, k=10, method="splade", sparse="exact")
    wide = coll.search(QUERIES, k=10, method="splade", sparse={"query_cut": 64, "heap_factor": 0.5})
    scores = _brute_force(coll, QUERIES, 10)
    for i in range(len(QUERIES)):
        assert gone not in [d for d, _ in exact.row(i)] + [d for d, _ in wide.row(i)]
        want = np.sort(scores[i][np.isfinite(scores[i]) & (scores[i] > 0)])[::-1][:10]
        np.testing.assert_allclose([s for _, s in exact.row(i)], want, rtol=1e-4, atol=1e-5)
        # every list visited with little pruning: the approximate top-10 is the exact one
        assert [d for d, _ in wide.row(i)] == [d for d, _ in exact.row(i)]
    coll.close()
    ro = Collection.open(path, readonly=True)
    again = ro.search(QUERIES, k=10, method="splade", sparse="exact")
    assert (again.ids == exact.ids).all()
    ro.close()


def test_three_signal_fusion_and_weights(tmp_path, scifact_small):
    coll = Collection.create(tmp_path / "c", CollectionConfig(sparse=SparseConfig()))
    coll.add(scifact_small[:40])
    coll.commit()
    for method in ("bm25+dense+splade", "bm25+splade", "dense+splade", "hybrid"):
        res = coll.search(QUERIES[:2], k=5, method=method)
        assert res.counts.tolist() == [5, 5]
    from retrievo.config import FusionConfig

    only_splade = coll.search(QUERIES[:2], k=5, method="bm25+dense+splade", fusion=FusionConfig(weights=(0, 0, 1)))
    splade = coll.search(QUERIES[:2], k=5, method="splade")
    assert [d for d, _ in only_splade.row(0)] == [d for d, _ in splade.row(0)]
    with pytest.raises(InvalidInputError, match="3 weights"):
        coll.search("x", method="bm25+dense+splade", fusion=FusionConfig(weights=(1, 1)))
    with pytest.raises(InvalidInputError, match="unknown method"):
        coll.search("x", method="bm25+colbert")
    coll.close()


def test_bad_input(tmp_path, sparse_coll):
    with pytest.raises(InvalidInputError, match="needs a sparse"):
        lex = Collection.create(tmp_path / "lex", CollectionConfig(dense=None))
        lex.search("x", method="splade")

    class OtherVocabulary:  # a second SPLADE model with a larger vocabulary (none is installed offline)
        def __init__(self, inner):
            self.inner = inner

        def encode_queries(self, texts):
            import scipy.sparse as sp

            q = self.inner.encode_queries(texts)
            return sp.hstack([q, sp.csr_matrix((q.shape[0], 5))], format="csr")

    real = sparse_coll.sparse_encoder
    gen = sparse_coll.generation
    sparse_coll.set_sparse_encoder(OtherVocabulary(real))
    try:
        with pytest.raises(InvalidInputError, match="vocabulary"):
            sparse_coll.search("brain", method="splade")
    finally:
        sparse_coll.set_sparse_encoder(real)
    assert sparse_coll.generation == gen
    with pytest.raises(InvalidInputError, match="search-time"):
        sparse_coll.search("brain", method="splade", sparse={"n_postings": 5})


def test_stuffed_passages_for_bm25_and_splade_reach_their_queries(tmp_path, scifact_small, scifact_queries):
    from retrievo.eval.robustness import PAYLOAD, attack_success, stuffed_passages

    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None, sparse=SparseConfig()))
    coll.add(scifact_small[:80])
    coll.commit()
    queries = {str(i): q for i, q in enumerate(scifact_queries[:10])}
    enc = coll.signals["splade"].encoder
    docs = stuffed_passages(queries, list(queries), sparse_encoder=enc)
    assert docs == stuffed_passages(queries, list(queries), sparse_encoder=enc)  # deterministic
    q = enc.encode_queries([queries["0"]]).tocsr()
    top = enc.vocab[int(q.indices[np.argmax(q.data)])]
    words = docs[0]["text"][: -len(PAYLOAD) - 1].split()
    assert docs[0]["text"].endswith(PAYLOAD) and words[:6] == [top] * 6  # the heaviest term, repeated most
    assert len(set(words)) <= 12 and any(w not in queries["0"].lower() for w in set(words))  # expansion terms too
    assert queries["0"] == "0-dimensional biomaterials lack inductive properties."
    assert stuffed_passages(queries, ["0"], repeats=2)[0]["text"] == (  # aimed at BM25: the query's own words
        "dimensional biomaterials lack inductive properties " * 2 + PAYLOAD)
    coll.add(docs)
    coll.commit()
    res = coll.search([queries[t] for t in queries], k=10, method="splade", query_ids=list(queries))
    assert attack_success(res, list(queries), prefix="stuff-")["success@10"] >= 0.8
    with pytest.raises(InvalidInputError, match="not among the queries"):
        stuffed_passages(queries, ["nope"])
    coll.close()
