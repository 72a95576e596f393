"""Tree retrieval against flat dense search: how much of the exact result a semantic tree finds for how many
vectors scored, on SciFact (development: the defaults were chosen here) and nfcorpus (holdout, reported).

The tree (:mod:`retrievo.structure.tree`) is built by recursive k-means over the collection's MiniLM vectors
(branching 10, leaves of at most 64 documents) and searched by beam search; each beam width scans that many
leaves exactly. Path smoothing (LATTICE's ``alpha · sim + (1 - alpha) · parent``) is measured at 0.7 against
none (1.0). For reference, FAISS-style IVF (the engine's ``ivf`` index, nlist = 4·√n) at nprobe values that
scan a similar share of the documents. Per row: nDCG@10 and R@100 on the test queries, overlap@100 with flat
search, vectors scored per query (tree: centroids on the way down + documents in the leaves scanned; IVF:
centroids + documents in the probed cells), and queries/s of the whole search (query encoding included, one
batch).

Run: ``python benchmarks/bench_tree.py`` (writes the "tree" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from _common import dataset_dir, eval_collection, header, write_section
from retrievo import SearchRequest
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate

DATASETS = (("scifact", "dev"), ("nfcorpus", "holdout"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(d for d, _ in DATASETS))
    args = ap.parse_args()
    rows: list[str] = []
    for name, role in DATASETS:
        if name not in args.datasets.split(","):
            continue
        ds = BeirDataset.from_path(dataset_dir(name))
        coll = eval_collection(ds)
        queries, qrels = ds.queries("test"), ds.qrels("test")
        qids = [q for q in queries if q in qrels]
        texts = [queries[q] for q in qids]
        snap = coll.snapshot()
        n = snap.n_live
        t0 = time.perf_counter()
        tree = coll.signals["tree"].tree(snap)
        build_s = time.perf_counter() - t0
        qv = coll.encoder.encode_queries(texts)

        def run(req: SearchRequest, coll=coll, texts=texts, qids=qids):
            coll.searcher.search(texts[:4], req)  # warm
            t = time.perf_counter()
            res = coll.searcher.search(texts, req, query_ids=qids)
            return res, len(texts) / (time.perf_counter() - t)

        flat, flat_qps = run(SearchRequest(k=100, method="dense"))
        exact = [set(r) for r in flat.ids]
        m = evaluate(flat.to_run(), qrels)
        label = f"{name} ({role}, {n:,} docs, {len(qids)} queries)"
        rows.append(f"| {label} | flat (exact) | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | 1.000 | {n:,} (100%) | "
                    f"{flat_qps:.0f} |")
        print(rows[-1], flush=True)
        for beam in (4, 8, 16, 32):
            for alpha in (1.0, 0.7):
                res, qps = run(SearchRequest(k=100, method="tree", options={"tree_beam": beam, "tree_alpha": alpha}))
                _, _, _, scored = tree.search(qv, 100, beam=beam, alpha=alpha)
                m = evaluate(res.to_run(), qrels)
                ov = np.mean([len(set(a) & b) / max(len(b), 1) for a, b in zip(res.ids, exact, strict=True)])
                rows.append(f"| {label} | tree, beam {beam}, alpha {alpha} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | "
                            f"{ov:.3f} | {scored.mean():,.0f} ({scored.mean() / n:.1%}) | {qps:.0f} |")
                print(rows[-1], flush=True)
        nlist = int(4 * math.sqrt(n))
        for nprobe in (8, 16, 32, 64):  # nprobe cells must hold >= k documents, else exact search completes the list
            res, qps = run(SearchRequest(k=100, method="dense", index={"kind": "ivf", "nlist": nlist, "nprobe": nprobe}))
            m = evaluate(res.to_run(), qrels)
            ov = np.mean([len(set(a) & b) / max(len(b), 1) for a, b in zip(res.ids, exact, strict=True)])
            scanned = nlist + n * nprobe / nlist
            rows.append(f"| {label} | IVF, nlist {nlist}, nprobe {nprobe} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | "
                        f"{ov:.3f} | ≈{scanned:,.0f} ({scanned / n:.1%}) | {qps:.0f} |")
            print(rows[-1], flush=True)
        rows.append(f"| {label} | (tree: {len(tree.nodes)} nodes, {tree.n_leaves} leaves, depth {tree.depth}, "
                    f"built in {build_s:.1f} s) | | | | | |")
        coll.close()
    body = header("Tree retrieval against flat dense search (bench_tree.py)", ("scikit-learn", "faiss-cpu"))
    body += ("\nThe bundled MiniLM's vectors; the tree's defaults (branching 10, leaves ≤ 64, beam 16, no smoothing) were "
             "chosen on SciFact. Vectors scored per query: tree = centroids scored on the way down + documents of "
             "the leaves scanned (IVF: cell centroids + documents of the probed cells, for average-sized cells). "
             "Overlap@100: share of flat search's top 100 found. IVF starts at the nprobe whose cells hold about k = 100 "
             "documents: below that the engine completes a short list with exact search.\n\n"
             "| dataset | search | nDCG@10 | R@100 | overlap@100 | vectors scored / query | queries/s |\n"
             "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    write_section("tree", body)


if __name__ == "__main__":
    main()
