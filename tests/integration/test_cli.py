"""End to end through the real CLI (subprocesses), lexical methods on a SciFact subset."""

import json
import subprocess
import sys

import pytest

from tests.conftest import SCIFACT, make_beir, scifact_docs


def run(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "retrievo", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """SciFact test queries whose judged documents fall in a 600-document subset."""
    from retrievo.eval.datasets import BeirDataset

    ds = BeirDataset.from_path(SCIFACT)
    qrels = ds.qrels("test")
    queries = ds.queries("test")
    docs = scifact_docs(600)
    ids = {d["_id"] for d in docs}
    keep = {q: rel for q, rel in qrels.items() if set(rel) <= ids}
    folder = tmp_path_factory.mktemp("beir") / "scifact-mini"
    make_beir(folder, docs, {q: queries[q] for q in keep}, [(q, d, s) for q, rel in keep.items() for d, s in rel.items()])
    return folder, len(keep)


def test_index_search_info_delete(tmp_path, subset):
    folder, _ = subset
    coll = tmp_path / "coll"
    out = run("index", str(folder), "--collection", str(coll), "--no-dense", "--quiet").stdout
    assert "indexed 600 documents" in out
    res = json.loads(run("search", str(coll), "coronavirus spike protein", "--k", "3", "--json").stdout)
    assert len(res["results"]) == 3 and res["results"][0]["score"] >= res["results"][1]["score"]
    ex = json.loads(run("search", str(coll), "coronavirus spike protein", "--k", "3", "--json", "--explain").stdout)
    assert [h["explain"] for h in ex["results"]] == [{"bm25": {"rank": r, "score": h["score"]}}
                                                     for r, h in enumerate(res["results"], start=1)]
    assert "bm25 #2 " in run("search", str(coll), "coronavirus spike protein", "--k", "2", "--explain").stdout
    info = json.loads(run("info", str(coll), "--json").stdout)
    assert info["documents"] == 600 and info["generation"] == 1
    # adding the same source again is refused, and changes nothing
    bad = run("index", str(folder), "--collection", str(coll), "--quiet", ok=False)
    assert bad.returncode == 2 and "already exist" in bad.stderr
    assert json.loads(run("info", str(coll), "--json").stdout)["generation"] == 1
    top = res["results"][0]["id"]
    run("delete", str(coll), top)
    res2 = json.loads(run("search", str(coll), "coronavirus spike protein", "--k", "3", "--json").stdout)
    assert top not in [r["id"] for r in res2["results"]]


def test_index_bad_jsonl_changes_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "1", "text": "fine"}\n{"id": "2", "text": "oops"\n')
    proc = run("index", str(src), "--collection", str(tmp_path / "c"), "--no-dense", ok=False)
    assert proc.returncode == 2 and "bad.jsonl:2" in proc.stderr
    assert not (tmp_path / "c").exists()


def test_filter_on_cli(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps({"id": str(i), "text": f"apple pie {i}", "year": 2000 + i}) for i in range(10)))
    coll = tmp_path / "c"
    run("index", str(src), "--collection", str(coll), "--no-dense", "--quiet")
    res = json.loads(run("search", str(coll), "apple", "--filter", '{"year": {"$gte": 2007}}', "--json").stdout)
    assert sorted(r["id"] for r in res["results"]) == ["7", "8", "9"]
    bad = run("search", str(coll), "apple", "--filter", '{"colour": "red"}', ok=False)
    assert bad.returncode == 2 and "unknown field 'colour'" in bad.stderr
    facets = json.loads(run("facets", str(coll), "--filter", '{"year": {"$gte": 2007}}', "--limit", "2", "--json").stdout)
    assert facets == {"year": {"documents": 3, "values": [{"value": 2007, "count": 1}, {"value": 2008, "count": 1}],
                               "more": 1, "min": 2007, "max": 2009}}
    assert "year (10 documents, 2000–2009)" in run("facets", str(coll)).stdout


def test_eval_json_and_compare(tmp_path, subset):
    folder, nq = subset
    env_cache = ["--collection", str(tmp_path / "ec")]
    proc = run("eval", str(folder), "--method", "bm25", "--json", "--run-file", str(tmp_path / "a.trec"), *env_cache)
    out = json.loads(proc.stdout)
    assert set(out) == {"ndcg@10", "recall@100", "mrr@10", "method", "dataset", "queries"}
    assert out["queries"] == nq and out["method"] == "bm25" and out["dataset"] == "scifact-mini"
    assert 0.6 < out["ndcg@10"] <= 1.0
    run("eval", str(folder), "--method", "bm25", "--json", "--k1", "0.1", "--b", "0.0",
        "--run-file", str(tmp_path / "b.trec"), "--collection", str(tmp_path / "ec2"))
    cmp = run("compare", str(folder), str(tmp_path / "a.trec"), str(tmp_path / "b.trec")).stdout
    assert "ndcg@10" in cmp and "p(rand)" in cmp


def test_cli_method_list_matches_the_engine():
    from retrievo.cli.main import METHODS as CLI_METHODS
    from retrievo.store.collection import METHODS

    assert CLI_METHODS == METHODS


def test_eval_with_pseudo_relevance_feedback(tmp_path, subset):
    folder, nq = subset
    proc = run("eval", str(folder), "--method", "bm25", "--prf", "--fb-terms", "5", "--json",
               "--collection", str(tmp_path / "ec"), "--run-file", str(tmp_path / "p.trec"))
    out = json.loads(proc.stdout)
    assert out["prf"] is True and out["queries"] == nq and 0.3 < out["ndcg@10"] <= 1.0
    bad = run("eval", str(folder), "--method", "bm25", "--fb-docs", "3", "--collection", str(tmp_path / "ec"), ok=False)
    assert bad.returncode != 0 and "need --prf" in bad.stderr


def test_calibrate_then_search_with_a_cut_off(tmp_path, subset):
    folder, nq = subset
    coll = tmp_path / "c"
    run("index", str(folder), "--collection", str(coll), "--no-dense", "--quiet")
    no_cal = run("search", str(coll), "microglia", "--min-probability", "0.5", ok=False)
    assert no_cal.returncode != 0 and "no calibration for method 'bm25'" in no_cal.stderr
    out = json.loads(run("calibrate", str(coll), str(folder), "--split", "test", "--depth", "10", "--json").stdout)
    assert out["method"] == "bm25" and out["queries"] == nq and 0 < out["positive_rate"] < 1
    full = json.loads(run("search", str(coll), "microglia immune cells", "--k", "10", "--json").stdout)["results"]
    cut = json.loads(run("search", str(coll), "microglia immune cells", "--k", "10", "--json",
                         "--min-probability", "0.3").stdout)["results"]
    assert [h["id"] for h in cut] == [h["id"] for h in full][:len(cut)]
    assert all(h["probability"] >= 0.3 for h in cut) and "probability" not in full[0]
    none = run("search", str(coll), "microglia", "--min-probability", "1", "--json").stdout
    assert json.loads(none)["results"] == []


def test_search_and_eval_with_typo_correction(tmp_path, subset):
    folder, _ = subset
    coll = tmp_path / "c"
    run("index", str(folder), "--collection", str(coll), "--no-dense", "--quiet")

    def ids(*extra):
        return [h["id"] for h in json.loads(run("search", str(coll), *extra, "--k", "5", "--json").stdout)["results"]]

    assert ids("micorglia imune cells", "--correct-typos") == ids("microglia immune cells")
    out = json.loads(run("eval", str(folder), "--method", "bm25", "--correct-typos", "--json",
                         "--collection", str(tmp_path / "ec")).stdout)
    assert out["correct_typos"] is True and 0.3 < out["ndcg@10"] <= 1


def test_eval_and_calibrate_take_every_search_option(tmp_path, subset):
    folder, nq = subset
    ec = str(tmp_path / "ec")
    plain = json.loads(run("eval", str(folder), "--correct-typos", "--json", "--collection", ec).stdout)
    cal = json.loads(run("calibrate", ec, str(folder), "--split", "test", "--correct-typos", "--depth", "10",
                         "--json").stdout)
    assert cal["key"] == "bm25;typos" and cal["file"].endswith(".json") and "bm25-" in cal["file"]
    cut = json.loads(run("eval", str(folder), "--correct-typos", "--min-probability", "0.3", "--json",
                         "--collection", ec).stdout)
    assert cut["min_probability"] == 0.3 and cut["correct_typos"] is True and cut["queries"] == nq
    assert cut["recall@100"] < plain["recall@100"]  # the cut-off shortened the lists
    bad = run("eval", str(folder), "--min-probability", "0.3", "--json", "--collection", ec, ok=False)
    assert bad.returncode == 2 and "with the settings" not in bad.stderr and "no calibration for method 'bm25'" in bad.stderr


def test_quickstart_says_what_it_indexes():
    """``quickstart --no-dense`` indexes BM25 alone and says so (it used to announce MiniLM embeddings)."""
    out = run("quickstart", "--no-dense").stdout
    assert "1/3 indexing (BM25) ..." in out and "MiniLM" not in out
    assert "[bm25]" in out and "[dense]" not in out


def test_reindexing_the_same_ids_names_the_flag(tmp_path):
    src = make_beir(tmp_path / "b", scifact_docs(5), {}, [])
    coll = tmp_path / "c"
    run("index", str(src), "--collection", str(coll), "--no-dense", "--quiet")
    again = run("index", str(src), "--collection", str(coll), "--quiet", ok=False)
    assert again.returncode == 2 and "pass --upsert to replace them" in again.stderr and "use upsert" not in again.stderr
    run("index", str(src), "--collection", str(coll), "--upsert", "--quiet")
