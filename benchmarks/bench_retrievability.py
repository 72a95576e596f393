"""Retrievability per method: how evenly each retriever spreads its results over the collection (Gini), which
documents no method returns (blind spots), and the Lorenz curves — SciFact and ToolLens (development), nfcorpus
(holdout, reported).

Two query sets per collection: 2,000 short queries drawn from the documents themselves (seed 0; two or three
adjacent content words of a sampled document — the usual way retrievability is measured, so that every document
could be found) at cut-offs 10 and 100, and the collection's own test queries at 100 (what real users ask; far
fewer queries, so many documents are never reached). Methods: BM25, dense (MiniLM), SPLADE (the bundled
SPLADE-tiny), hybrid (BM25 + dense), on the BM25 + MiniLM + SPLADE collections ``retrievo eval`` builds. Plots: ``benchmarks/retrievability-<dataset>.png`` (drawn queries, cut-off 100).

Run: ``python benchmarks/bench_retrievability.py`` (writes the "retrievability" section of RESULTS.md).
"""

from __future__ import annotations

import time

from _common import HERE, dataset_dir, eval_collection, header, write_section
from retrievo import CollectionConfig
from retrievo.config import SparseConfig
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.retrievability import generate_queries, lorenz_plot, retrievability

DATASETS = (("scifact", "dev"), ("toollens", "dev"), ("nfcorpus", "holdout"))
METHODS = ("bm25", "dense", "splade", "hybrid")


def main() -> None:
    t0 = time.perf_counter()
    rows = []
    for name, role in DATASETS:
        ds = BeirDataset.from_path(dataset_dir(name))
        coll = eval_collection(ds, CollectionConfig(sparse=SparseConfig()))
        drawn = generate_queries(coll, 2000, seed=0)
        label = f"{name} ({role}, {len(coll):,} docs)"
        for qname, queries, cutoff in (("2,000 drawn", drawn, 10), ("2,000 drawn", drawn, 100),
                                       (f"{len(ds.queries('test'))} test", ds.queries("test"), 100)):
            rep = retrievability(coll, queries, list(METHODS), cutoff=cutoff)
            s = rep.summary()["methods"]
            rows.append(f"| {label} | {qname} | {cutoff} | " + " | ".join(
                f"{s[m]['gini']:.3f} ({s[m]['never_retrieved']:,})" for m in METHODS)
                + f" | {len(rep.blind_spots):,} |")
            print(rows[-1], flush=True)
            if qname.endswith("drawn") and cutoff == 100:
                lorenz_plot(rep, HERE / f"retrievability-{name}.png", f"{name}: retrievability, 2,000 drawn queries")
        coll.close()
    body = header("Retrievability (bench_retrievability.py)", ("matplotlib",))
    body += ("\nGini coefficient of each document's retrievability (queries ranking it within the cut-off), with the "
             "number of documents that method never retrieves in brackets; blind spots: documents no method "
             "retrieves. Lorenz curves: `benchmarks/retrievability-<dataset>.png`.\n\n"
             "| collection | queries | cut-off | " + " | ".join(METHODS) + " | blind spots |\n|"
             + "---|" * (len(METHODS) + 4) + "\n"
             + "\n".join(rows) + f"\n\nWhole run {time.perf_counter() - t0:.0f} s.\n")
    write_section("retrievability", body)


if __name__ == "__main__":
    main()
