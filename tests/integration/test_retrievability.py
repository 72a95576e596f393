"""Retrievability: counts that add up to the results returned, Gini, blind spots, drawn queries, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.errors import InvalidInputError
from retrievo.eval.retrievability import generate_queries, gini, load_queries, retrievability


def test_gini():
    assert gini(np.array([3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 0])) == 0.0
    assert gini(np.array([0, 0, 6])) == pytest.approx(2 / 3)
    assert gini(np.array([1, 2, 3, 4])) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def lexical(tmp_path_factory, scifact_small):
    c = Collection.create(tmp_path_factory.mktemp("ret") / "c", CollectionConfig(dense=None))
    c.add(scifact_small[:100] + [{"id": "island", "text": "zyxwvut qqqplm"}])  # words no query uses
    c.commit()
    yield c
    c.close()


def test_counts_and_blind_spots(lexical, scifact_queries):
    rep = retrievability(lexical, scifact_queries[:40], ["bm25"], cutoff=5)
    res = lexical.search(scifact_queries[:40], k=5)
    assert rep.counts["bm25"].sum() == res.counts.sum()
    top = {d for row in res.ids for d in row if d}
    assert {d for d, c in zip(rep.ids, rep.counts["bm25"], strict=True) if c > 0} == top
    assert "island" in rep.blind_spots and set(rep.blind_spots) == set(rep.ids) - top
    assert rep.summary()["methods"]["bm25"]["gini"] == pytest.approx(gini(rep.counts["bm25"]), abs=1e-4)
    with pytest.raises(InvalidInputError, match="cutoff"):
        retrievability(lexical, ["x"], cutoff=0)


def test_drawn_queries(lexical):
    a = generate_queries(lexical, 50, seed=3)
    assert a == generate_queries(lexical, 50, seed=3) and a != generate_queries(lexical, 50, seed=4)
    assert all(1 <= len(q.split()) <= 3 for q in a.values())
    rep = retrievability(lexical, a, ["bm25"], cutoff=10)
    assert (rep.counts["bm25"] > 0).sum() > 40  # queries drawn from the documents find most of them


def test_query_files_and_cli(lexical, tmp_path, scifact_queries):
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(scifact_queries[:20]) + "\n\n")
    assert list(load_queries(txt).values()) == scifact_queries[:20]
    jl = tmp_path / "q.jsonl"
    jl.write_text("\n".join(json.dumps({"_id": f"q{i}", "text": q}) for i, q in enumerate(scifact_queries[:5])))
    assert load_queries(jl)["q4"] == scifact_queries[4]
    png, spots = tmp_path / "lorenz.png", tmp_path / "blind.txt"
    proc = subprocess.run([sys.executable, "-m", "retrievo", "retrievability", str(lexical.path), str(txt), "--cutoff",
                           "5", "--plot", str(png), "--blind-spots", str(spots), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["queries"] == 20 and out["methods"]["bm25"]["never_retrieved"] > 0
    assert png.stat().st_size > 5000 and "island" in spots.read_text().split()
    assert out["blind_spots"] == len(spots.read_text().split())
