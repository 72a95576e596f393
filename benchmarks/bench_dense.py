"""Exact dense search: retrievo's FlatIndex vs faiss IndexFlatIP on the same vectors, same run.

Vectors: SciFact's 5,183 all-MiniLM-L6-v2 document vectors and its 1,109 query vectors (taken from the
eval collection; computed once and cached), plus a generated set of 200,000 × 384 vectors (200 Gaussian
cluster centres on the unit sphere, points = centre + noise of norm ≈ 0.6, normalised; queries drawn
the same way), seeded. Top-10 by inner product; batched = all queries in one call, single = one call
per query. Reported: queries/s (best of 3) and recall of retrievo's top-10 against faiss's.

Run: python benchmarks/bench_dense.py
"""

from __future__ import annotations

import argparse
import gzip
import json

import numpy as np

from _common import CACHE, best_of, dataset_dir, header, write_section


def scifact_vectors():
    from retrievo.config import CollectionConfig
    from retrievo.eval.datasets import BeirDataset
    from retrievo.eval.runner import ensure_collection

    coll, _ = ensure_collection(BeirDataset.from_path(dataset_dir("scifact")), CollectionConfig())
    docs = np.concatenate([np.asarray(s.data.dense) for s in coll._state.segments])
    qpath = CACHE / "scifact-queries-minilm.npy"
    if qpath.exists():
        q = np.load(qpath)
    else:
        texts = [json.loads(line)["text"] for line in gzip.open(dataset_dir("scifact") / "queries.jsonl.gz", "rt")]
        q = coll.encoder.encode_queries(texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(qpath, q)
    coll.close()
    return docs.astype(np.float32), q.astype(np.float32)


def synthetic(n: int, nq: int, dim: int = 384, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m):
        x = centres[rng.integers(0, 200, m)] + rng.normal(scale=0.6 / np.sqrt(dim), size=(m, dim)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(nq)


def run(name, docs, queries, rows, k=10):
    import faiss

    from retrievo.indexes.flat import FlatIndex

    faiss.omp_set_num_threads(2)
    ours = FlatIndex([(0, docs)], np.ones(len(docs), bool))
    ref = faiss.IndexFlatIP(docs.shape[1])
    ref.add(docs)
    single = queries[:200]
    t_ours_b = best_of(lambda: ours.search(queries, k))
    t_ref_b = best_of(lambda: ref.search(queries, k))
    t_ours_s = best_of(lambda: [ours.search(q[None], k) for q in single])
    t_ref_s = best_of(lambda: [ref.search(q[None], k) for q in single])
    r_ours, _, _ = ours.search(queries, k)
    _, r_ref = ref.search(queries, k)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(r_ours, r_ref, strict=True)])
    for mode, to, tr, nq in (("batched", t_ours_b, t_ref_b, len(queries)), ("single", t_ours_s, t_ref_s, len(single))):
        rows.append(f"| {name} | {mode} | {nq / to:,.0f} | {nq / tr:,.0f} | **{tr / to:.2f}×** | {recall:.4f} |")
        print(rows[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=200_000)
    args = ap.parse_args()
    rows = ["| vectors | queries | retrievo q/s | faiss IndexFlatIP q/s | ratio | top-10 agreement |", "|---|---|---|---|---|---|"]
    d, q = scifact_vectors()
    run(f"SciFact MiniLM {len(d)}×{d.shape[1]}", d, q, rows)
    d, q = synthetic(args.synthetic, 1000)
    run(f"generated {len(d) // 1000}k×{d.shape[1]}", d, q, rows)
    body = header("Exact dense search: retrievo FlatIndex vs faiss", ("faiss-cpu", "numpy")) + (
        "\nSame float32 vectors, top-10 inner product, 2 threads each; batched = all queries in one call, single = "
        "200 one-query calls. Generated vectors: see `bench_dense.py` docstring.\n\n" + "\n".join(rows)
        + "\n\nCommand: `python benchmarks/bench_dense.py`\n")
    write_section("dense-speed", body)


if __name__ == "__main__":
    main()
