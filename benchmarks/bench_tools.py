"""Tool retrieval with document expansion (Tool-DE without an LLM) on ToolLens: raw tool documents against
documents expanded from the collection itself, for BM25, field-weighted BM25 (BM25F), dense and hybrid.

ToolLens ships its 464 tools as BEIR text (``category_name:…, tool_name:…, api_name:…, api_description:…,
required_params: [...], optional_params: [...], return_schema: {...}``). :func:`toollens_specs` turns each into
an OpenAI function spec (name = the API name, description, JSON Schema parameters with types, descriptions and
which are required; ``category``, ``tool`` and ``returns`` kept), and :func:`retrievo.structure.tools.tool_document`
reads the specs as ``retrievo index tools.json --tools`` does. Rows:

* **BEIR text** — the corpus text as shipped, BM25 / dense / hybrid (the reference: the BEIR table's hybrid);
* **raw tools** — the spec documents, no expansion: BM25 over title + text, BM25F over the tool's own fields
  (name words, description, parameter words), dense over the rendered text, and both hybrids;
* **expanded** — the same documents with ``x_queries`` (the training queries whose judgements name the tool),
  ``x_pseudo`` (name words + distinctive terms, the description's first sentence) and ``x_similar`` (for tools
  fewer than 5 training queries name: the 10 training queries nearest to the tool's text under MiniLM);
  BM25F over all fields, dense over title + text + the training queries (truncated at the model's 256 word
  pieces), and their hybrid.

Two query logs: **full** (the whole train split: every tool some test query needs is named by training
queries, so ToolLens alone has no unseen tools) and **held-out tools** (a seeded quarter of the tools removed
from every training judgement, as if added to the catalogue after the log was collected). Test queries are
split into those whose relevant tools were all seen in the log and those needing an unseen one.

The field weights (``retrievo.structure.tools.TOOL_FIELDS``) and the expanded hybrid's fusion weights (0.7 BM25F,
0.3 dense) were chosen on a validation split — 1,000 training queries held out of the log, seed 0 —
(``--tune`` prints that grid); the test queries were not used to choose anything. nDCG@10 and R@100 on the
test split; changes with the paired randomisation test (10,000 trials).

Run: ``python benchmarks/bench_tools.py [--tune]`` (writes the "tools" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
import time
from pathlib import Path

from _common import CACHE, dataset_dir, eval_collection, header, write_section
from retrievo import Collection, SearchRequest
from retrievo.config import CollectionConfig, DenseConfig
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.structure.tools import expand_tools, tool_document, tools_config

_TOOLLENS = re.compile(r"^category_name:(.*?), tool_name:(.*?), api_name:(.*?), api_description:(.*?), "
                       r"required_params: (\[.*?\]), optional_params: (\[.*?\]), return_schema: (.*)$", re.S)
EXPANDED_FUSION = {"weights": [0.7, 0.3]}
HELD_OUT_FRACTION, HELD_OUT_SEED = 0.25, 1


def toollens_specs(folder: Path) -> list[dict]:
    """ToolLens's corpus as OpenAI function specs (see the module docstring)."""
    specs = []
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            m = _TOOLLENS.match(rec["text"])
            if m is None:
                raise ValueError(f"ToolLens document {rec['_id']}: unexpected text layout")
            category, tool, api, desc, req, opt, ret = m.groups()
            req, opt = json.loads(req), json.loads(opt)
            props = {p["name"]: {"type": str(p.get("type") or "").lower(), "description": p.get("description") or ""}
                     for p in req + opt}
            try:
                returns = json.loads(ret)
            except json.JSONDecodeError:
                returns = None
            specs.append({"type": "function", "id": rec["_id"], "category": category, "tool": tool, "returns": returns,
                          "function": {"name": api, "description": desc,
                                       "parameters": {"type": "object", "properties": props,
                                                      "required": [p["name"] for p in req]}}})
    return specs


def held_out_log(qrels: dict, tool_ids: list[str]) -> tuple[dict, set[str]]:
    """The training judgements without a seeded quarter of the tools (and the tools removed)."""
    tools = sorted(tool_ids)
    random.Random(HELD_OUT_SEED).shuffle(tools)
    hidden = set(tools[: int(len(tools) * HELD_OUT_FRACTION)])
    log = {q: {d: r for d, r in rel.items() if d not in hidden} for q, rel in qrels.items()}
    return {q: r for q, r in log.items() if r}, hidden


def build(path: Path, docs, config: CollectionConfig) -> Collection:
    shutil.rmtree(path, ignore_errors=True)
    coll = Collection.create(path, config)
    coll.add(docs)
    coll.commit()
    return coll


def expanded_config() -> CollectionConfig:
    return CollectionConfig(dense=DenseConfig(fields=("title", "text", "x_queries")), signals={"bm25f": tools_config()})


def measure(coll: Collection, queries: dict, qrels: dict, qids: list[str], **request) -> dict:
    res = coll.searcher.search([queries[q] for q in qids], SearchRequest(k=100, **request), query_ids=qids)
    return res.to_run()


def scores(run: dict, qrels: dict, subset: list[str]) -> tuple[float, float]:
    if not subset:
        return float("nan"), float("nan")
    m = evaluate({q: run.get(q, {}) for q in subset}, {q: qrels[q] for q in subset})
    return m["ndcg@10"], m["recall@100"]


def tune(docs, ds: BeirDataset, raw: Collection) -> None:
    """The validation grid the defaults were chosen on (1,000 training queries held out of the log)."""
    train_q, train_r = ds.queries("train"), ds.qrels("train")
    ids = sorted(train_r)
    random.Random(0).shuffle(ids)
    val = ids[:1000]
    log = {q: train_r[q] for q in ids[1000:]}
    for name, lg in (("full", log), ("held-out tools", held_out_log(log, [d.id for d in docs])[0])):
        exp = build(CACHE / "tools" / "tune", expand_tools(docs, train_q, lg, encoder=raw.encoder, cache=raw.signals["dense"].embedding_cache()), expanded_config())
        vr = {q: train_r[q] for q in val}
        for fw in ({}, {"x_queries": 0.5}, {"x_queries": 2.0}, {"x_similar": 0.0}, {"x_similar": 0.5},
                   {"x_pseudo": 0.0}, {"x_pseudo": 1.0}, {"param_words": 1.0}, {"name_words": 2.0}):
            for fusion in ({}, {"weights": [0.7, 0.3]}, {"weights": [0.8, 0.2]}):
                run = measure(exp, train_q, vr, val, method="bm25f+dense", options={"field_weights": fw}, fusion=fusion)
                print(f"tune {name:15s} {json.dumps(fw):25s} {json.dumps(fusion):22s} nDCG@10 {scores(run, vr, val)[0]:.4f}",
                      flush=True)
        exp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tune", action="store_true", help="print the validation grid instead of the test report")
    args = ap.parse_args()
    folder = dataset_dir("toollens")
    ds = BeirDataset.from_path(folder)
    t0 = time.perf_counter()
    docs = [tool_document(s, f"ToolLens tool {i}") for i, s in enumerate(toollens_specs(folder))]
    raw = build(CACHE / "tools" / "raw", docs, CollectionConfig(signals={"bm25f": tools_config()}))
    if args.tune:
        tune(docs, ds, raw)
        return
    test_q, test_r = ds.queries("test"), ds.qrels("test")
    qids = sorted(q for q in test_r if q in test_q)
    train_q, train_r = ds.queries("train"), ds.qrels("train")
    no_x = {"field_weights": {"x_queries": 0.0, "x_pseudo": 0.0, "x_similar": 0.0}}

    beir = eval_collection(ds)
    rows: list[str] = []
    reference = {}
    for label, req in (("bm25", {"method": "bm25"}), ("dense", {"method": "dense"}), ("hybrid", {"method": "hybrid"})):
        run = measure(beir, test_q, test_r, qids, **req)
        reference[label] = run
        n, r = scores(run, test_r, qids)
        rows.append(f"| BEIR text | — | {label} | {n:.4f} | {r:.4f} | | | |")
    beir.close()
    raw_runs = {}
    for label, req in (("bm25 (title + text)", {"method": "bm25"}), ("bm25f (own fields)", {"method": "bm25f", "options": no_x}),
                       ("dense", {"method": "dense"}), ("hybrid (bm25 + dense)", {"method": "hybrid"}),
                       ("bm25f + dense", {"method": "bm25f+dense", "options": no_x}),
                       ("bm25f + dense, 0.7 / 0.3", {"method": "bm25f+dense", "options": no_x, "fusion": EXPANDED_FUSION})):
        raw_runs[label] = measure(raw, test_q, test_r, qids, **req)
        n, r = scores(raw_runs[label], test_r, qids)
        rows.append(f"| raw tools | — | {label} | {n:.4f} | {r:.4f} | | | |")
        print(rows[-1], flush=True)
    best_raw = max(("hybrid (bm25 + dense)", "bm25f + dense", "bm25f + dense, 0.7 / 0.3"),
                   key=lambda k: scores(raw_runs[k], test_r, qids)[0])
    verdicts = []
    for log_name in ("full", "held-out tools"):
        if log_name == "full":
            log, hidden = train_r, set()
        else:
            log, hidden = held_out_log(train_r, [d.id for d in docs])
        t1 = time.perf_counter()
        exp_docs = expand_tools(docs, train_q, log, encoder=raw.encoder, cache=raw.signals["dense"].embedding_cache())
        exp = build(CACHE / "tools" / ("expanded-" + log_name.split()[0]), exp_docs, expanded_config())
        expand_s = time.perf_counter() - t1
        unseen = [q for q in qids if any(d in hidden for d in test_r[q])]
        seen = [q for q in qids if q not in set(unseen)]
        for label, req in (("bm25f", {"method": "bm25f"}), ("dense", {"method": "dense"}),
                           ("bm25f + dense, 0.7 / 0.3", {"method": "bm25f+dense", "fusion": EXPANDED_FUSION})):
            run = measure(exp, test_q, test_r, qids, **req)
            n, r = scores(run, test_r, qids)
            ns, _ = scores(run, test_r, seen)
            nu, _ = scores(run, test_r, unseen)
            base = raw_runs[best_raw]
            bs, bu = scores(base, test_r, seen)[0], scores(base, test_r, unseen)[0]
            cmp = {c.measure: c for c in compare_runs(base, run, test_r, trials=10000)}["ndcg@10"]
            rows.append(f"| expanded, {log_name} log | {len(seen)} / {len(unseen)} | {label} | {n:.4f} | {r:.4f} | "
                        f"{ns:.4f} (raw {bs:.4f}) | {nu:.4f} (raw {bu:.4f}) | {cmp.diff:+.4f} (p = {cmp.p_randomization:.3g}) |"
                        if unseen else
                        f"| expanded, {log_name} log | {len(seen)} / 0 | {label} | {n:.4f} | {r:.4f} | "
                        f"{ns:.4f} (raw {bs:.4f}) | — | {cmp.diff:+.4f} (p = {cmp.p_randomization:.3g}) |")
            print(rows[-1], flush=True)
            if label.startswith("bm25f + dense"):
                verdicts.append(f"{log_name} log: expanded hybrid {n:.4f} vs best raw hybrid ({best_raw}) "
                                f"{scores(base, test_r, qids)[0]:.4f}: {cmp.diff:+.4f} (p = {cmp.p_randomization:.3g})")
        print(f"expansion ({log_name} log) took {expand_s:.1f} s", flush=True)
        exp.close()
    raw.close()
    body = header("Tool retrieval with document expansion (bench_tools.py)", ("sentence-transformers",))
    body += (f"\nToolLens, {len(docs)} tools read from OpenAI-style specs, {len(qids):,} test queries (nDCG@10, R@100). Expanded: query-log "
             "(train split), pseudo-query and similar-query fields, weights chosen on 1,000 held-out training queries. "
             "Seen / unseen: test queries whose relevant tools were all / not all named in the log; the change is "
             f"against the best raw hybrid ({best_raw}) with the paired randomisation test.\n\n"
             "| documents | queries seen / unseen | search | nDCG@10 | R@100 | nDCG@10 seen | nDCG@10 unseen | vs raw hybrid |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + "\n".join(f"- {v}" for v in verdicts)
             + f"\n\nWhole run {time.perf_counter() - t0:.0f} s.\n")
    write_section("tools", body)


if __name__ == "__main__":
    main()
