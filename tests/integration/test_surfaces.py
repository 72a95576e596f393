"""The same search requests through the Python API, the command line (``--json``) and the HTTP server give
the same ids and scores — a grid over method, dense index, fusion, feedback, typo correction, filter,
calibrated cut-off, SPLADE mode and the query adapter — and the settings a surface leaves out start from
the collection's config on every surface (the CLI once started fusion and index settings from retrievo's
defaults, so ``--ef-search`` alone searched an HNSW collection exactly, and ``--weights`` dropped the
collection's fusion method)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import DenseConfig, DenseIndexConfig, FusionConfig, PRFConfig, SparseConfig
from retrievo.errors import InvalidInputError
from retrievo.server.process import ServerProcess

KEY = "surfaces-key"
Q = ["microglia are the immune cells of the brain", "vitamin D deficiency and multiple sclerosis",
     "stem cell differentiation in bone marrow", "micorglia imune cels in the brian"]

# (Python keywords, CLI flags, HTTP body) of one request; every case runs one query through all three
CASES = {
    "bm25": ({"method": "bm25"}, ["--method", "bm25"], {"method": "bm25"}),
    "dense": ({"method": "dense"}, ["--method", "dense"], {"method": "dense"}),
    "hybrid": ({"method": "hybrid"}, ["--method", "hybrid"], {"method": "hybrid"}),
    "hybrid-weights": ({"method": "hybrid", "fusion": {"weights": (0.7, 0.3)}}, ["--method", "hybrid", "--weights", "0.7,0.3"],
                       {"method": "hybrid", "fusion": {"weights": [0.7, 0.3]}}),
    "hybrid-convex": ({"method": "hybrid", "fusion": {"method": "convex"}}, ["--method", "hybrid", "--fusion", "convex"],
                      {"method": "hybrid", "fusion": {"method": "convex"}}),
    "dense-int8": ({"method": "dense", "index": "int8"}, ["--method", "dense", "--index", "int8"],
                   {"method": "dense", "index": "int8"}),
    "dense-hnsw": ({"method": "dense", "index": {"kind": "hnsw", "ef_search": 16}},
                   ["--method", "dense", "--index", "hnsw", "--ef-search", "16"],
                   {"method": "dense", "index": {"kind": "hnsw", "ef_search": 16}}),
    "bm25-rm3": ({"method": "bm25", "prf": True}, ["--method", "bm25", "--prf"], {"method": "bm25", "prf": True}),
    "hybrid-prf": ({"method": "hybrid", "prf": PRFConfig(fb_terms=5)}, ["--method", "hybrid", "--prf", "--fb-terms", "5"],
                   {"method": "hybrid", "prf": {"fb_terms": 5}}),
    "bm25-typos": ({"method": "bm25", "correct_typos": True}, ["--method", "bm25", "--correct-typos"],
                   {"method": "bm25", "correct_typos": True}),
    "bm25-filter": ({"method": "bm25", "filter": {"year": {"$gte": 2010}}},
                    ["--method", "bm25", "--filter", '{"year": {"$gte": 2010}}'],
                    {"method": "bm25", "filter": {"year": {"$gte": 2010}}}),
    "hybrid-filter-binary": ({"method": "hybrid", "filter": {"year": {"$lt": 2010}}, "index": "binary"},
                             ["--method", "hybrid", "--filter", '{"year": {"$lt": 2010}}', "--index", "binary"],
                             {"method": "hybrid", "filter": {"year": {"$lt": 2010}}, "index": "binary"}),
    "bm25-cutoff": ({"method": "bm25", "min_probability": 0.2}, ["--method", "bm25", "--min-probability", "0.2"],
                    {"method": "bm25", "min_probability": 0.2}),
    "hybrid-cutoff": ({"method": "hybrid", "min_probability": 0.2}, ["--method", "hybrid", "--min-probability", "0.2"],
                      {"method": "hybrid", "min_probability": 0.2}),
    "splade-approx": ({"method": "splade", "sparse": {"mode": "approx", "query_cut": 5}},
                      ["--method", "splade", "--sparse-mode", "approx", "--query-cut", "5"],
                      {"method": "splade", "sparse": {"mode": "approx", "query_cut": 5}}),
    "three-signals": ({"method": "bm25+dense+splade", "fusion": {"method": "convex"}},
                      ["--method", "bm25+dense+splade", "--fusion", "convex"],
                      {"method": "bm25+dense+splade", "fusion": {"method": "convex"}}),
    "dense-adapter": ({"method": "dense", "adapter": True}, ["--method", "dense", "--adapter"],
                      {"method": "dense", "adapter": True}),
    "hybrid-e2rank": ({"method": "hybrid", "rerank": "e2rank", "rerank_depth": 30},
                      ["--method", "hybrid", "--rerank", "e2rank", "--rerank-depth", "30"],
                      {"method": "hybrid", "rerank": "e2rank", "rerank_depth": 30}),
    "bm25-cross-encoder": ({"method": "bm25", "rerank": "{tiny_ce}", "rerank_depth": 20},
                           ["--method", "bm25", "--rerank", "{tiny_ce}", "--rerank-depth", "20"],
                           {"method": "bm25", "rerank": "{tiny_ce}", "rerank_depth": 20}),
}


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "retrievo", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def served(tmp_path_factory, scifact_small):
    """BM25 + MiniLM (ONNX) + SPLADE-tiny over 260 SciFact documents in two segments with deletions; the
    collection fuses with RRF (k 30) by default; calibrated for two settings, with a query adapter; served."""
    root = tmp_path_factory.mktemp("surfaces")
    docs = [{**d, "metadata": {"year": 2000 + i % 20}} for i, d in enumerate(scifact_small[:260])]
    cfg = CollectionConfig(dense=DenseConfig(backend="onnx"), sparse=SparseConfig(),
                           fusion=FusionConfig(method="rrf", rrf_k=30))
    coll = Collection.create(root / "sci", cfg)
    coll.add(docs[:180])
    coll.commit()
    coll.add(docs[180:])
    coll.delete([docs[2]["_id"], docs[200]["_id"]])
    coll.commit()
    judged = [d for d in docs[10:] if d["title"]][:60]
    queries = {d["_id"]: d["title"] for d in judged}
    qrels = {d["_id"]: {d["_id"]: 1} for d in judged}
    for method in ("bm25", "hybrid"):
        coll.calibrate(queries, qrels, method=method, depth=10)
    coll.fit_query_adapter(queries, qrels, epochs=3)
    coll.close()
    srv = ServerProcess(root, api_key=KEY).start()
    yield root / "sci", srv
    srv.stop()


def _fill(value, tiny_ce):
    """The case with the tiny cross-encoder's folder put in."""
    if isinstance(value, dict):
        return {k: _fill(v, tiny_ce) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, tiny_ce) for v in value]
    return value.replace("{tiny_ce}", str(tiny_ce)) if isinstance(value, str) else value


@pytest.mark.parametrize("name", list(CASES))
def test_the_three_surfaces_agree(served, name, tiny_cross_encoder):
    path, srv = served
    kwargs, flags, body = (_fill(part, tiny_cross_encoder) for part in CASES[name])
    q = Q[3] if name == "bm25-typos" else Q[list(CASES).index(name) % 3]
    coll = Collection.open(path, readonly=True)
    try:
        res = coll.search(q, k=10, **kwargs)
        api = res.row(0)
    finally:
        coll.close()
    out = json.loads(cli("search", str(path), q, "--k", "10", "--json", *flags).stdout)
    r = httpx.post(srv.url + "/v1/collections/sci/search", timeout=120,
                   json={"query": q, "k": 10, "include_text": False, "highlight": False, **body})
    assert r.status_code == 200, r.text
    served_hits = r.json()["results"][0]["hits"]
    assert api, f"{name}: no results"
    assert [(h["id"], h["score"]) for h in out["results"]] == api
    assert [(h["id"], h["score"]) for h in served_hits] == api
    if res.probabilities is not None:
        probs = [round(float(p), 6) for p in res.probabilities[0, :len(api)]]
        assert [h["probability"] for h in out["results"]] == probs == [h["probability"] for h in served_hits]


@pytest.fixture(scope="module")
def hnsw_weighted(tmp_path_factory, scifact_small):
    """5,000 documents with random 384-d vectors (the MiniLM dimension, so text queries can be encoded),
    an HNSW index with a small graph (M 4), and convex fusion weighted 0.9 / 0.1 — settings that make an
    approximate or differently weighted search visibly different from the defaults."""
    from tests.conftest import scifact_docs

    rng = np.random.default_rng(7)
    docs = scifact_docs(5000)
    vecs = rng.normal(size=(len(docs), 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cfg = CollectionConfig(dense=DenseConfig(backend="onnx"), index=DenseIndexConfig(kind="hnsw", M=4, ef_construction=8),
                           fusion=FusionConfig(weights=(0.9, 0.1)))
    path = tmp_path_factory.mktemp("hnsw") / "c"
    coll = Collection.create(path, cfg)
    coll.add(docs, vectors=vecs)
    coll.commit()
    coll.close()
    return path


def test_cli_ef_search_alone_keeps_the_collections_hnsw_index(hnsw_weighted):
    coll = Collection.open(hnsw_weighted, readonly=True)
    try:
        weak = DenseIndexConfig(kind="hnsw", M=4, ef_construction=8, ef_search=1)
        hnsw = coll.search(Q[:3], k=10, method="dense", index=weak)
        flat = coll.search(Q[:3], k=10, method="dense", index="flat")
    finally:
        coll.close()
    # a query for which the two settings differ, so the CLI's answer tells which one it ran
    i = next(i for i in range(3) if hnsw.row(i) != flat.row(i))
    q = Q[i]
    hnsw = hnsw.row(i)
    out = json.loads(cli("search", str(hnsw_weighted), q, "--method", "dense", "--ef-search", "1", "--json").stdout)
    assert [(h["id"], h["score"]) for h in out["results"]] == hnsw


def test_cli_fusion_flags_start_from_the_collections_fusion(hnsw_weighted):
    q = "microglia immune cells"
    coll = Collection.open(hnsw_weighted, readonly=True)
    try:
        theirs = coll.search(q, k=10, method="hybrid", fusion=FusionConfig(method="rrf", weights=(0.9, 0.1))).row(0)
        defaults = coll.search(q, k=10, method="hybrid", fusion=FusionConfig(method="rrf")).row(0)  # equal weights
        assert theirs != defaults
        out = json.loads(cli("search", str(hnsw_weighted), q, "--method", "hybrid", "--fusion", "rrf", "--json").stdout)
        assert [(h["id"], h["score"]) for h in out["results"]] == theirs
        assert coll.search(q, k=10, method="hybrid", fusion={"method": "rrf"}).row(0) == theirs  # the library too
    finally:
        coll.close()


def test_a_calibrator_serves_only_the_setting_it_was_fitted_for(tmp_path, scifact_small):
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    coll.add(scifact_small[:200])
    coll.commit()
    judged = [d for d in scifact_small[:200] if d["title"]][:80]
    queries, qrels = {d["_id"]: d["title"] for d in judged}, {d["_id"]: {d["_id"]: 1} for d in judged}
    coll.calibrate(queries, qrels, method="bm25", depth=10)
    assert coll.search("microglia", min_probability=0.3).probabilities is not None
    with pytest.raises(InvalidInputError, match=r"no calibration for method 'bm25' with the settings 'bm25;typos'"):
        coll.search("microglia", min_probability=0.3, correct_typos=True)  # once cut by the plain bm25 calibrator
    with pytest.raises(InvalidInputError, match=r"'bm25;prf'.*calibrated for: 'bm25'"):
        coll.search("microglia", min_probability=0.3, prf=True)
    typos = coll.calibrate(queries, qrels, method="bm25", depth=10, correct_typos=True)
    assert typos.key == "bm25;typos" and coll.calibrator("bm25", correct_typos=True) == typos
    assert coll.calibrator("bm25") != typos
    res = coll.search("micorglia", min_probability=0.3, correct_typos=True)
    assert res.probabilities is not None
    coll.close()
