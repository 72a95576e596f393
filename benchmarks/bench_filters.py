"""Filtered dense search by selectivity: retrievo's strategy choice vs a naive post-filter, same index, same run.

Corpus: the generated vectors of ``bench_ann.py`` (same generator and seed); an HNSW index (M=32,
efConstruction=--ef-construction, efSearch=--ef-search), built once per setting and kept in
benchmarks/.cache/ (git-ignored) for reruns; its build time is reported. For selectivities 0.1%, 1%, 10%, 50% and 100% a random allowed set is
drawn (seeded); ground truth is brute-force filtered top-10 (exact search over the allowed rows).
Reported per selectivity: the strategy retrievo picked, its recall@10 and queries/s (batched), next to the
naive baseline — HNSW top-(10/s) at the same efSearch, then drop disallowed rows — with its recall and queries/s.

Run: python benchmarks/bench_filters.py --n 1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_ann import generate, recall

from _common import CACHE, best_of, header, write_section


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-search", type=int, default=128)
    args = ap.parse_args()
    import faiss

    from retrievo.config import DenseIndexConfig
    from retrievo.indexes.ann import AnnIndex, build_segment_index, load_segment_index
    from retrievo.indexes.flat import FlatIndex

    faiss.omp_set_num_threads(2)
    x, q = generate(args.n, 1000)
    q = q[:300]
    live = np.ones(len(x), bool)
    cfg = DenseIndexConfig(kind="hnsw", M=32, ef_construction=args.ef_construction, ef_search=args.ef_search)
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"filters-hnsw-{args.n}-M32-efc{args.ef_construction}.faiss"
    build_s = None
    if not path.exists():
        t0 = time.perf_counter()
        build_segment_index(x, cfg, path)
        build_s = time.perf_counter() - t0
        print(f"built HNSW in {build_s:.0f} s", flush=True)
    seg = load_segment_index(path)
    flat = FlatIndex([(0, x)], live)
    idx = AnnIndex([(0, seg, len(x))], flat, live, cfg)
    rng = np.random.default_rng(7)
    rows = ["| selectivity | allowed rows | retrievo strategy | recall@10 | q/s | naive post-filter recall@10 | naive q/s |",
            "|---|---|---|---|---|---|---|"]
    for sel in (0.001, 0.01, 0.1, 0.5, 1.0):
        allowed = rng.random(len(x)) < sel if sel < 1 else np.ones(len(x), bool)
        truth, _, _ = flat.search(q, 10, allowed)
        found, _, _ = idx.search(q, 10, None if sel == 1 else allowed)
        strategy = idx.last_strategy
        qps = len(q) / best_of(lambda a=allowed, s=sel: idx.search(q, 10, None if s == 1 else a), 2)
        over = int(min(len(x), np.ceil(10 / sel)))
        params = faiss.SearchParametersHNSW(efSearch=max(args.ef_search, over))

        def naive(a=allowed, over=over, params=params):
            _, r = seg.search(q, over, params=params)
            out = np.full((len(q), 10), -1)
            for i, row in enumerate(r):
                keep = row[(row >= 0) & a[np.maximum(row, 0)]][:10]
                out[i, : len(keep)] = keep
            return out

        nfound = naive()
        nqps = len(q) / best_of(naive, 2)
        rows.append(f"| {sel:.1%} | {int(allowed.sum()):,} | {strategy} | {recall(found, truth):.4f} | {qps:,.0f} | "
                    f"{recall(nfound, truth):.4f} | {nqps:,.0f} |")
        print(rows[-1], flush=True)
    body = header(f"Filtered HNSW search on {len(x):,} generated vectors", ("faiss-cpu",)) + (
        "\nAllowed sets drawn uniformly at random; 300 queries; top-10; queries/s batched (all 300 in one call). "
        "Strategy (`retrievo.indexes.ann.choose_strategy`): exact over the allowed rows when that costs fewer "
        "distance computations than filtered HNSW traversal (≈ efSearch × 2M / selectivity), filtered traversal "
        "(bitmap inside HNSW) otherwise up to 50% selectivity, post-filter with oversampling above, exact "
        "completion whenever fewer than k come back. The naive baseline searches the same graph with the same "
        "efSearch (raised to k / selectivity when that is larger) and drops disallowed rows. HNSW M=32, efConstruction="
        f"{args.ef_construction}, efSearch={args.ef_search}"
        + (f" (built in {build_s:.0f} s)" if build_s else " (index built by an earlier run, kept in benchmarks/.cache)")
        + ".\n\n" + "\n".join(rows)
        + f"\n\nCommand: `python benchmarks/bench_filters.py --n {args.n} --ef-construction {args.ef_construction} "
        f"--ef-search {args.ef_search}`\n")
    write_section("filters", body)


if __name__ == "__main__":
    main()
