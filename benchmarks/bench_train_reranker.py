"""``retrievo train-reranker`` on SciFact with its defaults: how long it takes on this machine and what the
cross-encoder it trains gives.

The reranker is trained on SciFact's train split (its defaults: from the bundled MiniLM backbone with a new
head, 7 hard negatives per query mined by hybrid search from the top 30, binary cross-entropy, at most 8,000
pairs, 256 word pieces, 40 training queries held out, a 30-minute budget) into
``benchmarks/.cache/trained/scifact-reranker`` and reused (``--retrain`` to train again). Then the 300 test
queries: the bundled model's hybrid search, and its top ``--depth`` reranked by the trained cross-encoder
(nDCG@10, R@100, the paired randomisation test against hybrid, queries/s).

    python benchmarks/bench_train_reranker.py [--depth 30]
"""

from __future__ import annotations

import argparse
import time

from _common import CACHE, dataset_dir, eval_collection, header, trained_once, write_section
from retrievo import SearchRequest
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.training.reranker import train_reranker

OUT = CACHE / "trained" / "scifact-reranker"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ds = BeirDataset.from_path(dataset_dir("scifact"))
    info = trained_once(OUT, ds, "rerank-train", lambda c, d, o: train_reranker(
        c, d.queries("train"), d.qrels("train"), o, overwrite=True), args.retrain)
    note = (f"trained in {info['seconds'] / 60:.1f} min ({info['steps']} steps, {info['pairs']} pairs of "
            f"{info['train_queries']} training queries, {info['epochs']} epoch(s) planned"
            f"{', stopped by the budget' if info['stopped_by_budget'] else ''}, bf16 {info['bf16']}); held-out training "
            f"queries ({info['val_queries']}): their first stage's nDCG@10 {info['val_ndcg_first_stage']:.4f}, reranked "
            f"by the untrained head {info['val_ndcg_before']:.4f}, by the best checkpoint {info['val_ndcg_best']:.4f} "
            f"(step {info['best_step']}); losses {info['losses'][:1] + info['losses'][-1:]}")
    print(note, flush=True)
    queries, qrels = ds.queries("test"), ds.qrels("test")
    qids = [q for q in queries if q in qrels]
    texts = [queries[q] for q in qids]
    coll = eval_collection(ds)
    rows = []
    runs = {}
    try:
        for label, req in (("hybrid", SearchRequest(method="hybrid", k=100)),
                           (f"hybrid, top {args.depth} reranked by the trained cross-encoder",
                            SearchRequest(method="hybrid", k=100, rerank=str(OUT), rerank_depth=args.depth))):
            t0 = time.perf_counter()
            runs[label] = coll.searcher.search(texts, req, query_ids=qids).to_run()
            qps = len(texts) / (time.perf_counter() - t0)
            m = evaluate(runs[label], qrels)
            change = "—"
            if label != "hybrid":
                c = {r.measure: r for r in compare_runs(runs["hybrid"], runs[label], qrels, trials=10000)}["ndcg@10"]
                change = f"{c.diff:+.4f} (p = {c.p_randomization:.3g})"
            rows.append(f"| {label} | {m['ndcg@10']:.4f} | {change} | {m['recall@100']:.4f} | {qps:.1f} |")
            print(rows[-1], flush=True)
    finally:
        coll.close()
    body = header("A cross-encoder trained here (bench_train_reranker.py)", ("torch", "sentence-transformers")) + (
        "\nSee the `bench_train_reranker.py` docstring. `retrievo train-reranker` with its defaults on SciFact's "
        f"train split: {note}.\n\n| SciFact test (300 queries) | nDCG@10 | vs hybrid (paired p) | R@100 | queries/s |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
        + f"\n\nCommand: `python benchmarks/bench_train_reranker.py --depth {args.depth}`\n")
    print(body)
    if not args.no_write:
        write_section("train-reranker", body)


if __name__ == "__main__":
    main()
