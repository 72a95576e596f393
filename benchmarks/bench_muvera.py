"""MUVERA fixed-dimensional encodings: how much of the exact-Chamfer top 10 an FDE search finds, ours against a
peer implementation on the same token vectors, and what exact MaxSim and FDE + rescoring cost per query.

1. SciFact (5,183 documents, 300 test queries): the token vectors the multivector signal stores (bundled
   MiniLM, 128 dimensions, punctuation dropped). For each setting (R, k_sim, d_proj) of the paper's grid,
   documents and queries are encoded by retrievo (``retrievo.indexes.muvera``: SimHash partitions, and sampled
   ones) and by fastembed's ``Muvera``
   (same R, k_sim, d_proj: the same output dimension); recall of each query's exact-Chamfer top 10 within the
   FDE top N (N = 10 … 1,000), and documents encoded per second.
2. A generated set of 1,000,000 documents (12 tokens on average, 32 dimensions, tokens drawn from a Zipfian
   vocabulary of 20,000 topic vectors plus noise; 100 queries made from a document's tokens plus noise and
   tokens of others): the same recall for one setting, both implementations, averaged over the same three seeds.
3. SciFact through the collection: nDCG@10 and queries per second of exact MaxSim over every document and of
   FDE search (the collection's default encoding, and the same with sampled partitions; flat index) + exact
   rescoring of the top 100 / 150 / 200, end to end and for the retrieval step alone (query token vectors given).

Run: ``python benchmarks/bench_muvera.py [--skip-1m]`` (writes the "muvera" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import cpu_flags, dataset_dir, eval_collection, header, write_section
from retrievo import SearchRequest
from retrievo.config import CollectionConfig, FDEConfig
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.indexes.maxsim import MaxSimIndex
from retrievo.indexes.muvera import FixedDimensionalEncoder, sample_centroids

SETTINGS = [(20, 3, 8), (20, 4, 8), (20, 5, 8), (20, 5, 16), (20, 6, 16), (40, 5, 16)]
NS = (10, 50, 100, 200, 500, 1000)
SEEDS = (42, 1042, 2042)
SIMHASH = {"fde": {"repetitions": 40, "partitions": "simhash"}}  # the default setting, with SimHash partitions
SAMPLED = {"fde": {"repetitions": 40, "partitions": "sampled"}}  # the default setting, with sampled partitions  # SciFact: recall averaged over three draws (repetition r uses seed + r: seeds far apart)


def topn(doc_fde: np.ndarray, q_fde: np.ndarray, n: int, block: int = 200_000) -> np.ndarray:
    """Each query's top ``n`` rows by FDE inner product (exact, in blocks of rows)."""
    best_s = np.full((len(q_fde), 0), -np.inf, np.float32)
    best_r = np.zeros((len(q_fde), 0), np.int64)
    for s in range(0, len(doc_fde), block):
        sc = q_fde @ np.asarray(doc_fde[s:s + block], np.float32).T
        m = min(n, sc.shape[1])
        part = np.argpartition(-sc, m - 1, axis=1)[:, :m]
        best_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], axis=1)
        best_r = np.concatenate([best_r, part + s], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :n]
        best_s, best_r = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_r, keep, 1)
    return best_r


def recalls(truth: np.ndarray, doc_fde: np.ndarray, q_fde: np.ndarray) -> list[float]:
    top = topn(doc_fde, q_fde, max(NS))
    return [float(np.mean([len(set(truth[i]) & set(top[i, :n])) / truth.shape[1] for i in range(len(truth))]))
            for n in NS]


def peer_encode(sets: list[np.ndarray], queries: list[np.ndarray], dim: int, reps: int, k: int, dp: int,
                seed: int = 42):
    from fastembed.postprocess import Muvera

    m = Muvera(dim, k_sim=k, dim_proj=dp, r_reps=reps, random_seed=seed)
    docs = np.empty((len(sets), m.embedding_size), np.float32)  # its float64 outputs, stored as float32 one by one
    t0 = time.perf_counter()
    for i, s in enumerate(sets):
        docs[i] = m.process_document(np.asarray(s, np.float32))
    secs = time.perf_counter() - t0
    q = np.stack([m.process_query(np.asarray(x, np.float32)) for x in queries]).astype(np.float32)
    return docs, q, secs


def ours_encode(ptr, tok, queries: list[np.ndarray], dim: int, reps: int, k: int, dp: int, seed: int = 42,
                partitions: str = "simhash"):
    cfg = FDEConfig(repetitions=reps, simhash=k, projection_dim=dp, seed=seed, partitions=partitions)
    t0 = time.perf_counter()  # drawing the sampled partitions' centres is part of encoding
    enc = FixedDimensionalEncoder(dim, cfg, sample_centroids(tok, cfg) if partitions == "sampled" else None)
    docs = enc.documents(ptr, tok)
    secs = time.perf_counter() - t0
    qp = np.zeros(len(queries) + 1, np.int64)
    np.cumsum([len(x) for x in queries], out=qp[1:])
    return docs, enc.queries(qp, np.concatenate(queries)), secs


def table_rows(name: str, dim: int, truth, ptr, tok, sets, queries, settings, n_docs: int,
               seeds: tuple[int, ...] = (42,)) -> list[str]:
    """One row per setting and implementation: recall at each N averaged over ``seeds`` (each seed draws every
    random matrix anew), the spread of R@10 and R@100 over the seeds, and documents encoded per second (first
    seed)."""
    rows = []
    for reps, k, dp in settings:
        out_dim = reps * (1 << k) * dp
        for impl in ("retrievo", "retrievo, sampled", "fastembed"):
            recs, speed = [], None
            for seed in seeds:
                if impl.startswith("retrievo"):
                    d, q, secs = ours_encode(ptr, tok, queries, dim, reps, k, dp, seed,
                                             "sampled" if impl.endswith("sampled") else "simhash")
                else:
                    d, q, secs = peer_encode(sets, queries, dim, reps, k, dp, seed)
                recs.append(recalls(truth, d, q))
                speed = speed or n_docs / secs
                del d, q
            rec = np.array(recs)
            spread = (f"{rec[:, 0].min():.3f}–{rec[:, 0].max():.3f} / {rec[:, 2].min():.3f}–{rec[:, 2].max():.3f}"
                      if len(seeds) > 1 else "—")
            rows.append(f"| {name} | ({reps}, {k}, {dp}) | {out_dim:,} | {impl} | "
                        + " | ".join(f"{r:.3f}" for r in rec.mean(axis=0)) + f" | {spread} | {speed:,.0f} |")
            print(rows[-1], flush=True)
    return rows


E2E_INTRO = ("SciFact and ToolLens through the collection (300 and 1,877 test queries, one batch, FDE index flat): "
             "queries/s end to end (the query's token vectors encoded by MiniLM, the same for both) and of the retrieval "
             "step alone (token vectors given).")


def end_to_end(coll, ds, queries: dict, qids: list[str], qtok: list[np.ndarray], snap, state,
               stats: dict | None = None, prefix: str = "") -> tuple[list[str], dict]:
    """A collection searched whole: exact MaxSim (unless ``stats`` holds it already, from another collection of
    the same documents) and FDE + rescoring, end to end and the retrieval step alone; labels start ``prefix``."""
    from retrievo.signals.base import Candidates

    qrels = ds.qrels("test")
    e2e = []
    texts = [queries[q] for q in qids]
    sig = coll.signals["multivector"]
    fde_cfg = sig.config.fde
    setting = (f"({fde_cfg.repetitions}, {fde_cfg.simhash}, {fde_cfg.projection_dim}) "
               f"{'SimHash' if fde_cfg.partitions == 'simhash' else fde_cfg.partitions} partitions")
    exact = f"{prefix}exact MaxSim (every document)"
    settings = ([] if stats else [(exact, {})]) + [
        (f"{prefix}FDE {setting} flat + MaxSim rescoring of top {n}", {"fde": True, "fde_candidates": n})
        for n in (100, 150, 200)]
    q_ptr = np.zeros(len(qtok) + 1, np.int64)
    np.cumsum([len(x) for x in qtok], out=q_ptr[1:])
    stats = stats if stats is not None else {}

    def retrieve(opts: dict) -> None:
        if not opts:
            state.maxsim.search(qtok, 100)
            return
        q_fde = sig.fde_encoder(state.maxsim.dim).queries(q_ptr, np.concatenate(qtok))
        first = Candidates.of(sig.fde_index(snap).search(q_fde, opts["fde_candidates"], None))
        sig.rescore(state, qtok, first, 100)

    for label, opts in settings:
        req = SearchRequest(method="multivector", k=100, options=opts)
        coll.searcher.search(texts[:5], req)  # warm: kernels compiled, indexes loaded
        t0 = time.perf_counter()
        res = coll.searcher.search(texts, req, query_ids=qids)
        secs = time.perf_counter() - t0
        t0 = time.perf_counter()
        retrieve(opts)
        r_secs = time.perf_counter() - t0
        m = evaluate(res.to_run(), qrels)
        stats[label] = (m["ndcg@10"], len(texts) / secs, len(texts) / r_secs)
        base = stats[exact]
        e2e.append(f"| {label} | {m['ndcg@10']:.4f} | {m['ndcg@10'] - base[0]:+.4f} | {m['recall@100']:.4f} | "
                   f"{len(texts) / secs:.1f} ({stats[label][1] / base[1]:.1f}×) | "
                   f"{len(texts) / r_secs:.1f} ({stats[label][2] / base[2]:.1f}×) |")
        print(e2e[-1], flush=True)
    return e2e, stats


def scifact_part() -> tuple[list[str], dict]:
    ds = BeirDataset.from_path(dataset_dir("scifact"))
    coll = eval_collection(ds, CollectionConfig(dense=None, signals={"multivector": SIMHASH}))
    snap = coll.snapshot()
    state = snap.signals["multivector"]
    ptr_parts, toks, sets = [np.zeros(1, np.int64)], [], []
    base = 0
    for seg in snap.segments:  # every row (the eval collection has no deletions)
        p, t = seg.data.mv_indptr, np.asarray(seg.data.mv_tokens, np.float32)
        ptr_parts.append(p[1:] + base)
        base += int(p[-1])
        toks.append(t)
        sets += [t[p[i]:p[i + 1]] for i in range(len(p) - 1)]
    ptr, tok = np.concatenate(ptr_parts), np.concatenate(toks)
    queries = ds.queries("test")
    qids = list(queries)
    enc = coll.signals["multivector"].encoder
    qtok = enc.encode_queries([queries[q] for q in qids])
    t0 = time.perf_counter()
    truth = state.maxsim.search(qtok, 10)[0]
    t_exact = time.perf_counter() - t0
    print(f"SciFact exact MaxSim top-10 of {len(qids)} queries: {t_exact:.1f} s", flush=True)
    rows = table_rows("SciFact", tok.shape[1], truth, ptr, tok, sets, qtok, SETTINGS, len(sets), SEEDS)

    stats = {"tokens_per_doc": coll.info()["multivector_tokens_per_doc"]}
    coll.close()
    return rows, stats


def generated_part(n_docs: int, n_queries: int = 100, dim: int = 32, seed: int = 0,
                   seeds: tuple[int, ...] = (42,)) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = rng.standard_normal((20_000, dim)).astype(np.float32)
    vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    zipf /= zipf.sum()
    lengths = rng.integers(4, 21, n_docs)
    ptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(lengths, out=ptr[1:])
    ids = rng.choice(len(vocab), int(ptr[-1]), p=zipf)
    tok = vocab[ids] + 0.3 * rng.standard_normal((int(ptr[-1]), dim)).astype(np.float32)
    tok /= np.linalg.norm(tok, axis=1, keepdims=True)
    tok16 = tok.astype(np.float16)
    del tok
    queries = []
    for i in rng.choice(n_docs, n_queries, replace=False):
        own = np.asarray(tok16[ptr[i]:ptr[i + 1]], np.float32)[: 6]
        other = vocab[rng.choice(len(vocab), 2, p=zipf)]
        q = np.concatenate([own, other]) + 0.1 * rng.standard_normal((len(own) + 2, dim)).astype(np.float32)
        queries.append((q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32))
    index = MaxSimIndex([(0, ptr, tok16)], np.ones(n_docs, bool))
    t0 = time.perf_counter()
    truth = index.search(queries, 10)[0]
    print(f"generated: {n_docs:,} documents, {int(ptr[-1]):,} tokens; exact top-10 of {n_queries} queries in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    sets = [np.asarray(tok16[ptr[i]:ptr[i + 1]], np.float32) for i in range(n_docs)]
    tok32 = np.asarray(tok16, np.float32)
    return table_rows(f"generated {n_docs // 1000:,}k", dim, truth, ptr, tok32, sets, queries, [(20, 3, 8)], n_docs,
                      seeds)


def replace_rows(find, rows: list[str], opening: str, detail: str) -> list[str]:
    """Put ``rows`` in place of the muvera section's lines ``[lo, hi)`` (``find(lines)`` gives them) and the note
    ``opening detail`` before the section's end, replacing an earlier note with the same opening; returns the
    section's lines. Writes RESULTS.md."""
    import re

    from _common import RESULTS

    text = RESULTS.read_text()
    body = re.search(r"<!-- begin:muvera -->.*?<!-- end:muvera -->", text, re.S).group(0)
    lines = [line for line in body.split("\n") if not line.startswith(opening)]
    lo, hi = find(lines)
    lines[lo:hi] = rows
    if lines[-2] == "":  # the blank line before the section's end stays after the note
        lines.insert(len(lines) - 2, f"{opening} {detail}")
    else:
        lines.insert(len(lines) - 1, f"{opening} {detail}\n")
    RESULTS.write_text(text.replace(body, "\n".join(lines)))
    return lines


def replace_generated(n_docs: int) -> None:
    """Measure the generated set again over every seed of ``SEEDS`` and put its rows in place of the old ones."""
    from _common import RESULTS, git_rev

    def find(lines: list[str]) -> tuple[int, int]:
        at = [i for i, line in enumerate(lines) if line.startswith("| generated ")]
        return at[0], at[-1] + 1

    rows = generated_part(n_docs, seeds=SEEDS)
    replace_rows(find, rows, "(Generated rows re-measured", f"{time.strftime('%Y-%m-%d %H:%M')} at {git_rev()} over "
                 f"seeds {SEEDS}, CPU flags {cpu_flags()}.)")
    RESULTS.write_text(RESULTS.read_text().replace("the generated set: one seed",
                                                   f"the generated set: the mean over seeds {SEEDS}"))
    print("replaced the generated rows of the muvera section")


E2E_HEAD = "| search | nDCG@10 | vs exact | R@100 |"


def e2e_rows() -> list[str]:
    """The end-to-end table: SciFact and ToolLens, the default (sampled) partitions and SimHash."""
    e2e: list[str] = []
    for name, prefix in (("scifact", ""), ("toollens", "ToolLens: ")):
        ds = BeirDataset.from_path(dataset_dir(name))
        queries = ds.queries("test")
        qids = [q for q in queries if q in ds.qrels("test")]
        stats = None
        for fde in (SAMPLED, SIMHASH):
            coll = eval_collection(ds, CollectionConfig(dense=None, signals={"multivector": fde}))
            snap = coll.snapshot()
            if stats is None:
                qtok = coll.signals["multivector"].encoder.encode_queries([queries[q] for q in qids])
            rows, stats = end_to_end(coll, ds, queries, qids, qtok, snap, snap.signals["multivector"], stats, prefix)
            e2e += rows
            coll.close()
    return e2e


def replace_e2e() -> None:
    """Measure the end-to-end table again (nothing else running) and put it in place of the old one."""
    from _common import git_rev

    e2e = e2e_rows()

    def find(lines: list[str]) -> tuple[int, int]:
        head = next(i for i, line in enumerate(lines) if line.startswith(E2E_HEAD))
        end = head + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        return head + 2, end

    lines = replace_rows(find, e2e, "(End-to-end table re-measured", f"{time.strftime('%Y-%m-%d %H:%M')} at "
                         f"{git_rev()}, nothing else running.)")
    from _common import RESULTS

    intro = next(line for line in lines if line.startswith(("SciFact through the collection", "SciFact and ToolLens")))
    RESULTS.write_text(RESULTS.read_text().replace(intro, E2E_INTRO))
    print("\n".join(e2e))
    print("replaced the end-to-end table of the muvera section")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-1m", action="store_true", help="leave out the generated 1M-document set")
    ap.add_argument("--n-docs", type=int, default=1_000_000, help="size of the generated set")
    ap.add_argument("--e2e-only", action="store_true",
                    help="re-measure only the end-to-end table (SciFact, ToolLens) and replace it in the existing section")
    ap.add_argument("--generated-only", action="store_true",
                    help="re-measure only the generated set (every seed) and replace its rows in the existing section")
    args = ap.parse_args()
    if args.e2e_only:
        replace_e2e()
        return
    if args.generated_only:
        replace_generated(args.n_docs)
        return
    rows, stats = scifact_part()
    e2e = e2e_rows()
    gen = [] if args.skip_1m else generated_part(args.n_docs, seeds=SEEDS)
    head = ("| collection | (R, k_sim, d_proj) | FDE dim | implementation | "
            + " | ".join(f"R@{n}" for n in NS) + " | R@10 / R@100 over seeds | documents encoded / s |")
    sep = "|" + "---|" * (6 + len(NS))
    body = header("MUVERA fixed-dimensional encodings (bench_muvera.py)", ("fastembed", "numpy", "numba"))
    body += (f"\nCPU flags: {cpu_flags()}. Recall of each query's exact-Chamfer (MaxSim) top 10 within the FDE top N "
             "(exact inner-product search over the FDEs), both implementations encoding the same token vectors; "
             f"SciFact rows: the mean over seeds {SEEDS} (each draws every random matrix anew), with the spread of R@10 "
             f"and R@100; the generated set: the mean over seeds {SEEDS} "
             "(retrievo: Gray-code SimHash partitions, the paper's dense ±1 projection, empty partitions filled; "
             "retrievo, sampled: `partitions=\"sampled\"`, each repetition's cells centred on 2^k_sim of the documents' "
             "own tokens drawn at random, the drawing timed with the encoding; fastembed 0.9 "
             "`Muvera`: its own random matrices, same output dimension). SciFact: the multivector signal's stored token vectors "
             f"(bundled MiniLM projected to 128 dimensions, punctuation dropped, {stats['tokens_per_doc']} tokens "
             "per document), 300 test queries. Encoding speed: documents per second, one process.\n\n"
             + head + "\n" + sep + "\n" + "\n".join(rows + gen)
             + "\n\n" + E2E_INTRO + "\n\n| search | nDCG@10 | vs exact | R@100 | queries/s end to end (vs exact) | "
             "queries/s retrieval (vs exact) |\n|---|---|---|---|---|---|\n"
             + "\n".join(e2e) + "\n")
    write_section("muvera", body)
    print("wrote the muvera section of RESULTS.md")


if __name__ == "__main__":
    main()
