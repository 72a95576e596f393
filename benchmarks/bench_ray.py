"""Sharded search and distributed ingest on a local Ray cluster, against one collection in the same run.

For SciFact (5,183 documents, 300 test queries) and ToolLens (464 tools, its first 300 test queries), the BM25 +
MiniLM collection ``retrievo eval`` keeps is split into 1, 2, 3 and 4 shards (documents routed by id hash,
their stored vectors reused) and opened as a :class:`~retrievo.distributed.ShardedCollection` (one Ray actor per
shard, ``ray.init(num_cpus=<cores>)``). Per shard count:

- **identity**: top-10 ids and scores (to 1e-5, ties allowed to differ in order) of every test query against the
  single collection, for bm25, dense (flat), hybrid, bm25 + RM3 and hybrid + RM3/Rocchio;
- **latency**: one query per call, in sequence, for bm25 and hybrid (query encoding included for both sides):
  p50 / p99 and queries/s, the single collection and the sharded one interleaved query by query; the fan-out
  overhead is the difference of the p50s;
- **batch**: all queries in one call, queries/s.

Ingest: SciFact's corpus through Ray Data into 4 shards: first with the cache a single-node index (``Collection.add``
+ ``commit``, the path of ``retrievo index``, from an empty cache, timed as the baseline) filled — nothing encoded,
and every document and vector compared with the single-node index's; then with 1 and 2 encoder actors from an
empty cache (every document encoded), and again with the cache that run filled.

Run: ``python benchmarks/bench_ray.py`` (writes the "ray" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import CACHE, cpu_flags, dataset_dir, eval_collection, header, write_section
from retrievo import Collection, CollectionConfig
from retrievo.eval.compare import result_differences
from retrievo.eval.datasets import BeirDataset

DATASETS = ("scifact", "toollens")
METHODS = {"bm25": dict(method="bm25"), "dense": dict(method="dense"), "hybrid": dict(method="hybrid"),
           "bm25+rm3": dict(method="bm25", prf=True), "hybrid+prf": dict(method="hybrid", prf=True)}


def build_shards(coll, n: int, where: Path) -> Path:
    """``coll``'s documents and stored vectors split into ``n`` shard collections under ``where``."""
    from retrievo.distributed.sharded import shard_of, write_manifest

    shutil.rmtree(where, ignore_errors=True)
    snap = coll.snapshot()
    rows = np.flatnonzero(snap.live)
    docs = coll.documents_at(rows.tolist(), snap)
    vectors = snap.signals["dense"].gather(rows)
    to = np.array([shard_of(d.id, n) for d in docs])
    for s, path in enumerate(write_manifest(where, n)):
        shard = Collection.create(path, coll.config)
        shard.add([d for d, t in zip(docs, to, strict=True) if t == s], vectors=vectors[to == s])
        shard.commit()
        shard.close()
    return where


def latencies(a, b, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of ``a(q)`` and ``b(q)`` for each query, the two interleaved (one then the other, query by query)
    so that both see the same machine."""
    out = np.empty((2, len(queries)))
    for i, q in enumerate(queries):
        for j, fn in enumerate((a, b)):
            t = time.perf_counter()
            fn(q)
            out[j, i] = time.perf_counter() - t
    return out[0], out[1]


def search_rows(name: str, shard_counts: list[int], n_lat: int) -> tuple[list[str], list[str]]:
    from retrievo.distributed import ShardedCollection

    ds = BeirDataset.from_path(dataset_dir(name))
    coll = eval_collection(ds)
    queries = ds.queries("test")
    qrels = ds.qrels("test")
    qids = [q for q in queries if q in qrels][:300]
    texts = [queries[q] for q in qids]
    ident, speed = [], []
    for n in shard_counts:
        where = build_shards(coll, n, CACHE / f"ray-{name}-{n}")
        sc = ShardedCollection.open(where)
        diffs = []
        for kw in METHODS.values():
            want = coll.search(texts, k=10, **kw)
            got = sc.search(texts, k=10, **kw)
            bad = {int(p.split()[1].rstrip(":")) for p in result_differences(want, got)}
            diffs.append(f"{len(bad)}")
        ident.append(f"| {name} | {n} | {len(texts)} | " + " | ".join(diffs) + " |")
        for label in ("bm25", "hybrid"):
            kw = METHODS[label]
            for q in texts[:5]:  # warm both
                coll.search(q, **kw)
                sc.search(q, **kw)
            one, lat = latencies(lambda q, kw=kw: coll.search(q, k=10, **kw),
                                 lambda q, kw=kw, sc=sc: sc.search(q, k=10, **kw), texts[:n_lat])
            t = time.perf_counter()
            coll.search(texts, k=10, **kw)
            b1 = len(texts) / (time.perf_counter() - t)
            t = time.perf_counter()
            sc.search(texts, k=10, **kw)
            bn = len(texts) / (time.perf_counter() - t)
            speed.append(
                f"| {name} | {label} | {n} | {np.percentile(one, 50) * 1e3:.2f} / {np.percentile(one, 99) * 1e3:.2f} | "
                f"{np.percentile(lat, 50) * 1e3:.2f} / {np.percentile(lat, 99) * 1e3:.2f} | "
                f"{1 / one.mean():.0f} | {1 / lat.mean():.0f} | {one.mean() / lat.mean():.2f}x | "
                f"{(np.percentile(lat, 50) - np.percentile(one, 50)) * 1e3:+.2f} | {b1:.0f} | {bn:.0f} |")
            print(speed[-1], flush=True)
        sc.close()
    coll.close()
    return ident, speed


def same_as_single(single_path: Path, root: Path) -> str:
    """How many documents of the single-node index the shards hold with other fields or other vectors."""
    single = Collection.open(single_path, readonly=True)
    snap = single.snapshot()
    other, seen = 0, 0
    for shard_path in sorted(root.glob("shard-*")):
        shard = Collection.open(shard_path, readonly=True)
        sn = shard.snapshot()
        rows = np.flatnonzero(sn.live)
        ids = [str(i) for i in sn.ids[rows]]
        mine = sn.signals["dense"].gather(rows)
        theirs = snap.signals["dense"].gather(np.array([snap.row_of(i) for i in ids]))
        docs_a, docs_b = shard.get_many(ids), single.get_many(ids)
        other += sum(1 for j in range(len(ids)) if docs_a[j].to_dict() != docs_b[j].to_dict()
                     or not np.array_equal(mine[j], theirs[j]))
        seen += len(ids)
        shard.close()
    n = single.count()
    single.close()
    return f"{other} of {n} differ" + ("" if seen == n else f" ({seen} held)")


def ingest_rows() -> list[str]:
    from retrievo.distributed import ingest
    from retrievo.store.loaders import iter_source

    src = dataset_dir("scifact")
    cfg = CollectionConfig()
    rows = []
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tmp = Path(tmp)
        os.environ["RETRIEVO_CACHE_DIR"] = str(tmp / "cache-single")  # this process: the single-node index
        t = time.perf_counter()
        single = Collection.create(tmp / "single", cfg)
        single.add(iter_source(src))
        single.commit()
        single_s = time.perf_counter() - t
        n = single.count()
        single.close()
        rows.append(f"| single-node index (Collection.add + commit), empty cache | — | {n} | {n} | {single_s:.1f} | "
                    f"{n / single_s:.0f} | 1.00x | — |")
        print(rows[-1], flush=True)
        rep = ingest(src, tmp / "sharded-same", 4, cfg, encoders=1, cache_dir=tmp / "cache-single",
                     show_progress=False)
        rows.append(f"| Ray Data ingest, 1 encoder actor, the single-node index's cache | 1 | {rep.documents} | "
                    f"{rep.encoded} | {rep.seconds:.1f} | {rep.docs_per_second:.0f} | {single_s / rep.seconds:.2f}x | "
                    f"{same_as_single(tmp / 'single', tmp / 'sharded-same')} |")
        print(rows[-1], flush=True)
        for encoders in (1, 2):
            cache = tmp / f"cache-{encoders}"
            for label in ("empty cache", "cache of the run above"):
                rep = ingest(src, tmp / f"sharded-{encoders}-{label[:5]}", 4, cfg, encoders=encoders,
                             cache_dir=cache, show_progress=False)
                rows.append(f"| Ray Data ingest, {encoders} encoder actor{'s' if encoders > 1 else ''}, {label} | "
                            f"{encoders} | {rep.documents} | {rep.encoded} | {rep.seconds:.1f} | "
                            f"{rep.docs_per_second:.0f} | {single_s / rep.seconds:.2f}x | — |")
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    import ray

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--shards", default="1,2,3,4")
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--no-ingest", action="store_true")
    args = ap.parse_args()
    CACHE.mkdir(exist_ok=True)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    counts = [int(x) for x in args.shards.split(",")]
    ident, speed = [], []
    for name in args.datasets.split(","):
        i, s = search_rows(name, counts, args.latency_queries)
        ident += i
        speed += s
    ingest = [] if args.no_ingest else ingest_rows()
    body = header("Sharded search and ingest on a local Ray cluster (bench_ray.py)", ("ray", "onnxruntime", "torch"))
    body += (f"\nCPU flags: {cpu_flags()}. One local Ray cluster on this machine's {os.cpu_count()} cores holds the "
             "driver, every shard actor and (for ingest) the encoder actors; a real cluster gives each its own cores.\n")
    body += ("\n### Identity: queries whose top 10 differ from one collection's (ids and scores to 1e-5; tied scores "
             "may swap)\n\n| dataset | shards | queries | " + " | ".join(METHODS) + " |\n|---|---|---|"
             + "---|" * len(METHODS) + "\n" + "\n".join(ident) + "\n")
    body += ("\n### Search latency: one query per call (ms p50 / p99), queries/s, and all queries in one call\n\n"
             "| dataset | method | shards | one collection p50 / p99 | sharded p50 / p99 | one q/s | sharded q/s | "
             "sharded / one | fan-out overhead p50 (ms) | one batch q/s | sharded batch q/s |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(speed) + "\n")
    if ingest:
        body += ("\n### Ingest: SciFact (5,183 documents) into 4 shards, MiniLM vectors\n\n"
                 "| run | encoder actors | documents | encoded | seconds | docs/s | speed vs single-node | "
                 "documents and vectors vs the single-node index |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(ingest) + "\n")
    write_section("ray", body)
    ray.shutdown()


if __name__ == "__main__":
    main()
