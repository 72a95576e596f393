"""Fast query encoder: a static query encoder distilled from the collection's MiniLM (``retrievo distill-queries``,
aligned on the collection's training queries, titles and first sentences) against MiniLM itself, on SciFact and
ToolLens: query encoding time (one query at a time, median, one thread) and nDCG@10 of dense and hybrid search
with the same stored document vectors, in the same run.

Run: python benchmarks/bench_query_encoder.py
"""

from __future__ import annotations

import os

os.environ["RETRIEVO_ENCODER_THREADS"] = "1"  # before any encoder is made

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _common import CACHE, dataset_dir, eval_collection, header, write_section  # noqa: E402
from retrievo import SearchRequest  # noqa: E402
from retrievo.config import DenseConfig  # noqa: E402
from retrievo.encoders.bf16 import cpu_has_bf16  # noqa: E402
from retrievo.encoders.dense import DenseEncoder  # noqa: E402
from retrievo.encoders.static import StaticQueryEncoder, distill_static  # noqa: E402
from retrievo.eval.datasets import BeirDataset  # noqa: E402
from retrievo.eval.measures import evaluate  # noqa: E402


def median_ms(encode, queries: list[str]) -> float:
    encode(queries[:3])  # warm up
    ts = []
    for q in queries:
        t0 = time.perf_counter()
        encode([q])
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="scifact,toollens")
    ap.add_argument("--timed", type=int, default=300, help="test queries timed one at a time")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = ["| dataset | query encoder | ms per query (median, 1 thread) | speed-up | dense nDCG@10 | hybrid nDCG@10 | "
            "hybrid change |", "|---|---|---|---|---|---|---|"]
    notes = []
    for name in args.datasets.split(","):
        ds = BeirDataset.from_path(dataset_dir(name))
        folder = CACHE / "trained" / f"{name}-static"
        coll = eval_collection(ds)
        try:
            if not (folder / "static.json").exists():
                distill_static(coll, folder, queries=list(ds.queries("train").values()), overwrite=True)
            static = StaticQueryEncoder(folder)
            m = static.meta
            notes.append(f"{name}: distilled in {m['seconds']:.0f} s, aligned on {m['texts']:,} texts ({m['queries']:,} "
                         f"training queries); held-out cosine with MiniLM {m['heldout_cosine_before']:.3f} → "
                         f"{m['heldout_cosine']:.3f}")
            print(notes[-1], flush=True)
            q, qr = ds.queries("test"), ds.qrels("test")
            qids = [x for x in q if x in qr]
            texts = [q[x] for x in qids]
            sub = {x: qr[x] for x in qids}
            encoders = {}
            for backend in (["bf16"] if cpu_has_bf16() else []) + ["onnx"]:
                encoders[f"MiniLM ({backend})"] = DenseEncoder(DenseConfig(backend=backend)).encode_queries
            encoders["static (distilled)"] = static.encode_queries
            base_ms, base_hybrid = None, None
            for label, enc in encoders.items():
                ms = median_ms(enc, texts[: args.timed])
                qv = enc(texts)
                got = {}
                for method in ("dense", "hybrid"):
                    res = coll.searcher.search(texts, SearchRequest(method=method, k=100), query_ids=qids, query_vectors=qv)
                    got[method] = evaluate(res.to_run(), sub)["ndcg@10"]
                if base_ms is None:
                    base_ms, base_hybrid = ms, got["hybrid"]
                rows.append(f"| {name} | {label} | {ms:.3f} | {base_ms / ms:.1f}× | {got['dense']:.4f} | "
                            f"{got['hybrid']:.4f} | {got['hybrid'] - base_hybrid:+.4f} |")
                print(rows[-1], flush=True)
        finally:
            coll.close()
    body = header("Fast query encoder: static, distilled from MiniLM", ("torch", "onnxruntime", "tokenizers")) + (
        f"\nCPU: {'native bf16' if cpu_has_bf16() else 'AVX2, no bf16'}. Documents keep their MiniLM vectors; only "
        f"the query side changes. Timing: the first {args.timed} test queries one at a time, one thread. The speed-up is "
        "against the first row (MiniLM on the default backend).\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"
        + "\n".join(rows) + f"\n\nCommand: `python benchmarks/bench_query_encoder.py --datasets {args.datasets}`\n")
    print(body)
    if not args.no_write:
        write_section("query-encoder", body)


if __name__ == "__main__":
    main()
