"""Token vectors inside a collection: exact MaxSim, MUVERA + rescoring, fusion, filters, consistency of commits
and merges with a fresh build, a late-interaction (PyLate-format) checkpoint, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import MultiVectorConfig
from retrievo.encoders.tokens import TokenEncoder
from retrievo.errors import ConfigError, InvalidInputError
from retrievo.indexes.muvera import chamfer

QUERIES = ["microglia in the brain", "vitamin D and bone density", "stem cell differentiation",
           "tumour suppressor genes in cancer"]
FDE = {"repetitions": 6, "simhash": 3, "projection_dim": 8, "partitions": "simhash"}  # bit-equal to a fresh build


def _settings(model: str, **kw) -> dict:
    return {"model": model, "dim": 16, "fde": FDE, **kw}


def _docs(scifact_small, n, start=0):
    out = []
    for i, d in enumerate(scifact_small[start:start + n]):
        out.append({**d, "metadata": {"year": 2000 + (start + i) % 20}})
    return out


@pytest.fixture(scope="module")
def mv_coll(tmp_path_factory, scifact_small, tiny_st):
    path = tmp_path_factory.mktemp("mv") / "c"
    coll = Collection.create(path, CollectionConfig(dense=None, signals={"multivector": _settings(tiny_st)}))
    coll.add(_docs(scifact_small, 60))
    coll.commit()
    yield coll
    coll.close()


def _brute_force(coll, queries):
    """MaxSim of each query with every stored document, from the token vectors encoded afresh."""
    enc = TokenEncoder(MultiVectorConfig.from_dict(coll.config.signals["multivector"]))
    state = coll._state
    texts = [state.segments[0].data.stored(r) for r in range(state.n_rows)]
    docs = enc.encode_documents([(t.get("title", "") + " " + t.get("text", "")).strip() for t in texts])
    q = enc.encode_queries(queries)
    return np.array([[chamfer(qi, d.astype(np.float32)) for d in docs] for qi in q])


def assert_same_rows(a, b, queries) -> None:
    """The same documents in the same order, and the same MaxSim scores up to float32 rounding: the two searches'
    matrix products differ in shape, and BLAS sums in shape-dependent orders (bit-equal on one CPU, the 7th
    digit apart on another)."""
    for i in queries:
        assert [d for d, _ in a.row(i)] == [d for d, _ in b.row(i)]
        np.testing.assert_allclose([s for _, s in a.row(i)], [s for _, s in b.row(i)], rtol=1e-6)


def test_manifest_keeps_every_setting(mv_coll):
    stored = json.loads((mv_coll.path / "manifest.json").read_text())["config"]["signals"]["multivector"]
    assert stored["fde"] == {**FDE, "projection": "dense", "final_dim": None, "seed": 42, "fill_empty": True,
                             "partitions": "simhash"}
    assert stored["fde_candidates"] == 150 and stored["skip"] == "punctuation" and stored["dim"] == 16


def test_sampled_partitions_are_the_default_and_older_collections_keep_simhash(tmp_path, scifact_small, tiny_st):
    """A collection made without FDE settings gets sampled partitions (40, 5, 16); one whose manifest was
    written before the setting existed (no "partitions") is read as what it is, SimHash, and searches as a
    SimHash collection of the same documents does."""
    from retrievo.signals.multivector import CENTROIDS_FILE

    made = Collection.create(tmp_path / "d", CollectionConfig(dense=None, signals={"multivector": {"model": tiny_st,
                                                                                                  "dim": 16}}))
    made.add(_docs(scifact_small, 12))
    made.commit()
    stored = json.loads((made.path / "manifest.json").read_text())["config"]["signals"]["multivector"]["fde"]
    assert stored["partitions"] == "sampled" and stored["repetitions"] == 40 and (made.path / CENTROIDS_FILE).exists()
    made.close()
    old = Collection.create(tmp_path / "old", CollectionConfig(dense=None, signals={"multivector": _settings(tiny_st)}))
    old.add(_docs(scifact_small, 12))
    old.commit()
    want = old.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_candidates": 5})
    old.close()
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["config"]["signals"]["multivector"]["fde"]["partitions"]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    reopened = Collection.open(tmp_path / "old")
    assert reopened.signals["multivector"].config.fde.partitions == "simhash"
    got = reopened.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_candidates": 5})
    assert_same_rows(got, want, range(len(QUERIES)))
    reopened.close()


def test_exact_maxsim_equals_brute_force(mv_coll):
    ref = _brute_force(mv_coll, QUERIES)
    res = mv_coll.search(QUERIES, k=10, method="multivector")
    ids = mv_coll._state.ids
    for i in range(len(QUERIES)):
        want = np.argsort(-ref[i], kind="stable")[:10]
        got = res.row(i)
        assert [d for d, _ in got] == [ids[r] for r in want]
        np.testing.assert_allclose([s for _, s in got], ref[i][want], rtol=2e-3, atol=2e-3)


def test_fde_search_rescored_exactly(mv_coll):
    exact = mv_coll.search(QUERIES, k=10, method="multivector")
    # every document a candidate: FDE + rescoring is exact MaxSim
    full = mv_coll.search(QUERIES, k=10, method="multivector", options={"fde": True, "fde_candidates": 60})
    few = mv_coll.search(QUERIES, k=10, method="multivector", options={"fde": True, "fde_candidates": 20})
    for i in range(len(QUERIES)):
        assert_same_rows(full, exact, [i])
        scores = dict(exact.row(i))
        ref = _brute_force(mv_coll, [QUERIES[i]])[0]
        for d, s in few.row(i):  # rescored: the exact MaxSim of each document returned
            r = int(np.flatnonzero(mv_coll._state.ids == d)[0])
            assert s == pytest.approx(ref[r], rel=2e-3, abs=2e-3)
            if d in scores:
                assert s == pytest.approx(scores[d], rel=1e-5)
    for kind in ("int8", "binary", "hnsw"):
        res = mv_coll.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_index": kind})
        assert all(len(res.row(i)) == 5 for i in range(len(QUERIES)))
        assert (mv_coll.path / "segments").exists()


def test_filter_and_fusion(mv_coll):
    flt = {"year": {"$gte": 2015}}
    res = mv_coll.search(QUERIES, k=10, method="multivector", filter=flt)
    fde = mv_coll.search(QUERIES, k=10, method="multivector", filter=flt, options={"fde": True})
    state = mv_coll._state
    ref = _brute_force(mv_coll, QUERIES)
    years = np.array([state.segments[0].data.stored(r)["metadata"]["year"] for r in range(state.n_rows)])
    allowed = years >= 2015
    for i in range(len(QUERIES)):
        rows = np.flatnonzero(allowed)[np.argsort(-ref[i][allowed], kind="stable")][:10]
        assert [d for d, _ in res.row(i)] == [state.ids[r] for r in rows]
        assert {d for d, _ in fde.row(i)} <= set(state.ids[allowed])
    fused = mv_coll.search(QUERIES, k=10, method="bm25+multivector", fusion={"method": "rrf"})
    assert all(len(fused.row(i)) == 10 for i in range(len(QUERIES)))
    with pytest.raises(InvalidInputError, match="multivector"):
        mv_coll.search(QUERIES, method="bm25", options={"fde": True})


def _arrays_by_id(coll):
    """Each live document's stored token vectors and FDE, by id."""
    state = coll._state
    out = {}
    for seg in state.segments:
        off = state.offsets[seg.seg]
        ptr, tok, fde = seg.data.mv_indptr, seg.data.mv_tokens, seg.data.mv_fde
        for r in range(seg.n_rows):
            if state.live[off + r]:
                out[state.ids[off + r]] = (np.asarray(tok[ptr[r]:ptr[r + 1]]), np.asarray(fde[r]))
    return out


def test_commits_and_merges_match_a_fresh_build(tmp_path, scifact_small, tiny_st):
    cfg = CollectionConfig(dense=None, max_segments=2, signals={"multivector": _settings(tiny_st)})
    grown = Collection.create(tmp_path / "grown", cfg)
    for start in (0, 15, 30, 45):
        grown.add(_docs(scifact_small, 15, start))
        grown.commit()
    changed = scifact_small[3]["_id"]
    grown.upsert([{"_id": changed, "title": "Changed", "text": "Microglia respond to injury."}])
    grown.delete([scifact_small[i]["_id"] for i in (5, 20, 33)])
    grown.commit()
    assert len(grown._state.segments) <= 2
    grown.compact()

    final = [d for i, d in enumerate(_docs(scifact_small, 60)) if i not in (5, 20, 33)]
    final = [({"_id": changed, "title": "Changed", "text": "Microglia respond to injury."} if d["_id"] == changed
              else d) for d in final]
    fresh = Collection.create(tmp_path / "fresh", cfg)
    fresh.add(final)
    fresh.commit()
    a, b = _arrays_by_id(grown), _arrays_by_id(fresh)
    assert a.keys() == b.keys() and len(a) == 57
    for doc_id in a:
        np.testing.assert_array_equal(a[doc_id][0], b[doc_id][0])
        np.testing.assert_allclose(a[doc_id][1], b[doc_id][1], rtol=1e-5, atol=1e-6)
    for opts in ({}, {"fde": True, "fde_candidates": 30}):
        ra = grown.search(QUERIES, k=8, method="multivector", options=opts)
        rb = fresh.search(QUERIES, k=8, method="multivector", options=opts)
        for i in range(len(QUERIES)):
            assert [d for d, _ in ra.row(i)] == [d for d, _ in rb.row(i)]
    assert scifact_small[5]["_id"] not in {d for i in range(4) for d, _ in ra.row(i)}
    info = grown.info()
    assert info["multivector_dim"] == 16 and info["fde_dim"] == 6 * 8 * 8 and info["multivector_tokens_per_doc"] > 20
    grown.close()
    fresh.close()


def test_sampled_partitions_are_drawn_once_and_kept(tmp_path, scifact_small, tiny_st):
    """partitions="sampled": the centres are drawn from the first commit's tokens, written beside the collection
    before that commit, never changed by later commits or merges; every FDE is the encoding with them; FDE +
    rescoring of every document is exact; a read-only reader and a backup use the same file."""
    from retrievo.indexes.muvera import FixedDimensionalEncoder, sample_centroids
    from retrievo.signals.multivector import CENTROIDS_FILE

    fde = {**FDE, "partitions": "sampled"}
    cfg = CollectionConfig(dense=None, max_segments=2, signals={"multivector": _settings(tiny_st, fde=fde)})
    coll = Collection.create(tmp_path / "km", cfg)
    assert not (coll.path / CENTROIDS_FILE).exists()
    coll.add(_docs(scifact_small, 20))
    coll.commit()
    first = (coll.path / CENTROIDS_FILE).read_bytes()
    centroids = np.load(coll.path / CENTROIDS_FILE)
    fde_cfg = MultiVectorConfig.from_dict(coll.config.signals["multivector"]).fde
    seg = coll._state.segments[0]
    np.testing.assert_array_equal(centroids, sample_centroids(np.asarray(seg.data.mv_tokens), fde_cfg))
    for start in (20, 40):
        coll.add(_docs(scifact_small, 20, start))
        coll.commit()
    coll.delete([scifact_small[3]["_id"]])
    coll.commit()
    coll.compact()
    assert (coll.path / CENTROIDS_FILE).read_bytes() == first  # never drawn again
    enc = FixedDimensionalEncoder(16, fde_cfg, centroids)
    for _doc_id, (tokens, stored) in _arrays_by_id(coll).items():
        want = enc.documents(np.array([0, len(tokens)]), tokens.astype(np.float32))[0]
        np.testing.assert_allclose(stored, want, rtol=1e-5, atol=1e-6)
    exact = coll.search(QUERIES, k=10, method="multivector")
    full = coll.search(QUERIES, k=10, method="multivector", options={"fde": True, "fde_candidates": 60})
    assert_same_rows(full, exact, range(len(QUERIES)))
    few = coll.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_candidates": 15})
    coll.backup(tmp_path / "copy")
    coll.close()
    for path in (tmp_path / "km", tmp_path / "copy"):
        reader = Collection.open(path, readonly=True)
        again = reader.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_candidates": 15})
        assert [again.row(i) for i in range(len(QUERIES))] == [few.row(i) for i in range(len(QUERIES))]
        reader.close()
    # a collection whose centroids are gone says so, instead of encoding queries another way
    (tmp_path / "copy" / CENTROIDS_FILE).unlink()
    broken = Collection.open(tmp_path / "copy", readonly=True)
    with pytest.raises(InvalidInputError, match="partitions are drawn"):
        broken.search(QUERIES, k=5, method="multivector", options={"fde": True})
    broken.close()


def test_bad_input(tmp_path, scifact_small, tiny_st):
    plain = Collection.create(tmp_path / "plain", CollectionConfig(dense=None))
    plain.add(scifact_small[:5])
    plain.commit()
    with pytest.raises(InvalidInputError, match="token vectors"):
        plain.search("x", method="multivector")
    with pytest.raises(ConfigError, match="MultiVectorConfig"):
        Collection.create(tmp_path / "bad", CollectionConfig(signals={"multivector": {"dimension": 8}}))
    assert not (tmp_path / "bad" / "manifest.json").exists()
    with pytest.raises(ConfigError, match="simhash"):
        Collection.create(tmp_path / "bad2", CollectionConfig(signals={"multivector": {"fde": {"simhash": 99}}}))
    nofde = Collection.create(tmp_path / "nofde", CollectionConfig(
        dense=None, signals={"multivector": {**_settings(tiny_st), "fde": None}}))
    nofde.add(scifact_small[:5])
    nofde.commit()
    assert nofde.search("cells", k=2, method="multivector").row(0)
    with pytest.raises(InvalidInputError, match="fde"):
        nofde.search("cells", method="multivector", options={"fde": True})
    with pytest.raises(ConfigError, match="exceeds"):
        bad = Collection.create(tmp_path / "wide", CollectionConfig(
            dense=None, signals={"multivector": {**_settings(tiny_st), "dim": 64}}))
        bad.add(scifact_small[:2])
        bad.commit()


def _pylate_checkpoint(folder, tiny_st_root):
    """A late-interaction checkpoint in PyLate's layout (a transformer and a ``pylate.models.Dense`` projection
    to 8 dimensions, [Q]/[D] markers in the config), built from a config: no weights are downloaded."""
    import shutil
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    hf = Path(tiny_st_root).parent / "hf"
    shutil.copytree(hf, folder)
    (folder / "1_Dense").mkdir()
    torch.manual_seed(0)
    save_file({"linear.weight": torch.randn(8, 32) * 0.2}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 32, "out_features": 8, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"model_type": "ColBERT", "query_prefix": "[unused0]", "document_prefix": "[unused1]", "query_length": 16,
         "document_length": 64, "attend_to_expansion_tokens": False, "similarity_fn_name": "MaxSim"}))
    return folder


def test_late_interaction_checkpoint(tmp_path, scifact_small, tiny_st):
    from sentence_transformers import MultiVectorEncoder

    ckpt = _pylate_checkpoint(tmp_path / "colbert", tiny_st)
    enc = TokenEncoder(MultiVectorConfig(model=str(ckpt)))
    assert enc.kind == "colbert" and enc.dim == 8
    docs = ["Microglia are immune cells of the brain.", "Vitamin D supports bone density."]
    d = enc.encode_documents(docs)
    q = enc.encode_queries(["brain immune cells"])
    ref = MultiVectorEncoder(str(ckpt), device="cpu")
    want = ref.similarity(ref.encode_query(["brain immune cells"]), ref.encode_document(docs))
    got = [chamfer(q[0], x.astype(np.float32)) for x in d]
    np.testing.assert_allclose(got, np.asarray(want[0], dtype=np.float32), rtol=5e-3, atol=5e-3)
    coll = Collection.create(tmp_path / "c", CollectionConfig(
        dense=None, signals={"multivector": {"model": str(ckpt), "fde": FDE}}))
    coll.add(scifact_small[:20])
    coll.commit()
    exact = coll.search(QUERIES, k=5, method="multivector")
    fde = coll.search(QUERIES, k=5, method="multivector", options={"fde": True, "fde_candidates": 20})
    assert_same_rows(exact, fde, range(4))
    coll.close()


def test_maxsim_rerank_stage(mv_coll, tmp_path, scifact_small):
    first = mv_coll.search(QUERIES, k=30, method="bm25")
    res = mv_coll.search(QUERIES, k=10, method="bm25", rerank="maxsim", rerank_depth=30)
    ref = _brute_force(mv_coll, QUERIES)
    ids = list(mv_coll._state.ids)
    for i in range(len(QUERIES)):
        cands = [d for d, _ in first.row(i)]
        want = sorted(cands, key=lambda d: (-ref[i][ids.index(d)], ids.index(d)))[:10]
        got = res.row(i)
        assert [d for d, _ in got] == want
        np.testing.assert_allclose([s for _, s in got], [ref[i][ids.index(d)] for d in want], rtol=2e-3, atol=2e-3)
    plain = Collection.create(tmp_path / "plain", CollectionConfig(dense=None))
    plain.add(scifact_small[:5])
    plain.commit()
    with pytest.raises(InvalidInputError, match="maxsim"):
        plain.search("cells", rerank="maxsim")
    plain.close()


@pytest.mark.parametrize("storage", ["int8", "binary"])
def test_compressed_token_storage(tmp_path, scifact_small, tiny_st, mv_coll, storage):
    coll = Collection.create(tmp_path / "c", CollectionConfig(
        dense=None, signals={"multivector": {**_settings(tiny_st), "storage": storage, "rescore_multiplier": 30}}))
    coll.add(_docs(scifact_small, 60))
    coll.commit()
    seg = coll._state.segments[0].path
    assert (seg / ("mv_int8_codes.npy" if storage == "int8" else "mv_binary.npy")).exists()
    got = coll.search(QUERIES, k=5, method="multivector")
    want = mv_coll.search(QUERIES, k=5, method="multivector")  # float16 scan of the same documents
    assert_same_rows(got, want, range(len(QUERIES)))  # 150 of 60 documents rescored: the exact answer
    info = coll.info()
    assert info["multivector_scan_bytes"] < info["multivector_bytes_on_disk_mmap"]
    coll.close()


def test_api_cli_and_server_agree(tmp_path_factory, scifact_small, tiny_st):
    """The multivector signal made by the CLI (``--signal multivector=...``), searched from the Python API, the CLI
    (``--method multivector --fde``) and a real server on loopback (``"fde": true`` in the body)."""
    import httpx

    from retrievo.server.process import ServerProcess
    from tests.conftest import make_beir
    from tests.integration.test_plugin_signal import cli

    root = tmp_path_factory.mktemp("mv-root")
    src = make_beir(tmp_path_factory.mktemp("mv-src") / "b", scifact_small[:40], {}, [])
    path = root / "mv"
    cli("index", str(src), "--collection", str(path), "--no-dense", "--signal",
        "multivector=" + json.dumps(_settings(tiny_st)), "--quiet")
    srv = ServerProcess(root, api_key="k").start()
    try:
        coll = Collection.open(path, readonly=True)
        for flags, body, opts in (([], {}, {}), (["--fde", "--fde-candidates", "20"], {"fde": True, "fde_candidates": 20},
                                                   {"fde": True, "fde_candidates": 20})):
            api = coll.search(QUERIES[0], k=5, method="multivector", options=opts).row(0)
            out = json.loads(cli("search", str(path), QUERIES[0], "--k", "5", "--json", "--method", "multivector",
                                 *flags).stdout)
            assert [(h["id"], h["score"]) for h in out["results"]] == api
            r = httpx.post(srv.url + "/v1/collections/mv/search", timeout=60, json={
                "query": QUERIES[0], "k": 5, "method": "multivector", "include_text": False, "highlight": False, **body})
            assert r.status_code == 200, r.text
            assert [(h["id"], h["score"]) for h in r.json()["results"][0]["hits"]] == api
        bad = httpx.post(srv.url + "/v1/collections/mv/search", timeout=60,
                         json={"query": "x", "method": "bm25", "fde": True})
        assert bad.status_code == 400 and "multivector" in bad.text
        coll.close()
    finally:
        srv.stop()


def test_eval_shows_progress_and_gives_the_same_run(tmp_path, scifact_small, tiny_st, capsys):
    """Slow settings (exact late interaction, rerankers) are searched in batches under a progress bar on one
    snapshot; the run is the one-batch run (matrix products of other shapes may round the last bit differently)."""
    from retrievo.eval import runner
    from retrievo.request import SearchRequest
    from tests.conftest import make_beir

    docs = scifact_small[:40]
    queries = {f"q{i}": f"{d['title']} {QUERIES[i % 4]}" for i, d in enumerate(docs + docs[:35])}
    qrels = [(q, docs[i % 40]["_id"], 1) for i, q in enumerate(queries)]
    data = make_beir(tmp_path / "b", docs, queries, qrels)
    cfg = CollectionConfig(dense=None, signals={"multivector": _settings(tiny_st)})
    runs = {}
    for progress in (False, True):
        res = runner.run_eval(data, config=cfg, request=SearchRequest(method="multivector"), depth=20,
                              collection_dir=tmp_path / "c", show_progress=progress)
        runs[progress] = res.run
    assert len(queries) > runner.PROGRESS_CHUNK
    assert runs[True].keys() == runs[False].keys()
    for q in runs[True]:  # the same documents in the same order; scores equal up to the last bits of a product
        a, b = runs[True][q], runs[False][q]
        assert sorted(a, key=a.get, reverse=True) == sorted(b, key=b.get, reverse=True)
        assert [a[d] for d in a] == pytest.approx([b[d] for d in a], rel=1e-5)
    assert "search" in capsys.readouterr().err


def test_empty_collection_and_checks_before_retrieval(tmp_path, tiny_st):
    coll = Collection.create(tmp_path / "e", CollectionConfig(dense=None, signals={"multivector": _settings(tiny_st)}))
    for kw in ({"method": "multivector"}, {"method": "multivector", "options": {"fde": True}},
               {"method": "bm25", "rerank": "maxsim"}):
        assert coll.search("cells", **kw).row(0) == []
    coll.close()
    nofde = Collection.create(tmp_path / "n", CollectionConfig(
        dense=None, signals={"multivector": {**_settings(tiny_st), "fde": None}}))
    with pytest.raises(InvalidInputError, match="fde"):  # refused even before there is anything to search
        nofde.search("cells", method="multivector", options={"fde": True})
    nofde.close()
