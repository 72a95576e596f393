"""A signal and a stage added from outside retrievo: nothing in ``store/`` or ``search/`` knows them.

The toy signal is a title-only BM25: it keeps its own term frequencies in every segment (merged, sliced
and memory-mapped by the store through its declared layouts), builds an inverted index per generation and
reads a search option of its own (``title_k1``). The toy stage drops results under an absolute score
(``min_score``). Both are registered when this module is imported — by pytest here, and by the command
line and the server through ``--plugin tests.integration.test_plugin_signal`` — and are used through the
public API, the CLI and the HTTP server, which must give the same ids and scores.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import BM25Config
from retrievo.errors import ConfigError, InvalidInputError
from retrievo.indexes.inverted import InvertedIndex, term_frequencies
from retrievo.request import Option, unregister_option
from retrievo.search.stages import Stage, register_stage, unregister_stage
from retrievo.server.process import ServerProcess
from retrievo.signals import Candidates, Signal, register_signal
from retrievo.signals.registry import unregister_signal
from retrievo.store.segments import Layout
from tests.conftest import make_beir

PLUGIN = "tests.integration.test_plugin_signal"  # importable from the repository root, as CI runs
KEY = "plugin-key"


class TitleBM25(Signal):
    """BM25 over document titles only (b = 0.75, k1 from the request's ``title_k1``)."""

    name = "title"
    layouts = (Layout("csr", ("title_indptr", "title_terms", "title_counts")), Layout("rows", ("title_len",)))
    options = (Option("title_k1", "--title-k1", "float", "k1 of the title-only BM25", gt=0, default=1.2),)

    def encode(self, batch):
        indptr, terms, counts, lengths = term_frequencies(
            (self.host.analyzer.tokenize(d.title) for d in batch.docs), batch.vocab)
        return {"title_indptr": indptr, "title_terms": terms, "title_counts": counts, "title_len": lengths}, {}

    def load(self, snapshot):
        return self.data(snapshot)  # the title arrays over all rows; indexes are built per k1 below

    def search(self, ctx, depth):
        snap, k1 = ctx.snapshot, float(ctx.request.options["title_k1"])
        inv = snap.derived.get(("title", k1))
        if inv is None:
            d = snap.signals["title"]
            inv = snap.derived[("title", k1)] = InvertedIndex(
                d.title_indptr, d.title_terms, d.title_counts, d.title_len, snap.live, len(snap.vocab),
                BM25Config(k1=k1, b=0.75))
        terms = [np.array([snap.vocab[t] for t in self.host.analyzer.tokenize(q) if t in snap.vocab], dtype=np.int64)
                 for q in ctx.queries]
        return Candidates.of(inv.search(terms, depth, ctx.allowed))


class MinScore(Stage):
    """Drop results scoring under ``min_score`` (after fusion)."""

    name = "min_score"
    order = 800
    options = (Option("min_score", "--min-score", "float", "drop results scoring under this"),)

    def active(self, request) -> bool:
        return request.options.get("min_score") is not None

    def apply(self, ctx, lists):
        (name, c), = lists.items()
        keep = (c.scores >= ctx.request.options["min_score"]) & (c.rows >= 0)
        counts = keep.sum(axis=1)  # lists are sorted: what is kept is a prefix
        cut = np.arange(c.rows.shape[1])[None, :] >= counts[:, None]
        rows, scores = c.rows.copy(), c.scores.copy()
        rows[cut], scores[cut] = -1, -np.inf
        return {name: Candidates(rows, scores, counts.astype(np.int64))}


register_signal(TitleBM25, replace=True)
register_stage(MinScore, replace=True)


@pytest.fixture(scope="module", autouse=True)
def _unregister_after_this_module():
    """The registries are process-wide: leave them as the other tests expect."""
    yield
    unregister_signal("title")
    unregister_stage("min_score")
    for name in ("title_k1", "min_score"):
        unregister_option(name)

QUERIES = ["microglia in the brain", "vitamin D deficiency and multiple sclerosis", "stem cells differentiation"]


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "retrievo", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def brute_title_bm25(docs: list[dict], query: str, analyzer: Any, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """The title-only BM25 score of every document, by hand (Lucene's formula, as retrievo's BM25)."""
    titles = {d["_id"]: Counter(analyzer.tokenize(d.get("title", ""))) for d in docs}
    n = len(titles)
    avgdl = sum(sum(c.values()) for c in titles.values()) / n
    df = Counter(t for c in titles.values() for t in c)
    out = {}
    for doc_id, tf in titles.items():
        dl = sum(tf.values())
        s = sum(math.log1p((n - df[t] + 0.5) / (df[t] + 0.5)) * tf[t] / (tf[t] + k1 * (1 - b + b * dl / avgdl))
                for t in analyzer.tokenize(query) if t in tf)
        if s > 0:
            out[doc_id] = s
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, scifact_small):
    """A lexical collection with the title signal, made by the CLI, committed twice with a delete, then
    compacted (the store slices and merges the plugin's arrays); served by a server that loads the plugin."""
    root = tmp_path_factory.mktemp("plugin-root")
    docs = [d for d in scifact_small if d["title"]][:240]
    src1 = make_beir(tmp_path_factory.mktemp("src1") / "b", docs[:150], {}, [])
    src2 = make_beir(tmp_path_factory.mktemp("src2") / "b", docs[150:], {}, [])
    path = root / "titles"
    cli("index", str(src1), "--collection", str(path), "--no-dense", "--signal", "title", "--plugin", PLUGIN, "--quiet")
    cli("index", str(src2), "--collection", str(path), "--plugin", PLUGIN, "--quiet")
    coll = Collection.open(path)
    gone = [docs[3]["_id"], docs[160]["_id"]]
    coll.delete(gone)
    coll.commit()
    coll.compact()
    coll.close()
    live = [d for d in docs if d["_id"] not in gone]
    srv = ServerProcess(root, api_key=KEY, args=["--plugin", PLUGIN]).start()
    yield path, live, srv
    srv.stop()


def test_the_plugin_signal_scores_titles_through_the_store(served):
    path, live, _ = served
    coll = Collection.open(path, readonly=True)
    try:
        assert coll.info()["signals"] == ["bm25", "title"] and len(coll) == len(live)
        assert len(coll.snapshot().segments) == 1  # compacted: the title arrays went through a merge
        for q in QUERIES:
            want = brute_title_bm25(live, q, coll.analyzer)
            got = coll.search(q, k=10, method="title").row(0)
            assert len(got) == min(10, len(want)) > 0
            np.testing.assert_allclose([s for _, s in got], sorted(want.values(), reverse=True)[:10], rtol=1e-5)
            for d, s in got:
                assert s == pytest.approx(want[d], rel=1e-5)
        fused = coll.search(QUERIES[0], k=10, method="bm25+title")
        assert fused.row(0) != coll.search(QUERIES[0], k=10, method="bm25").row(0)
    finally:
        coll.close()


def _http(srv: ServerProcess, body: dict) -> list[tuple[str, float]]:
    r = httpx.post(srv.url + "/v1/collections/titles/search", json={**body, "include_text": False, "highlight": False},
                   timeout=60)
    assert r.status_code == 200, r.text
    return [(h["id"], h["score"]) for h in r.json()["results"][0]["hits"]]


@pytest.mark.parametrize("case", [
    ({"method": "bm25+title"}, [], {"method": "bm25+title"}),
    ({"method": "title", "options": {"title_k1": 2.5}}, ["--title-k1", "2.5"], {"method": "title", "title_k1": 2.5}),
    ({"method": "bm25+title", "fusion": {"weights": (0.3, 0.7)}, "options": {"min_score": 0.4}},
     ["--weights", "0.3,0.7", "--min-score", "0.4"],
     {"method": "bm25+title", "fusion": {"weights": [0.3, 0.7]}, "min_score": 0.4}),
], ids=["fused", "plugin-option", "fusion-and-plugin-stage"])
def test_api_cli_and_server_agree_on_the_plugin(served, case):
    path, _, srv = served
    kwargs, flags, body = case
    coll = Collection.open(path, readonly=True)
    try:
        for q in QUERIES[:2]:
            api = coll.search(q, k=10, **kwargs).row(0)
            assert api, "every query matches some title"
            out = json.loads(cli("search", str(path), q, "--k", "10", "--json", "--plugin", PLUGIN,
                                 "--method", kwargs["method"], *flags).stdout)
            assert [(h["id"], h["score"]) for h in out["results"]] == api
            assert _http(srv, {"query": q, "k": 10, **body}) == api
        if "min_score" in kwargs.get("options", {}):
            everything = coll.search(QUERIES[0], k=10, **{**kwargs, "options": {}}).row(0)
            cut = coll.search(QUERIES[0], k=10, **kwargs).row(0)
            assert cut == [h for h in everything if h[1] >= 0.4] and 0 < len(cut) < len(everything)
    finally:
        coll.close()


def test_without_the_plugin_the_collection_says_what_is_missing(served, tmp_path):
    path, _, srv = served
    bad = cli("search", str(path), "brain", "--method", "bm25+title", ok=False)  # no --plugin: not registered
    assert bad.returncode == 2 and "unknown method 'bm25+title'" in bad.stderr
    body = httpx.get(srv.url + "/openapi.json").json()["components"]["schemas"]["SearchRequest"]["properties"]
    assert "title_k1" in body and "min_score" in body and "bm25+title" in json.dumps(body["method"])
    unregister_signal("title")
    try:
        with pytest.raises(ConfigError, match="title.*no loaded plugin registers"):
            Collection.open(path)  # for writing: its new segments would lack the title arrays
    finally:
        register_signal(TitleBM25, replace=True)
    lex = Collection.create(tmp_path / "lex", CollectionConfig(dense=None))
    lex.add([{"_id": "a", "title": "x", "text": "x y"}])
    lex.commit()
    with pytest.raises(InvalidInputError, match="needs the 'title' signal"):
        lex.search("x", method="title")
    lex.close()
