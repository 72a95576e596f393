"""BM25 indexing time and queries/s: retrievo vs bm25s (numpy and numba backends), same tokens, same run.

Corpora: SciFact (5,183 docs, its 1,109 queries) and a generated corpus of 100,000 documents (Zipfian
vocabulary of 200k terms, s=1.1; document lengths lognormal around 120 tokens; 2,000 queries of 2-8
terms drawn from the same Zipf law restricted to terms that occur), seeded.
Both libraries get exactly the same token lists (retrievo's analyzer), k1=0.9, b=0.4, method lucene.
Reported: index seconds, retrieval queries/s for top-10 (warm, best of 5 turns taken with bm25s-numba) at 1 and 2 threads,
and top-10 overlap of retrievo with bm25s.

Run: python benchmarks/bench_bm25.py [--docs 100000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

import numpy as np

from _common import best_of, dataset_dir, header, write_section

ROUNDS = 5  # retrievo and bm25s-numba take turns this many times; the best of each is kept


def scifact_tokens():
    from retrievo.analysis.analyzer import Analyzer

    d = dataset_dir("scifact")
    docs = [json.loads(line) for line in gzip.open(d / "corpus.jsonl.gz", "rt")]
    queries = [json.loads(line)["text"] for line in gzip.open(d / "queries.jsonl.gz", "rt")]
    an = Analyzer()
    return [an.tokenize(x["title"] + " " + x["text"]) for x in docs], [an.tokenize(q) for q in queries]


def synthetic_tokens(n_docs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = 200_000
    ranks = np.arange(1, vocab + 1)
    p = ranks ** -1.1
    p /= p.sum()
    lengths = np.clip(rng.lognormal(np.log(120), 0.5, n_docs).astype(int), 5, 1000)
    flat = rng.choice(vocab, size=int(lengths.sum()), p=p)
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    docs, pos = [], 0
    for n in lengths:
        docs.append(words[flat[pos:pos + n]].tolist())
        pos += n
    present = np.unique(flat)
    pq = p[present] / p[present].sum()
    queries = [words[rng.choice(present, size=rng.integers(2, 9), p=pq)].tolist() for _ in range(2000)]
    return docs, queries


def build_ours(doc_tokens):
    from retrievo.config import BM25Config
    from retrievo.indexes.inverted import InvertedIndex, term_frequencies

    vocab: dict[str, int] = {}
    indptr, terms, counts, doclen = term_frequencies(doc_tokens, vocab)
    idx = InvertedIndex(indptr, terms, counts, doclen,
                        np.ones(len(doc_tokens), bool), len(vocab), BM25Config())
    return idx, vocab


def run_corpus(name, doc_tokens, query_tokens, rows):
    import bm25s

    print(f"[{name}] {len(doc_tokens)} docs, {len(query_tokens)} queries")
    t0 = time.perf_counter()
    ours, vocab = build_ours(doc_tokens)
    t_ours = time.perf_counter() - t0
    q_ids = [np.array([vocab[t] for t in q if t in vocab], np.int64) for q in query_tokens]

    # bm25s gets the same vocabulary ids, so both score identical token streams
    tok = bm25s.tokenization.Tokenized(ids=[[vocab[t] for t in d] for d in doc_tokens], vocab=dict(vocab))
    qtok = [[int(t) for t in q] for q in q_ids]
    keep = [i for i, q in enumerate(qtok) if q]
    qtok = [qtok[i] for i in keep]
    q_ids = [q_ids[i] for i in keep]
    timings = {}
    refs = {}
    for backend in ("numpy", "numba"):
        t0 = time.perf_counter()
        ref = bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend=backend)
        ref.index(tok, show_progress=False)
        refs[backend] = (ref, time.perf_counter() - t0)
    ours_q = {}
    for threads in (1, 2):
        kw = {b: dict(k=10, show_progress=False, backend_selection=b, n_threads=threads) for b in refs}
        for b, (ref, _) in refs.items():
            ref.retrieve(qtok[:50], **kw[b])  # warm up (compiles numba)
        ours.search(q_ids[:50], 10, threads=threads)
        slow, t_idx = refs["numpy"]  # slow: timed once, it is not the reference of the ratio
        timings[("numpy", threads)] = (t_idx, len(qtok) / best_of(lambda s=slow, k=kw["numpy"]: s.retrieve(qtok, **k), 1))
        # the two fast ones take turns, so a slow spell of this shared machine hits both alike
        best_ours = best_ref = float("inf")
        ref, t_idx = refs["numba"]
        for _ in range(ROUNDS):
            best_ours = min(best_ours, best_of(lambda threads=threads: ours.search(q_ids, 10, threads=threads), 1))
            best_ref = min(best_ref, best_of(lambda r=ref, k=kw["numba"]: r.retrieve(qtok, **k), 1))
        ours_q[threads] = len(q_ids) / best_ours
        timings[("numba", threads)] = (t_idx, len(qtok) / best_ref)
    res_ref, _ = refs["numba"][0].retrieve(qtok, k=10, show_progress=False, backend_selection="numba", n_threads=2)
    rows_o, _, counts = ours.search(q_ids, 10)
    overlap = np.mean([len(set(rows_o[i, :counts[i]]) & set(res_ref[i])) / max(1, min(10, counts[i]))
                       for i in range(len(q_ids))])
    for threads in (1, 2):
        best_ref = timings[("numba", threads)][1]
        rows.append(f"| {name} | {threads} | retrievo | {t_ours:.2f} | {ours_q[threads]:,.0f} | "
                    f"**{ours_q[threads] / best_ref:.2f}×** vs bm25s-numba | {overlap:.4f} |")
        for backend in ("numpy", "numba"):
            ti, qps = timings[(backend, threads)]
            rows.append(f"| {name} | {threads} | bm25s ({backend}) | {ti:.2f} | {qps:,.0f} | | |")
    print("\n".join(rows[-6:]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    args = ap.parse_args()
    rows = ["| corpus | threads | library | index s | queries/s (top-10) | ratio | top-10 overlap |",
            "|---|---|---|---|---|---|---|"]
    run_corpus("SciFact", *scifact_tokens(), rows)
    run_corpus(f"synthetic {args.docs // 1000}k", *synthetic_tokens(args.docs), rows)
    body = header("BM25 speed: retrievo vs bm25s", ("bm25s", "numba", "numpy")) + (
        "\nSame token ids for both (retrievo's analyzer); Lucene BM25 k1=0.9 b=0.4; top-10; queries/s is the best of 5 "
        "warm runs over all queries as one batch, retrievo and bm25s-numba taking turns (bm25s-numpy: one run); index s "
        "builds the index from token lists. "
        "Overlap: mean |top-10 ∩ bm25s-numba top-10| / 10. Generated corpus: see `bench_bm25.py` docstring.\n\n"
        + "\n".join(rows) + "\n\nCommand: `python benchmarks/bench_bm25.py`\n")
    write_section("bm25-speed", body)


if __name__ == "__main__":
    main()
