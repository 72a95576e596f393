"""Robustness to typos: nDCG@10 on clean test queries and on the same queries with typos, with and without
retrievo's BM25 typo correction.

Typo'd queries: :func:`retrievo.eval.robustness.typo_queries` (``perturb``) at ``--rate`` (default 0.3: each word of 4+
letters gets one random edit — swap, deletion, insertion or substitution — with probability 0.3), seeded,
so every method sees the same typos. Correction (``correct_typos=True``): a BM25 query term outside the
vocabulary becomes the vocabulary term one edit away that the most documents contain; the dense signal
reads the raw text either way. Nothing here was tuned: the corrector has no parameter besides the one-edit
rule and the 4-letter minimum. nfcorpus is a holdout collection: reported only.

Run: python benchmarks/bench_robustness.py [--rate 0.3]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import dataset_dir, eval_collection, header, write_section
from retrievo.config import CollectionConfig
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.eval.robustness import typo_queries
from retrievo.request import SearchRequest

SETTINGS = (("bm25", False), ("bm25", True), ("dense", False), ("hybrid", False), ("hybrid", True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=0.3)
    args = ap.parse_args()
    rows = ["| dataset | method | typo correction | nDCG@10 clean | nDCG@10 typos | drop | share of the drop recovered |",
            "|---|---|---|---|---|---|---|"]
    for name in ("scifact", "toollens", "nfcorpus"):
        ds = BeirDataset.from_path(dataset_dir(name))
        queries, qrels = ds.queries("test"), ds.qrels("test")
        qids = [q for q in queries if q in qrels]
        clean = [queries[q] for q in qids]
        typo = list(typo_queries({q: queries[q] for q in qids}, args.rate, seed=0).values())
        changed = np.mean([a != b for a, b in zip(clean, typo, strict=True)])
        cfg = CollectionConfig()
        coll = eval_collection(ds, cfg)
        uncorrected: dict[str, tuple[float, float]] = {}  # method -> (nDCG with typos, drop), no correction
        try:
            for method, fix in SETTINGS:
                scores = []
                for texts in (clean, typo):
                    req = SearchRequest(method=method, k=100, correct_typos=fix)
                    res = coll.searcher.search(texts, req, query_ids=qids)
                    scores.append(evaluate(res.to_run(), qrels)["ndcg@10"])
                drop = scores[0] - scores[1]
                rec = ""
                if fix:
                    typo_score, base_drop = uncorrected[method]
                    rec = f"{(scores[1] - typo_score) / base_drop:.0%}" if base_drop > 0 else "—"
                else:
                    uncorrected[method] = (scores[1], drop)
                label = f"{name} (holdout)" if name == "nfcorpus" else name
                line = (f"| {label} | {method} | {'yes' if fix else 'no'} | {scores[0]:.4f} | {scores[1]:.4f} | "
                        f"{-drop:+.4f} | {rec} |")
                rows.append(line)
                print(line, flush=True)
        finally:
            coll.close()
        print(f"  {name}: {changed:.0%} of the queries have at least one typo", flush=True)
    body = header("Robustness to typos", ()) + (
        f"\nTest queries with typos at rate {args.rate} (see the `bench_robustness.py` docstring), the same typos "
        "for every method. \"share of the drop recovered\": how much of the uncorrected method's loss the "
        "correction wins back.\n\n" + "\n".join(rows)
        + f"\n\nCommand: `python benchmarks/bench_robustness.py --rate {args.rate}`\n")
    write_section("robustness", body)


if __name__ == "__main__":
    main()
