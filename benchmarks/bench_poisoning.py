"""Corpus poisoning: how often a passage injected for a query is retrieved for it (a robustness check,
see :mod:`retrievo.eval.robustness`).

For each dataset, the eval collection (BM25 + MiniLM, as ``retrievo eval`` builds it) is copied, and for
100 seeded target queries of the test split a passage "<query text> <attacker's sentence>" is added
(PoisonedRAG's black-box attack); only those 100 passages are encoded. Reported per method:

- ``success@k``: the share of target queries whose passage is in their top k;
- nDCG@10 of the other test queries before and after the injection (collateral damage).

nfcorpus is a holdout collection: reported only. Nothing is tuned; no defence is applied — this measures
exposure.

Run: python benchmarks/bench_poisoning.py
"""

from __future__ import annotations

import shutil

from _common import dataset_dir, eval_collection_copy, header, write_section
from retrievo import Collection, SearchRequest
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.eval.robustness import attack_success, poisoned_passages

METHODS = ("bm25", "dense", "hybrid")
N_TARGETS = 100


def main() -> None:
    rows = ["| dataset | method | success@1 | success@5 | success@10 | nDCG@10 other queries, before → after |",
            "|---|---|---|---|---|---|"]
    for name in ("scifact", "toollens", "nfcorpus"):
        ds = BeirDataset.from_path(dataset_dir(name))
        queries, qrels = ds.queries("test"), ds.qrels("test")
        queries = {q: t for q, t in queries.items() if q in qrels}
        work = eval_collection_copy(ds, "poison")
        targets, docs = poisoned_passages(queries, N_TARGETS, seed=0)
        others = [q for q in queries if q not in set(targets)]
        clean = Collection.open(work, readonly=True)
        before = {m: evaluate(clean.searcher.search([queries[q] for q in others], SearchRequest(method=m, k=100),
                                                    query_ids=others).to_run(),
                              {q: qrels[q] for q in others})["ndcg@10"] for m in METHODS}
        clean.close()
        coll = Collection.open(work)
        try:
            coll.add(docs)
            coll.commit()
            for m in METHODS:
                res = coll.searcher.search([queries[q] for q in targets], SearchRequest(method=m), query_ids=targets)
                succ = attack_success(res, targets)
                other = coll.searcher.search([queries[q] for q in others], SearchRequest(method=m, k=100),
                                             query_ids=others)
                after = evaluate(other.to_run(), {q: qrels[q] for q in others})["ndcg@10"]
                label = f"{name} (holdout)" if name == "nfcorpus" else name
                line = (f"| {label} | {m} | {succ['success@1']:.2f} | {succ['success@5']:.2f} | "
                        f"{succ['success@10']:.2f} | {before[m]:.4f} → {after:.4f} |")
                rows.append(line)
                print(line, flush=True)
        finally:
            coll.close()
            shutil.rmtree(work, ignore_errors=True)
    body = header("Robustness to poisoned passages", ()) + (
        f"\n{N_TARGETS} target test queries per dataset, one injected passage each (the query text followed by "
        "an attacker's sentence; see the `bench_poisoning.py` docstring). success@k: share of targets whose "
        "passage reaches their top k. No defence is applied: this measures exposure.\n\n" + "\n".join(rows)
        + "\n\nCommand: `python benchmarks/bench_poisoning.py`\n")
    write_section("poisoning", body)


if __name__ == "__main__":
    main()
