"""Dense and hybrid search through a real collection with the real MiniLM model (ONNX Runtime)."""

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, DenseConfig, FusionConfig


class CountingEncoder:
    def __init__(self, inner):
        self.inner = inner
        self.dim = inner.dim
        self.fingerprint = inner.fingerprint
        self.encoded: list[str] = []

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts, show_progress=False):
        self.encoded += list(texts)
        return self.inner.encode_documents(texts)


@pytest.fixture(scope="module")
def dense_coll(tmp_path_factory, scifact_small, onnx_encoder):
    enc = CountingEncoder(onnx_encoder)
    path = tmp_path_factory.mktemp("dense") / "c"
    c = Collection.create(path, CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=enc)
    docs = [{**d, "metadata": {"year": 2000 + i % 20, "even": i % 2 == 0}} for i, d in enumerate(scifact_small[:120])]
    c.add(docs)
    c.commit()
    return c, enc, docs


def test_dense_finds_paraphrased_title(dense_coll):
    c, _, docs = dense_coll
    res = c.search([docs[5]["title"], docs[77]["title"]], k=3, method="dense")
    assert res.ids[0, 0] == docs[5]["_id"] and res.ids[1, 0] == docs[77]["_id"]
    assert res.scores[0, 0] > 0.5


def test_dense_filter_equals_brute_force(dense_coll, onnx_encoder):
    c, _, docs = dense_coll
    q = "cancer cells and tumour growth"
    qv = onnx_encoder.encode_queries([q])[0]
    allowed = [d for d in docs if d["metadata"]["year"] >= 2010 and d["metadata"]["even"]]
    dv = onnx_encoder.encode_documents([d["title"] + " " + d["text"] for d in allowed])
    order = np.argsort(-(dv @ qv), kind="stable")[:10]
    got = c.search(q, k=10, method="dense", filter={"$and": [{"year": {"$gte": 2010}}, {"even": True}]})
    assert [i for i, _ in got.row(0)] == [allowed[j]["_id"] for j in order]


def test_hybrid_fuses_both_signals(dense_coll):
    c, _, docs = dense_coll
    q = docs[10]["title"]
    h = c.search(q, k=5, method="hybrid")
    assert h.ids[0, 0] == docs[10]["_id"]
    rrf = c.search(q, k=5, method="hybrid", fusion=FusionConfig(method="rrf"))
    assert rrf.ids[0, 0] == docs[10]["_id"]
    # weight only on BM25 reproduces the BM25 order
    only_bm25 = c.search(q, k=5, method="hybrid", fusion=FusionConfig(weights=(1.0, 0.0)))
    assert list(only_bm25.ids[0]) == list(c.search(q, k=5, method="bm25").ids[0])


def test_unchanged_text_is_not_reencoded_and_deletes_vanish(dense_coll):
    c, enc, docs = dense_coll
    before = len(enc.encoded)
    d = docs[3]
    c.upsert([{**d, "metadata": {"year": 1999}}])  # metadata change only
    c.upsert([{"id": "new-1", "title": "", "text": "Completely new passage about glaciers and ice sheets."}])
    c.commit()
    assert enc.encoded[before:] == ["Completely new passage about glaciers and ice sheets."]
    assert c.search(d["title"], k=1, method="dense").ids[0, 0] == d["_id"]
    c.delete([d["_id"]])
    c.commit()
    for method in ("dense", "hybrid", "bm25"):
        assert d["_id"] not in set(c.search(d["title"], k=20, method=method).ids[0])
    assert c.search("glaciers ice", k=1, method="dense").ids[0, 0] == "new-1"


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_indexes_through_the_collection(dense_coll, kind):
    from retrievo import DenseIndexConfig

    c, _, docs = dense_coll
    q = ["protein folding in bacteria", docs[20]["title"]]
    flat = c.search(q, k=5, method="dense")
    # with every row a candidate, rescoring reproduces the exact ranking and scores
    full = c.search(q, k=5, method="dense", index=DenseIndexConfig(kind=kind, rescore_multiplier=1000))
    assert (full.ids == flat.ids).all()
    np.testing.assert_allclose(full.scores, flat.scores, rtol=1e-5)
    small = c.search(q, k=5, method="dense", index=kind)
    assert small.ids[1, 0] == docs[20]["_id"]
    flt = {"year": {"$lt": 2005}}
    got = c.search(q, k=5, method="dense", index=kind, filter=flt)
    meta = {d.id: d.metadata for d in c.get_many([i for row in got for i, _ in row]) if d}
    assert all(meta[i]["year"] < 2005 for row in got for i, _ in row)
    ram = c.dense_index(kind).nbytes
    full = c.dense_index("flat").nbytes
    segments = len(c.info()["segments"])
    # 1/32 (sign bits) or 1/4 (int8 codes, plus each segment's offset and scale vectors)
    assert ram <= (full / 32 if kind == "binary" else full / 4 + segments * 2 * 384 * 4)


def test_plan_index_for_a_memory_budget(dense_coll):
    c, _, _ = dense_coll
    n, dim = len(c), 384
    roomy = c.plan_index(budget_bytes=10**9)
    best = max(p["expected_recall@10"] for p in roomy["candidates"])
    assert roomy["chosen"]["expected_recall@10"] == best == 1.0  # ties go to the smaller index
    assert roomy["chosen"]["bytes_in_ram"] == min(
        p["bytes_in_ram"] for p in roomy["candidates"] if round(p["expected_recall@10"], 3) == 1.0)
    tight = c.plan_index(budget_bytes=n * dim // 8 * 2)  # room for sign bits, not for int8 codes
    assert tight["chosen"]["index"] == "binary"
    assert {p["index"] for p in tight["candidates"]} == {"flat", "hnsw", "int8", "ivfpq", "binary"}
    assert all(0.0 <= p["expected_recall@10"] <= 1.0 for p in tight["candidates"])
    assert c.plan_index(budget_bytes=10)["chosen"] is None


def test_hnsw_collection_builds_per_segment_and_survives_updates(tmp_path, scifact_small, onnx_encoder):
    from retrievo import DenseIndexConfig

    cfg = CollectionConfig(dense=DenseConfig(backend="onnx"), index=DenseIndexConfig(kind="hnsw", M=8))
    c = Collection.create(tmp_path / "h", cfg, encoder=onnx_encoder)
    c.add(scifact_small[:40])
    c.commit()
    seg_files = list((tmp_path / "h" / "segments").glob("seg_*/ann_hnsw_*.faiss"))
    assert len(seg_files) == 1  # built with the segment, before its commit
    target = scifact_small[7]
    assert c.search(target["title"], k=1, method="dense").ids[0, 0] == target["_id"]
    c.add(scifact_small[40:60])
    c.delete([target["_id"]])
    c.commit()
    assert target["_id"] not in set(c.search(target["title"], k=10, method="dense").ids[0])
    c.close()
    again = Collection.open(tmp_path / "h", readonly=True, encoder=onnx_encoder)
    assert again.config.index.kind == "hnsw" and len(again) == 59
    assert again.search(scifact_small[50]["title"], k=1, method="dense").ids[0, 0] == scifact_small[50]["_id"]


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_codes_kept_per_segment_and_reopened_mapped(tmp_path, scifact_small, onnx_encoder, kind):
    from retrievo import DenseIndexConfig

    cfg = CollectionConfig(dense=DenseConfig(backend="onnx"), index=DenseIndexConfig(kind=kind))
    c = Collection.create(tmp_path / "q", cfg, encoder=onnx_encoder)
    c.add(scifact_small[:30])
    c.commit()
    c.add(scifact_small[30:50])
    target = scifact_small[3]
    c.delete([target["_id"]])
    c.commit()
    pattern = "seg_*/int8_codes.npy" if kind == "int8" else "seg_*/binary_codes.npy"
    assert len(list((tmp_path / "q" / "segments").glob(pattern))) == len(c.info()["segments"]) == 2
    before = c.search([scifact_small[40]["title"], target["title"]], k=5, method="dense")
    assert before.ids[0, 0] == scifact_small[40]["_id"]
    assert target["_id"] not in set(before.ids[1])  # deleted rows never come back
    c.close()
    again = Collection.open(tmp_path / "q", readonly=True, encoder=onnx_encoder)
    coarse = again.dense_index().coarse
    assert all(isinstance(getattr(codes, "codes", getattr(codes, "words", None)), np.memmap)
               for _, codes in coarse.blocks)  # read from the segments, not encoded again
    after = again.search([scifact_small[40]["title"], target["title"]], k=5, method="dense")
    assert (after.ids == before.ids).all()
    again.close()
    c = Collection.open(tmp_path / "q", encoder=onnx_encoder)
    c.compact()  # the merged segment gets its own codes
    assert len(list((tmp_path / "q" / "segments").glob(pattern))) == len(c.info()["segments"]) == 1
    assert (c.search([scifact_small[40]["title"], target["title"]], k=5, method="dense").ids == before.ids).all()
    c.close()


def test_supplied_vectors_mix_with_encoded_ones(tmp_path, scifact_small, onnx_encoder):
    docs = scifact_small[:30]
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs[:12]]
    given = onnx_encoder.encode_documents(texts)
    c = Collection.create(tmp_path / "v", CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=onnx_encoder)
    c.add(docs[:12], vectors=given)  # brought by the caller: not encoded again
    c.add(docs[12:])
    c.commit()
    target = docs[5]
    by_text = c.search(target["title"], k=5, method="dense")
    qv = onnx_encoder.encode_queries([target["title"]])
    by_vec = c.search(None, k=5, method="dense", query_vectors=qv)
    assert by_text.ids[0, 0] == target["_id"] and (by_vec.ids == by_text.ids).all()
    np.testing.assert_allclose(by_vec.scores, by_text.scores, rtol=1e-5)
    hybrid = c.search(target["title"], k=5, method="hybrid", query_vectors=qv)
    assert hybrid.ids[0, 0] == target["_id"]


def test_vectors_without_a_model_ever_loading(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [{"_id": f"d{i}", "text": f"document number {i}"} for i in range(50)]
    # a model that does not exist: it must never be needed when every vector is supplied
    c = Collection.create(tmp_path / "byo", CollectionConfig(dense=DenseConfig(model=str(tmp_path / "no-model"))))
    c.add(docs, vectors=x)
    c.commit()
    got = c.search(None, k=3, method="dense", query_vectors=x[[7, 8]])
    assert got.ids[:, 0].tolist() == ["d7", "d8"]
    c.upsert([{"_id": "d7", "text": "moved"}], vectors=-x[7:8])
    c.commit()
    assert c.search(None, k=1, method="dense", query_vectors=x[7]).ids[0, 0] != "d7"


def test_bad_vectors_are_refused_and_change_nothing(tmp_path):
    from retrievo.errors import InvalidInputError

    x = np.eye(8, dtype=np.float32)
    docs = [{"_id": f"d{i}", "text": f"doc {i}"} for i in range(8)]
    c = Collection.create(tmp_path / "bad", CollectionConfig(dense=DenseConfig(model=str(tmp_path / "none"))))
    c.add(docs[:4], vectors=x[:4])
    c.commit()
    bad_nan = x[4:6].copy()
    bad_nan[1, 3] = np.nan
    cases = [
        (x[4:6, :7], "dimension 7 but the collection's have 8"),
        (bad_nan, r"vectors\[1\] \(document 'd5'\) has a NaN"),
        (x[4:5], r"shape \(2, dim\)"),
        ("not numbers", "numeric"),
    ]
    for vectors, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            c.add(docs[4:6], vectors=vectors)
        assert c.pending == 0
    with pytest.raises(InvalidInputError, match=r"query_vectors must have shape \(1, 8\)"):
        c.search(None, k=1, method="dense", query_vectors=np.ones((1, 5)))
    with pytest.raises(InvalidInputError, match="NaN"):
        c.search(None, k=1, method="dense", query_vectors=np.full((1, 8), np.inf))
    with pytest.raises(InvalidInputError, match="dense signal"):
        c.search("doc", k=1, method="bm25", query_vectors=x[:1])
    plain = Collection.create(tmp_path / "plain", CollectionConfig(dense=None))
    with pytest.raises(InvalidInputError, match="no dense model"):
        plain.add(docs[:1], vectors=x[:1])
    assert len(c) == 4 and c.search(None, k=1, method="dense", query_vectors=x[2]).ids[0, 0] == "d2"
