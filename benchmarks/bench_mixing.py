"""Learnt mixing weights (``retrievo train --source … --learn-weights``): each training source's influence on
SciFact's held-out training queries through the linear proxy of :func:`retrievo.training.mixing.source_rewards`,
and the weights :func:`~retrievo.training.mixing.learnt_weights` makes of them (all given weights 1).

Sources: SciFact's own training queries (the collection being trained), ToolLens's (another domain; 1,000 of
them, seeded), and SciFact's training queries with their judgements shuffled between queries (wrong pairs, the
source a weighting must push down). The development queries are the 40 training queries ``retrievo train``
holds out (seed 0); the rows are ``retrievo train``'s (a relevant document and 3 negatives mined by hybrid
search, top 30). Three seeds (the adapter's initial order and the ToolLens sample). The bundled MiniLM's vectors
come from the content cache when the collections were indexed before.

    python benchmarks/bench_mixing.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import dataset_dir, eval_collection, header, write_section
from retrievo.encoders.cache import encode_with_cache
from retrievo.eval.datasets import BeirDataset
from retrievo.training.judged import judged_set
from retrievo.training.mixing import development_queries, learnt_weights, source_rewards


def rows(js, negatives: int = 3, max_positives: int = 4) -> list:
    """``retrievo train``'s rows: (query, a relevant document, its negatives, [query number])."""
    return [(q.text, js.texts[d], [js.texts[n] for n in q.negatives[:negatives]], [i])
            for i, q in enumerate(js.train) if len(q.negatives) >= negatives for d in q.positives[:max_positives]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sci, tl = BeirDataset.from_path(dataset_dir("scifact")), BeirDataset.from_path(dataset_dir("toollens"))
    cs, ct = eval_collection(sci), eval_collection(tl)
    dense = cs.signals["dense"]
    main_js = judged_set(cs, sci.queries("train"), sci.qrels("train"), negatives=3, val_queries=40, seed=0)
    dev = development_queries(main_js)
    qr = sci.qrels("train")
    ids = sorted(qr)
    perm = np.random.default_rng(0).permutation(len(ids))
    shuffled = {ids[i]: qr[ids[perm[i]]] for i in range(len(ids))}
    wrong = judged_set(cs, sci.queries("train"), shuffled, negatives=3, val_queries=0, seed=0)
    names = ["SciFact training queries (the collection's own)", "ToolLens training queries",
             "SciFact training queries, judgements shuffled"]
    table = ["| seed | source | queries | reward (held-out nDCG@10 change) | learnt weight | seconds |",
             "|---|---|---|---|---|---|"]
    base = 0.0
    for seed in (int(s) for s in args.seeds.split(",")):
        tq = tl.qrels("train")
        keep = sorted(np.random.default_rng(seed).choice(sorted(tq), 1000, replace=False))
        tool = judged_set(ct, tl.queries("train"), {k: tq[k] for k in keep}, negatives=3, val_queries=0, seed=seed)
        by_source = [rows(main_js), rows(tool), rows(wrong)]
        t0 = time.perf_counter()
        rewards, base = source_rewards(
            by_source, dev, dense.encoder.encode_queries,
            lambda texts: encode_with_cache(dense.encoder, texts, dense.embedding_cache()), seed=seed, names=names)
        secs = time.perf_counter() - t0
        weights = learnt_weights([1.0] * len(names), rewards)
        for name, r, w, b in zip(names, rewards, weights, by_source, strict=True):
            table.append(f"| {seed} | {name} | {len({x[3][0] for x in b})} | {r:+.4f} | {w:.3g} | {secs:.0f} (all three) |")
            print(table[-1], flush=True)
    cs.close()
    ct.close()
    body = header("Learnt mixing weights (Inf-DDS-style, linear proxy)", ("torch",)) + (
        "\nSee the `bench_mixing.py` docstring. Development queries: SciFact's 40 held-out training queries, nDCG@10 "
        f"of their hybrid top 30 ranked by the bundled MiniLM without an adapter: {base:.4f}. Learnt weight: "
        "exp(reward / 0.05), the largest scaled to 1.\n\n" + "\n".join(table)
        + "\n\nCommand: `python benchmarks/bench_mixing.py`\n")
    print(body)
    if not args.no_write:
        write_section("mixing", body)


if __name__ == "__main__":
    main()
