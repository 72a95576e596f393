"""Late interaction end to end: exact MaxSim over MiniLM token vectors, MUVERA FDE search + exact rescoring,
and both fused with BM25 and dense, against dense alone, on SciFact and ToolLens (development) and nfcorpus and
LIMIT-small (holdout: reported, nothing tuned there).

Each collection holds BM25, the bundled MiniLM's pooled vectors (dense) and its token vectors (the multivector
signal's defaults: 128 dimensions by a fixed random rotation, punctuation dropped, FDE (40, 5, 16) with sampled
partitions indexed flat, top 150 rescored (and top 100); and the same FDEs with the paper's SimHash partitions,
top 150 and 100 rescored). Also: hybrid with its top 100 reranked by MaxSim (the ``maxsim`` rerank stage). nDCG@10 and R@100 on the test queries; the change against dense with the paired
randomisation test (10,000 trials); queries per second of the whole search (query encoding included) in one
batch; bytes per document of the stored token vectors (float16 as stored; int8 and binary as they would be)
and of the FDEs.

Run: ``python benchmarks/bench_multivector.py`` (writes the "multivector" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import time

from _common import dataset_dir, eval_collection, header, write_section
from retrievo import SearchRequest
from retrievo.config import CollectionConfig
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate

DATASETS = (("scifact", "dev"), ("toollens", "dev"), ("nfcorpus", "holdout"), ("limit-small", "holdout"))
FDE = {"options": {"fde": True}}
METHODS = (
    ("dense", {"method": "dense"}),
    ("multivector (exact MaxSim)", {"method": "multivector"}),
    ("multivector (FDE + rescoring)", {"method": "multivector", **FDE}),
    ("multivector (FDE + rescoring of 100)", {"method": "multivector", "options": {"fde": True, "fde_candidates": 100}}),
    ("bm25 + dense (hybrid)", {"method": "hybrid"}),
    ("hybrid, top 100 reranked by MaxSim", {"method": "hybrid", "rerank": "maxsim", "rerank_depth": 100}),
    ("bm25 + multivector (exact)", {"method": "bm25+multivector"}),
    ("bm25 + multivector (FDE)", {"method": "bm25+multivector", **FDE}),
    ("dense + multivector (FDE)", {"method": "dense+multivector", **FDE}),
    ("bm25 + dense + multivector (FDE)", {"method": "bm25+dense+multivector", **FDE}),
)

SIMHASH = {"fde": {"repetitions": 40, "partitions": "simhash"}}  # FDE (40, 5, 16) with the paper's partitions
SIMHASH_METHODS = (
    ("multivector (FDE, SimHash partitions, + rescoring)", {"method": "multivector", **FDE}),
    ("multivector (FDE, SimHash partitions, + rescoring of 100)",
     {"method": "multivector", "options": {"fde": True, "fde_candidates": 100}}),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(d for d, _ in DATASETS))
    args = ap.parse_args()
    wanted = args.datasets.split(",")
    rows, storage = [], []
    for name, role in DATASETS:
        if name not in wanted:
            continue
        ds = BeirDataset.from_path(dataset_dir(name))
        coll = eval_collection(ds, CollectionConfig(signals={"multivector": {}}))
        queries, qrels = ds.queries("test"), ds.qrels("test")
        qids = [q for q in queries if q in qrels]
        texts = [queries[q] for q in qids]
        runs = {}
        for label, kwargs in METHODS:
            req = SearchRequest(k=100, **kwargs)
            coll.searcher.search(texts[:4], req)  # warm
            t0 = time.perf_counter()
            res = coll.searcher.search(texts, req, query_ids=qids)
            qps = len(texts) / (time.perf_counter() - t0)
            runs[label] = res.to_run()
            m = evaluate(runs[label], qrels)
            if label == "dense":
                change = "—"
            else:
                c = {r.measure: r for r in compare_runs(runs["dense"], runs[label], qrels, trials=10000)}["ndcg@10"]
                change = f"{c.diff:+.4f} (p = {c.p_randomization:.3g})"
                if label.startswith("multivector (FDE"):
                    change += f"; vs exact {m['ndcg@10'] - evaluate(runs['multivector (exact MaxSim)'], qrels)['ndcg@10']:+.4f}"
            rows.append(f"| {name} ({role}, {len(qids)} queries) | {label} | {m['ndcg@10']:.4f} | {change} | "
                        f"{m['recall@100']:.4f} | {qps:.1f} |")
            print(rows[-1], flush=True)
        enc = coll.signals["multivector"].encoder  # the floor: encoding the queries' token vectors, nothing else
        enc.encode_queries(texts[:4])
        t0 = time.perf_counter()
        enc.encode_queries(texts)
        qps = len(texts) / (time.perf_counter() - t0)
        rows.append(f"| {name} ({role}, {len(qids)} queries) | query token vectors only (no search; the ceiling "
                    f"of any multivector search) | — | — | — | {qps:.1f} |")
        print(rows[-1], flush=True)
        simhash = eval_collection(ds, CollectionConfig(dense=None, signals={"multivector": SIMHASH}))
        for label, kwargs in SIMHASH_METHODS:  # the same documents' token vectors, FDEs with SimHash partitions
            req = SearchRequest(k=100, **kwargs)
            simhash.searcher.search(texts[:4], req)
            t0 = time.perf_counter()
            res = simhash.searcher.search(texts, req, query_ids=qids)
            qps = len(texts) / (time.perf_counter() - t0)
            m = evaluate(res.to_run(), qrels)
            c = {r.measure: r for r in compare_runs(runs["dense"], res.to_run(), qrels, trials=10000)}["ndcg@10"]
            vs_exact = m["ndcg@10"] - evaluate(runs["multivector (exact MaxSim)"], qrels)["ndcg@10"]
            rows.append(f"| {name} ({role}, {len(qids)} queries) | {label} | {m['ndcg@10']:.4f} | "
                        f"{c.diff:+.4f} (p = {c.p_randomization:.3g}); vs exact {vs_exact:+.4f} | "
                        f"{m['recall@100']:.4f} | {qps:.1f} |")
            print(rows[-1], flush=True)
        simhash.close()
        info = coll.info()
        tpd, dim, fde_dim = info["multivector_tokens_per_doc"], info["multivector_dim"], info["fde_dim"]
        storage.append(f"| {name} | {info['documents']:,} | {tpd} | {tpd * dim * 2:,.0f} | {tpd * (dim + 4):,.0f} | "
                       f"{tpd * dim / 8:,.0f} | {fde_dim * 4:,} | {info['dense_dim'] * 4:,} |")
        print(storage[-1], flush=True)
        coll.close()
    body = header("Multi-vector retrieval end to end (bench_multivector.py)", ("sentence-transformers", "numba"))
    body += ("\nnDCG@10 and R@100 on the test queries; change in nDCG@10 against dense with the paired randomisation "
             "test; queries/s of the whole search in one batch (query encoding included; the \"query token vectors only\" "
             "row encodes the queries and searches nothing: no multivector search can be faster). Token vectors: the "
             "bundled MiniLM's last hidden states, 128 dimensions, punctuation dropped; FDE (R, k_sim, d_proj) = "
             "(40, 5, 16) with sampled partitions (the default), flat index, top 150 rescored by exact MaxSim (a fused "
             "search's FDE list ends there too); the rows with SimHash partitions come from a collection of the same "
             "token vectors whose FDEs use `partitions=\"simhash\"`, with their change against exact MaxSim. Fusion: the collection's default "
             "(convex, equal weights).\n\n| dataset | search | nDCG@10 | vs dense (paired p) | R@100 | queries/s |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows)
             + "\n\nBytes per document: token vectors as stored (float16), as int8 with a float32 scale per token, "
             "and as sign bits; FDEs (float32); the pooled dense vector for comparison.\n\n"
             "| dataset | documents | tokens / doc | float16 | int8 | binary | FDE | dense |\n|---|---|---|---|---|---|---|---|\n"
             + "\n".join(storage) + "\n")
    write_section("multivector", body)
    print("wrote the multivector section of RESULTS.md")


if __name__ == "__main__":
    main()
