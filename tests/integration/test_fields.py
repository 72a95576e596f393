"""Field-weighted BM25 (the bm25f signal) against a brute-force reference, after updates and merges, with weights
chosen per search; and tool catalogues through the CLI (--tools, --expand-from)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.analysis.analyzer import Analyzer
from retrievo.config import AnalyzerConfig, BM25Config
from retrievo.errors import ConfigError, InvalidInputError
from tests.conftest import make_beir

FIELDS = {"title": 2.0, "text": 1.0, "tags": 0.5}
B = {"title": 0.3, "tags": 1.0}


def _docs(scifact_small, n, start=0):
    out = []
    for i, d in enumerate(scifact_small[start:start + n]):
        words = d["text"].split()
        tags = [" ".join(words[j:j + 3]) for j in range(0, min(len(words), 12), 4)] if i % 3 else []
        out.append({**d, "metadata": {"tags": tags} if tags else {}})
    return out


def reference(docs, query, fields, b, k1=1.2, default_b=0.75):
    """BM25F as BM25FConfig writes it, document by document, in plain Python."""
    an = Analyzer(AnalyzerConfig())
    def text(d, f):
        if f in ("title", "text"):
            return d.get(f) or ""
        v = d.get("metadata", {}).get(f, "")
        return "\n".join(v) if isinstance(v, list) else v
    toks = [{f: an.tokenize(text(d, f)) for f in fields} for d in docs]
    avg = {f: (sum(len(t[f]) for t in toks) / len(docs)) or 1.0 for f in fields}
    q = an.tokenize(query)
    tfs = []
    for t in toks:
        tf: Counter = Counter()
        for f, w in fields.items():
            if w <= 0:
                continue
            bf = b.get(f, default_b)
            norm = 1 - bf + bf * len(t[f]) / avg[f]
            for term, c in Counter(t[f]).items():
                tf[term] += w * c / norm
        tfs.append(tf)
    n = len(docs)
    scores = {}
    for d, tf in zip(docs, tfs, strict=True):
        s = 0.0
        for term in q:
            if tf.get(term, 0) > 0:
                df = sum(1 for x in tfs if x.get(term, 0) > 0)
                s += math.log1p((n - df + 0.5) / (df + 0.5)) * tf[term] / (k1 + tf[term])
        if s > 0:
            scores[d["_id"]] = s
    return scores


def _check(coll, live_docs, queries, fields=FIELDS, weights=None):
    for q in queries:
        ref = reference(live_docs, q, {**fields, **(weights or {})}, B)
        res = coll.search(q, k=10, method="bm25f", options={"field_weights": weights} if weights else None)
        got = {i: float(s) for i, s in res.row(0)}
        top = sorted(ref.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert len(got) == len(top)
        for i, s in top:
            # the 10th place may tie; everything the engine returns has the reference's score
            if i in got:
                assert got[i] == pytest.approx(s, rel=1e-5)
        for i, s in got.items():
            assert ref[i] == pytest.approx(s, rel=1e-5)
        assert min(got.values()) == pytest.approx(top[-1][1], rel=1e-5)


def test_matches_reference_after_updates_and_merges(tmp_path, scifact_small, scifact_queries):
    cfg = CollectionConfig(dense=None, max_segments=2, signals={"bm25f": {"fields": FIELDS, "b": B}})
    coll = Collection.create(tmp_path / "c", cfg)
    docs = _docs(scifact_small, 120)
    coll.add(docs[:60])
    coll.commit()
    coll.add(docs[60:])
    coll.commit()
    queries = scifact_queries[:8]
    _check(coll, docs, queries)
    # weights per search: zero a field, or weigh it up
    _check(coll, docs, queries[:4], weights={"tags": 0.0})
    _check(coll, docs, queries[:4], weights={"title": 5.0, "text": 0.5})
    # deletions and replacements: the statistics are those of the live documents
    gone = [d["_id"] for d in docs[10:30]]
    coll.delete(gone)
    new = [{**d, "text": d["text"] + " microglia microglia"} for d in docs[40:50]]
    coll.upsert(new)
    coll.commit()
    live = [d for d in docs if d["_id"] not in set(gone) and d["_id"] not in {x["_id"] for x in new}] + new
    _check(coll, live, queries + ["microglia"])
    coll.add(_docs(scifact_small, 30, start=150))
    coll.commit()  # a third segment: merged down to max_segments
    live += _docs(scifact_small, 30, start=150)
    assert len(coll.info()["segments"]) <= 2
    _check(coll, live, queries)
    coll.close()
    reopened = Collection.open(tmp_path / "c")
    _check(reopened, live, queries[:3])
    reopened.close()


def test_one_field_is_bm25(tmp_path, scifact_small, scifact_queries):
    """With only the text field, BM25F is Lucene's BM25 (same k1, b)."""
    cfg = CollectionConfig(dense=None, bm25=BM25Config(k1=0.9, b=0.4, fields=("text",)),
                           signals={"bm25f": {"fields": {"text": 1.0}, "default_b": 0.4, "k1": 0.9}})
    coll = Collection.create(tmp_path / "c", cfg)
    coll.add(scifact_small[:200])
    coll.commit()
    for q in scifact_queries[:10]:
        a = coll.search(q, k=20, method="bm25")
        f = coll.search(q, k=20, method="bm25f")
        np.testing.assert_allclose(f.scores, a.scores, rtol=1e-5)
        assert set(f.ids[0][f.scores[0] > a.scores[0][-1] + 1e-4]) == set(a.ids[0][a.scores[0] > a.scores[0][-1] + 1e-4])
    coll.close()


def test_bad_settings_and_requests(tmp_path, scifact_small):
    with pytest.raises(ConfigError, match="weight must be a finite number"):
        Collection.create(tmp_path / "x", CollectionConfig(dense=None, signals={"bm25f": {"fields": {"text": -1}}}))
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="not one of the fields"):
        Collection.create(tmp_path / "y", CollectionConfig(dense=None, signals={"bm25f": {"fields": {"text": 1},
                                                                                           "b": {"title": 0.5}}}))
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None, signals={"bm25f": {}}))
    coll.add(scifact_small[:20])
    coll.commit()
    with pytest.raises(InvalidInputError, match="does not index; its fields: text, title"):
        coll.search("cells", method="bm25f", options={"field_weights": {"body": 1}})
    with pytest.raises(InvalidInputError, match=r"field_weights\['text'\] must be a finite number"):
        coll.search("cells", method="bm25f", options={"field_weights": {"text": -2}})
    with pytest.raises(InvalidInputError, match="field_weights is for the bm25f signal"):
        coll.search("cells", method="bm25", options={"field_weights": {"text": 1}})
    plain = Collection.create(tmp_path / "p", CollectionConfig(dense=None))
    plain.add(scifact_small[:5])
    plain.commit()
    with pytest.raises(InvalidInputError, match="--tools"):
        plain.search("cells", method="bm25f")
    coll.close()
    plain.close()


def _cli(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "retrievo", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


TOOLS = [
    {"type": "function", "function": {"name": "get_current_weather", "description": "Weather conditions now",
                                      "parameters": {"type": "object", "properties": {
                                          "location": {"type": "string", "description": "City and country"}},
                                          "required": ["location"]}}},
    {"type": "function", "function": {"name": "convertCurrency", "description": "Exchange rates between currencies",
                                      "parameters": {"type": "object", "properties": {
                                          "from_code": {"type": "string"}, "to_code": {"type": "string"}}}}},
    {"name": "search_flights", "description": "Find flights between two airports on a date",
     "parameters": {"type": "object", "properties": {"origin": {"type": "string"}, "date": {"type": "string"}}}},
]


def test_cli_tools_with_expansion(tmp_path):
    spec = tmp_path / "tools.json"
    spec.write_text(json.dumps(TOOLS))
    log = make_beir(tmp_path / "log", [{"_id": "x", "text": "unused"}],
                    {"q1": "do I need an umbrella in Lisbon", "q2": "how many yen is a euro"},
                    [("q1", "get_current_weather", 1), ("q2", "convertCurrency", 1)])
    (log / "qrels" / "test.tsv").rename(log / "qrels" / "train.tsv")
    coll = tmp_path / "tools"
    out = _cli("index", str(spec), "--collection", str(coll), "--tools", "--no-dense", "--expand-from", str(log),
               "--quiet").stdout
    assert "indexed 3 documents" in out
    res = json.loads(_cli("search", str(coll), "umbrella", "--method", "bm25f", "--json").stdout)
    assert res["results"][0]["id"] == "get_current_weather"  # found through its training query only
    res = json.loads(_cli("search", str(coll), "umbrella", "--method", "bm25f", "--field-weights",
                          '{"x_queries": 0}', "--json").stdout)
    assert res["results"] == []
    res = json.loads(_cli("search", str(coll), "currency exchange", "--method", "bm25f", "--json").stdout)
    assert res["results"][0]["id"] == "convertCurrency"
    # a bad spec is named, and nothing changes
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(TOOLS + [{"name": "broken", "parameters": {"properties": {"a": {"type": 7}}}}]))
    gen = json.loads(_cli("info", str(coll), "--json").stdout)["generation"]
    proc = _cli("index", str(bad), "--collection", str(coll), "--tools", "--upsert", "--quiet", ok=False)
    assert proc.returncode == 2 and "tool 3 ('broken')" in proc.stderr and "parameters.properties.a.type" in proc.stderr
    assert json.loads(_cli("info", str(coll), "--json").stdout)["generation"] == gen
    proc = _cli("index", str(bad), "--collection", str(tmp_path / "new"), "--tools", "--quiet", ok=False)
    assert proc.returncode == 2 and not (tmp_path / "new").exists()
