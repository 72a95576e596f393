"""Sharded collections on a real local Ray cluster: 1–4 shards give one collection's results.

The default suite runs 1 and 3 shards; 2 and 4, and the admission gate over shards, are marked ``distributed`` (CI
runs them as a step of their own: ``python -m pytest -q -m distributed``).

Every check runs the real engine in real Ray actors (``ray.init(num_cpus=2)``): BM25 under global statistics,
dense (flat) and SPLADE (exact) with driver-encoded queries, hybrid fusion, RM3 and Rocchio feedback, typo
correction, filters, routed writes, and a shard actor killed mid-stream.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from retrievo import Collection, CollectionConfig  # noqa: E402
from retrievo.config import DenseConfig, SparseConfig  # noqa: E402
from retrievo.distributed import ShardedCollection, shard_of  # noqa: E402
from retrievo.distributed.sharded import write_manifest  # noqa: E402
from retrievo.errors import InvalidInputError, NotFoundError, ShardUnavailableError  # noqa: E402
from retrievo.eval.compare import result_differences as same_top  # noqa: E402
from retrievo.eval.datasets import bundled_dataset_path  # noqa: E402
from tests.conftest import CLEAN_NEW, STUFFED, scifact_docs  # noqa: E402

TOOLLENS = Path(__file__).resolve().parents[3] / "shared" / "data" / "toollens"  # beside the repository, when there

METHODS = [dict(method="bm25"), dict(method="dense"), dict(method="splade"), dict(method="hybrid"),
           dict(method="bm25", prf=True), dict(method="hybrid", prf=True), dict(method="bm25", correct_typos=True),
           dict(method="bm25+dense+splade", fusion={"method": "rrf"})]


def _queries(folder, n):
    with gzip.open(folder / "queries.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh][:n]


def _toollens():
    with gzip.open(TOOLLENS / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    return docs, _queries(TOOLLENS, 40)


@pytest.fixture(scope="module")
def cluster():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, onnx_encoder, cluster):
    """SciFact (first 600 documents) and ToolLens (all 464 tools, when ../shared/data has it), each as one
    collection (BM25, dense, SPLADE) and the documents with their vectors, encoded once."""
    out = {}
    sources = {"scifact": (scifact_docs(600), _queries(bundled_dataset_path("scifact"), 40))}
    if (TOOLLENS / "corpus.jsonl.gz").exists():
        sources["toollens"] = _toollens()
    for name, (docs, queries) in sources.items():
        cfg = CollectionConfig(dense=DenseConfig(backend="onnx"), sparse=SparseConfig())
        single = Collection.create(tmp_path_factory.mktemp(name) / "single", cfg, encoder=onnx_encoder)
        single.add(docs)
        single.commit()
        snap = single.snapshot()
        vectors = np.stack([snap.signals["dense"].gather(np.array([snap.row_of(str(d["_id"]))]))[0] for d in docs])
        out[name] = (cfg, docs, vectors, queries, single)
    yield out
    for *_, single in out.values():
        single.close()


@pytest.mark.parametrize("n_shards", [1, pytest.param(2, marks=pytest.mark.distributed), 3,
                                      pytest.param(4, marks=pytest.mark.distributed)])
def test_shards_give_one_collections_results(corpora, tmp_path, n_shards):
    for name, (cfg, docs, vectors, queries, single) in corpora.items():
        # the shards are written here (sharing the loaded models); test_writes_are_routed writes through actors
        where = np.array([shard_of(str(d["_id"]), n_shards) for d in docs])
        for s, path in enumerate(write_manifest(tmp_path / name, n_shards)):
            shard = Collection.create(path, cfg, encoder=single.encoder)
            shard.share_models(single)
            shard.add([d for d, w in zip(docs, where, strict=True) if w == s], vectors=vectors[where == s])
            shard.commit()
            shard.close()
        with ShardedCollection.open(tmp_path / name) as sc:
            assert sc.count() == len(docs)
            counts = np.bincount([shard_of(str(d["_id"]), n_shards) for d in docs], minlength=n_shards)
            assert [s["documents"] for s in sc.info()["per_shard"]] == counts.tolist()
            for kw in METHODS:
                want = single.search(queries, k=10, **kw)
                got = sc.search(queries, k=10, **kw)
                assert got.missing_shards == ()
                problems = same_top(want, got)
                assert not problems, (name, n_shards, kw, problems[:3])


def test_writes_are_routed_and_filters_apply(corpora, tmp_path):
    cfg, docs, vectors, queries, _ = corpora.get("toollens", corpora["scifact"])
    lexical = CollectionConfig(dense=None)
    single = Collection.create(tmp_path / "single", lexical)
    sc = ShardedCollection.create(tmp_path / "sharded", 3, lexical)
    try:
        for c in (single, sc):
            c.add(docs[:300])
            c.commit()
            c.upsert([dict(docs[0], text="weather forecast for a city by name")] + docs[300:])
            c.delete([str(d["_id"]) for d in docs[10:40]])
            c.commit()
        assert sc.count() == single.count() == len(docs) - 30
        assert sc.get(str(docs[0]["_id"])).text == "weather forecast for a city by name"
        for kw in (dict(), dict(prf=True), dict(correct_typos=True)):
            assert not same_top(single.search(queries, k=10, **kw), sc.search(queries, k=10, **kw)), kw
        with pytest.raises(InvalidInputError, match="bm25f"):
            sc.search(queries[:1], method="bm25f")
        reader = ShardedCollection.open(tmp_path / "sharded")
        with pytest.raises(InvalidInputError, match="read-only"):
            reader.add(docs[:1])
        assert reader.count() == single.count()
        reader.close()
    finally:
        single.close()
        sc.close()


def test_filters_and_collection_statistics_over_shards(cluster, tmp_path):
    docs = [{"_id": f"d{i}", "text": f"shared term{i % 7} words {'rare' if i % 10 == 0 else ''}",
             "metadata": {"year": 2000 + i % 5}} for i in range(200)]
    single = Collection.create(tmp_path / "single", CollectionConfig(dense=None))
    sc = ShardedCollection.create(tmp_path / "sharded", 4, CollectionConfig(dense=None))
    try:
        for c in (single, sc):
            c.add(docs)
            c.commit()
        flt = {"year": {"$gte": 2003}}
        want = single.search(["rare term3", "shared words"], k=20, filter=flt)
        got = sc.search(["rare term3", "shared words"], k=20, filter=flt)
        assert not same_top(want, got)
        assert sc.count(flt) == single.count(flt) == 80
        assert sc.facets(filter=flt, limit=2) == single.facets(filter=flt, limit=2)
        assert sc.facets("year") == single.facets("year") and sc.facets("year")["year"]["documents"] == 200
        with pytest.raises(InvalidInputError, match="unknown field"):
            sc.facets(["nope"])
    finally:
        single.close()
        sc.close()


def test_a_killed_shard_is_named_then_restarted(corpora, tmp_path):
    cfg, docs, vectors, queries, single = corpora["scifact"]
    lexical = CollectionConfig(dense=None)
    one = Collection.create(tmp_path / "one", lexical)
    one.add(docs)
    one.commit()
    sc = ShardedCollection.create(tmp_path / "sharded", 3, lexical)
    try:
        sc.add(docs)
        sc.commit()
        want = one.search(queries, k=10)
        assert not same_top(want, sc.search(queries, k=10))
        pid = ray.get(sc.handles[1].pid.remote())
        ray.kill(sc.handles[1], no_restart=False)  # dies; Ray restarts it from its folder
        errors, partial, full = [], 0, 0
        for _ in range(200):
            try:
                res = sc.search(queries, k=10, allow_partial=(len(errors) > 0 and partial == 0))
            except ShardUnavailableError as exc:
                errors.append(str(exc))
                continue
            if res.missing_shards:
                assert res.missing_shards == (1,)
                assert all(shard_of(d, 3) != 1 for row in res.ids for d in row if d)
                partial += 1
                continue
            full += 1
            assert not same_top(want, res)
            if full >= 3:
                break
        assert full >= 3
        assert ray.get(sc.handles[1].pid.remote()) != pid
        assert errors or partial  # the search in flight when the shard died did not pass unnoticed
        assert all("shard 1" in e for e in errors), errors[:2]
        assert sc.count() == len(docs)  # nothing committed was lost
    finally:
        one.close()
        sc.close()


def test_ingest_through_ray_data_matches_a_single_node_index(cluster, onnx_encoder, tmp_path):
    from retrievo.distributed import ingest
    from retrievo.errors import SourceFormatError
    from retrievo.store.loaders import iter_source

    docs = scifact_docs(300)
    src = tmp_path / "corpus.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    cfg = CollectionConfig(dense=DenseConfig(backend="onnx"))
    single = Collection.create(tmp_path / "single", cfg, encoder=onnx_encoder)  # what `retrievo index` does
    single.add(iter_source(src))
    single.commit()
    report = ingest(src, tmp_path / "sharded", 4, cfg, encoders=1, batch_size=64, show_progress=False)
    assert report.documents == 300 and sum(report.per_shard) == 300 and report.generations == (1, 1, 1, 1)
    assert report.encoded == 0 and report.cached == 300  # every vector came from the cache the single index filled
    snap = single.snapshot()
    for s in range(4):
        shard = Collection.open(tmp_path / "sharded" / f"shard-{s:04d}", readonly=True)
        sn = shard.snapshot()
        ids = [str(i) for i in sn.ids[sn.live]]
        assert ids and all(shard_of(i, 4) == s for i in ids)
        assert [d.to_dict() for d in shard.get_many(ids)] == [d.to_dict() for d in single.get_many(ids)]
        mine = sn.signals["dense"].gather(np.flatnonzero(sn.live))
        theirs = snap.signals["dense"].gather(np.array([snap.row_of(i) for i in ids]))
        assert np.array_equal(mine, theirs)
        shard.close()
    again = ingest(src, tmp_path / "sharded", encoders=1, show_progress=False)  # a re-run updates, never duplicates
    assert again.documents == 300 and sum(again.per_shard) == 300 and again.encoded == 0
    with ShardedCollection.open(tmp_path / "sharded") as sc:
        assert not same_top(single.search(["cancer cells", "protein folding"], k=10, method="hybrid"),
                            sc.search(["cancer cells", "protein folding"], k=10, method="hybrid"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(docs[0]) + "\n{not json\n")
    with pytest.raises(SourceFormatError, match="bad.jsonl"):
        ingest(bad, tmp_path / "bad", 2, cfg, show_progress=False)
    with ShardedCollection.open(tmp_path / "bad") as sc:
        assert sc.count() == 0  # the good record before the bad one was not committed either
    with pytest.raises(SourceFormatError, match="4 shards"):
        ingest(src, tmp_path / "sharded", 3, show_progress=False)
    single.close()


def test_serve_ray_answers_the_http_api_over_shards(cluster, tmp_path):
    from retrievo import Client
    from retrievo.server.process import ServerProcess

    docs = scifact_docs(300)
    queries = [d["title"] for d in docs[:20]]
    single = Collection.create(tmp_path / "single", CollectionConfig(dense=None))
    single.add(docs)
    single.commit()
    sc = ShardedCollection.create(tmp_path / "sci", 3, CollectionConfig(dense=None))
    sc.add(docs)
    sc.commit()
    sc.close()
    srv = ServerProcess(tmp_path / "sci", api_key="k", args=["--ray", ""]).start(timeout=180)
    with srv, Client(srv.url, api_key="k") as client:  # (entering srv does not start it again)
        (summary,) = client.collections()
        assert summary["name"] == "sci" and summary["documents"] == 300
        remote = client.collection("sci")
        for kw in (dict(), dict(prf=True)):
            got = remote.search(queries, k=10, **kw)
            assert not same_top(single.search(queries, k=10, **kw), got), kw
        assert remote.get(docs[5]["_id"]).text == docs[5]["text"]
        assert remote.upsert([{"id": "new-doc", "text": "zebrafish regeneration of the heart muscle"}]) == 1
        hit = remote.search("zebrafish heart regeneration", k=3)  # acknowledged = committed on its shard
        assert "new-doc" in list(hit.ids[0])
        with pytest.raises(InvalidInputError, match="no dense model"):  # the gate cannot work: nothing written
            remote.upsert([{"id": "screened", "text": "x"}], screen=True)
        with pytest.raises(NotFoundError, match="no quarantined document"):
            remote.release(["screened"])
        assert remote.quarantined() == [] and remote.get_many(["screened"]) == [None]
        with pytest.raises(Exception, match="no collection named"):
            client.collection("other").search("x")
    single.close()


@pytest.mark.distributed  # each shard actor loads the model and calibrates its gate: ~35 s
def test_each_shard_screens_the_documents_routed_to_it(cluster, tmp_path):
    """The admission gate over shards: each shard's gate, calibrated on its own documents, holds back the suspects
    routed to it; they are never searchable, are listed across shards, and leave by an explicit release or drop;
    a release or drop naming an id no shard holds changes nothing."""
    sc = ShardedCollection.create(tmp_path / "sc", 2, CollectionConfig(dense=DenseConfig(backend="onnx")))
    try:
        with pytest.raises(InvalidInputError, match="shard 0 .* holds no documents"):  # nothing to calibrate on
            sc.add([CLEAN_NEW], screen=True)
        sc.add(scifact_docs(300))
        sc.commit()
        with pytest.raises(InvalidInputError, match="max_fpr"):
            sc.add([CLEAN_NEW], screen=True, max_fpr=0)
        assert sc.add([STUFFED, CLEAN_NEW], screen=True) == 2  # both taken: one buffered, one held
        sc.commit()
        held = sc.quarantined()
        assert [h["id"] for h in held] == ["stuffed"] and "stuffing" in held[0]["reasons"]
        assert sc.quarantine_count() == 1 and sc.count() == 301
        assert sc.get_many(["stuffed", "clean-new"])[0] is None and sc.get("clean-new").text == CLEAN_NEW["text"]
        for method in ("bm25", "dense"):
            assert "stuffed" not in set(sc.search("microglia brain immune", k=100, method=method).ids[0])
        with pytest.raises(NotFoundError, match="'nope'"):
            sc.release(["stuffed", "nope"])
        sc.commit()
        assert sc.quarantine_count() == 1 and sc.get_many(["stuffed"]) == [None]
        assert sc.release(["stuffed"]) == 1
        sc.commit()
        assert sc.quarantined() == [] and "stuffed" in set(sc.search("microglia brain immune", k=5).ids[0])
        sc.upsert([{**STUFFED, "id": "stuffed-2"}, {**STUFFED, "id": "stuffed-3"}], screen=True)
        sc.commit()
        assert sorted(h["id"] for h in sc.quarantined()) == ["stuffed-2", "stuffed-3"]
        assert {shard_of("stuffed-2", 2), shard_of("stuffed-3", 2)} == {0, 1}  # held on both shards
        with pytest.raises(NotFoundError):
            sc.drop_quarantined(["stuffed-2", "nope"])
        assert sc.drop_quarantined(["stuffed-2", "stuffed-3"]) == 2 and sc.quarantine_count() == 0
        assert sc.get_many(["stuffed-2", "stuffed-3"]) == [None, None]
    finally:
        sc.close()


def test_ingest_reads_parquet_and_uris(cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retrievo.distributed import ingest

    docs = [{"id": f"p{i}", "title": f"title {i}", "text": f"text about topic{i % 9} and more words",
             "year": 2000 + i % 7} for i in range(120)]
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "docs.parquet")
    lexical = CollectionConfig(dense=None)
    rep = ingest(tmp_path / "docs.parquet", tmp_path / "from-parquet", 2, lexical, show_progress=False)
    assert rep.documents == 120
    with ShardedCollection.open(tmp_path / "from-parquet") as sc:
        got = sc.get("p7")
        assert (got.title, got.text, got.metadata) == ("title 7", docs[7]["text"], {"year": docs[7]["year"]})
        assert sc.count({"year": 2003}) == sum(1 for d in docs if d["year"] == 2003)
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"id": d["id"], "title": d["title"], "text": d["text"],
                                         "metadata": {"year": d["year"]}}) + "\n" for d in docs))
    rep = ingest(jsonl.as_uri(), tmp_path / "from-uri", 3, lexical, show_progress=False)  # file:// through pyarrow
    assert rep.documents == 120
    with ShardedCollection.open(tmp_path / "from-uri") as sc:
        assert sc.get("p7").metadata == {"year": docs[7]["year"]} and sc.count() == 120


def test_rerank_and_calibrated_cutoff_run_once_on_the_driver(cluster, tmp_path, tiny_cross_encoder):
    docs = scifact_docs(300)
    queries = {str(i): d["title"] for i, d in enumerate(docs[:30])}
    qrels = {str(i): {str(d["_id"]): 1} for i, d in enumerate(docs[:30])}
    single = Collection.create(tmp_path / "single", CollectionConfig(dense=None))
    single.add(docs)
    single.commit()
    sc = ShardedCollection.create(tmp_path / "sharded", 3, CollectionConfig(dense=None))
    try:
        sc.add(docs)
        sc.commit()
        texts = list(queries.values())[:8]
        kw = dict(rerank=str(tiny_cross_encoder), rerank_depth=20)
        assert not same_top(single.search(texts, k=10, **kw), sc.search(texts, k=10, **kw))
        cal_one = single.searcher.calibrate(queries, qrels, depth=10)
        cal_sharded = sc.searcher.calibrate(queries, qrels, depth=10)  # kept in the sharded root's folder
        assert cal_sharded.key == cal_one.key
        want = single.search(texts, k=10, min_probability=0.5)
        got = sc.search(texts, k=10, min_probability=0.5)
        assert got.counts.tolist() == want.counts.tolist() and not same_top(want, got)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
    finally:
        single.close()
        sc.close()
