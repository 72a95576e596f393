"""Query adapter: dense retrieval after learning a linear query-side map from a training split's
judgements, with the documents' stored vectors unchanged (no re-indexing).

For SciFact and ToolLens the adapter is fitted on the training split (ToolLens: a seeded sample of 3,000
training queries) on a copy of the eval collection (BM25 + MiniLM), with the defaults of
:func:`retrievo.search.adapters.fit_query_adapter` (nothing tuned; its early stopping uses a validation
part of the training queries), and measured on the test split. Both datasets share relevant documents
between their splits (SciFact: 64 % of the test split's relevant documents are relevant to a training
query; ToolLens: all 464 tools are), so part of the gain is learning which documents get asked for; the
SciFact rows "unseen documents" keep only the test queries none of whose relevant documents appears in the
training judgements. Holdout nfcorpus: SciFact's adapter applied as it is (nothing fitted on nfcorpus).

Run: python benchmarks/bench_adapter.py
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from _common import CACHE, dataset_dir, eval_collection_copy, header, write_section
from retrievo import Collection, SearchRequest
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate


def copy_of(ds: BeirDataset) -> Collection:
    return Collection.open(eval_collection_copy(ds, "adapter"))


def measure(coll: Collection, queries, qrels, qids, label, rows):
    for method in ("dense", "hybrid"):
        got = []
        for adapter in (False, True):
            req = SearchRequest(method=method, k=100, adapter=adapter)
            res = coll.searcher.search([queries[q] for q in qids], req, query_ids=qids)
            got.append(evaluate(res.to_run(), {q: qrels[q] for q in qids}))
        line = (f"| {label} | {len(qids)} | {method} | {got[0]['ndcg@10']:.4f} | {got[1]['ndcg@10']:.4f} | "
                f"{got[1]['ndcg@10'] - got[0]['ndcg@10']:+.4f} | {got[0]['recall@100']:.4f} → {got[1]['recall@100']:.4f} |")
        rows.append(line)
        print(line, flush=True)


def main() -> None:
    rows = ["| dataset (test queries) | queries | method | nDCG@10 | with adapter | change | R@100 |",
            "|---|---|---|---|---|---|---|"]
    fits = []
    sci_adapter = None
    for name, sample in (("scifact", None), ("toollens", 3000)):
        ds = BeirDataset.from_path(dataset_dir(name))
        tq, tr = ds.queries("train"), ds.qrels("train")
        if sample:
            keep = sorted(np.random.default_rng(0).choice(sorted(tr), min(sample, len(tr)), replace=False).tolist())
            tr = {q: tr[q] for q in keep}
        coll = copy_of(ds)
        try:
            t0 = time.perf_counter()
            ad = coll.fit_query_adapter(tq, tr)
            fits.append(f"{name}: fitted in {time.perf_counter() - t0:.0f} s on {ad.info.n_train} queries "
                        f"(validation {ad.info.n_val}: top-1 among candidates {ad.info.val_hit_before:.3f} → "
                        f"{ad.info.val_hit_after:.3f}, best epoch {ad.info.best_epoch} of {ad.info.epochs_run})")
            print(fits[-1], flush=True)
            if name == "scifact":
                sci_adapter = coll.path / "adapters"
            q, qr = ds.queries("test"), ds.qrels("test")
            qids = [x for x in q if x in qr]
            measure(coll, q, qr, qids, name, rows)
            if name == "scifact":
                seen = {d for r in tr.values() for d, v in r.items() if v > 0}
                unseen = [x for x in qids if not any(v > 0 and d in seen for d, v in qr[x].items())]
                measure(coll, q, qr, unseen, "scifact, unseen documents", rows)
        finally:
            coll.close()
    ds = BeirDataset.from_path(dataset_dir("nfcorpus"))
    coll = copy_of(ds)
    try:
        shutil.copytree(sci_adapter, coll.path / "adapters")
        q, qr = ds.queries("test"), ds.qrels("test")
        measure(coll, q, qr, [x for x in q if x in qr], "nfcorpus (holdout; SciFact's adapter)", rows)
    finally:
        coll.close()
        for name in ("scifact", "toollens", "nfcorpus"):
            shutil.rmtree(CACHE / f"adapter-{name}", ignore_errors=True)
    body = header("Query adapter: domain adaptation without re-indexing", ("torch",)) + (
        "\nSee the `bench_adapter.py` docstring (splits, the shared relevant documents, holdout).\n\n"
        + "\n".join(f"- {f}" for f in fits) + "\n\n" + "\n".join(rows)
        + "\n\nCommand: `python benchmarks/bench_adapter.py`\n")
    write_section("adapter", body)


if __name__ == "__main__":
    main()
