"""Long documents: whole-document embedding against chunks and situated chunks, with document-level aggregation,
on a long-document set built from SciFact (development).

**The set.** SciFact's 5,183 abstracts are grouped by topic — k-means over the bundled MiniLM's vectors (seed 0,
one cluster per 8 abstracts), the abstracts of each cluster ordered by closeness to its centre and cut into
consecutive runs of up to 8 (a cluster's last run is shorter) — and each run is concatenated (``"{title}.
{abstract}"``, blank lines between) into one long document (924 of about 1,200 words), titled by its 6 most
distinctive words (TF-IDF against the other long documents). A test query is relevant to the long document holding an abstract it was judged relevant to (same
grade). Because neighbours in a document share a topic, the passage matters: finding the right document means
telling apart abstracts on the same subject.

**Rows.** *whole*: one vector per long document (MiniLM reads its first 256 word pieces; BM25 reads all);
*chunks*: sentence-aware chunks of at most 120 words overlapping by up to 30
(:mod:`retrievo.structure.chunks`), the dense model reading title + chunk; *situated chunks*: the same chunks
read with their situation (the document's first sentence and the words before, the words after, 60 in all).
Chunk collections are searched at chunk level and collapsed per document (``collapse="parent"``, the best chunk's
score; ``sum`` and ``top2`` shown for dense). nDCG@10 and R@100 per long document, and **passage hit**: of the
queries whose first relevant document is in the top 10, the share whose returned passage overlaps a relevant
abstract (what a reader is shown). Paired randomisation test of each row against *whole* with the same method.

Run: ``python benchmarks/bench_longdocs.py`` (writes the "longdocs" section of RESULTS.md).
"""

from __future__ import annotations

import time

import numpy as np
from bench_tools import build

from _common import CACHE, dataset_dir, eval_collection, header, write_section
from retrievo import SearchRequest
from retrievo.config import CollectionConfig
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.structure.chunks import ChunkConfig, chunk_document, long_document_config
from retrievo.types import Document

GROUP = 8


def long_documents(ds: BeirDataset):
    """The long documents, each abstract's (document, start, end), and the mapped qrels."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    coll = eval_collection(ds)
    snap = coll.snapshot()
    rows = np.flatnonzero(snap.live)
    ids = [str(snap.ids[r]) for r in rows]
    vecs = snap.signals["dense"].gather(rows).astype(np.float32)
    docs = {d.id: d for d in coll.documents_at(rows.tolist(), snap)}
    coll.close()
    km = KMeans(n_clusters=max(1, len(ids) // GROUP), n_init=1, random_state=0).fit(vecs)
    dist = np.linalg.norm(vecs - km.cluster_centers_[km.labels_], axis=1)
    order = np.lexsort((dist, km.labels_))
    groups, cur, cur_label = [], [], None
    for i in order.tolist():
        if cur and (km.labels_[i] != cur_label or len(cur) == GROUP):
            groups.append(cur)
            cur = []
        cur.append(i)
        cur_label = km.labels_[i]
    groups.append(cur)
    texts, spans = [], {}
    for g, members in enumerate(groups):
        parts, pos = [], 0
        for i in members:
            d = docs[ids[i]]
            piece = f"{d.title}. {d.text}".strip()
            spans[ids[i]] = (f"L{g}", pos, pos + len(piece))
            parts.append(piece)
            pos += len(piece) + 2
        texts.append("\n\n".join(parts))
    tf = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w-]+\b", max_df=0.5)
    x = tf.fit_transform(texts)
    vocab = np.asarray(tf.get_feature_names_out())
    longs = []
    for g, text in enumerate(texts):
        row = x[g].toarray().ravel()
        title = " ".join(vocab[np.argsort(-row, kind="stable")[:6]])
        longs.append(Document(f"L{g}", text, title.capitalize()))
    qrels = {}
    for q, rel in ds.qrels("test").items():
        mapped: dict[str, int] = {}
        for d, s in rel.items():
            if d in spans:
                mapped[spans[d][0]] = max(mapped.get(spans[d][0], 0), s)
        if mapped:
            qrels[q] = mapped
    return longs, spans, qrels


def main() -> None:
    t0 = time.perf_counter()
    ds = BeirDataset.from_path(dataset_dir("scifact"))
    longs, spans, qrels = long_documents(ds)
    queries = ds.queries("test")
    qids = sorted(q for q in qrels if q in queries)
    texts = [queries[q] for q in qids]
    words = np.mean([len(d.text.split()) for d in longs])
    cfg = ChunkConfig()
    chunks = [c for d in longs for c in chunk_document(d, cfg)]
    print(f"{len(longs)} long documents of {words:.0f} words on average, {len(chunks)} chunks", flush=True)
    colls = {
        "whole": build(CACHE / "longdocs" / "whole", longs, CollectionConfig()),
        "chunks": build(CACHE / "longdocs" / "chunks", chunks, long_document_config(situated=False)),
        "situated chunks": build(CACHE / "longdocs" / "situated", chunks, long_document_config(situated=True)),
    }
    original = ds.qrels("test")
    rows, runs = [], {}
    for setting, coll in colls.items():
        plan = [("bm25", {}), ("dense", {}), ("hybrid", {})]
        if setting != "whole":
            plan += [("dense", {"collapse_score": "sum"}), ("dense", {"collapse_score": "top2"})]
        for method, extra in plan:
            opts = {"collapse": "parent", **extra} if setting != "whole" else {}
            res = coll.searcher.search(texts, SearchRequest(k=100, method=method, options=opts), query_ids=qids)
            run, hit, seen = {}, 0, 0
            for i, q in enumerate(qids):
                ranked = [(d.rsplit("#", 1)[0], float(s)) for d, s in res.row(i)]
                run[q] = dict(ranked)
                if setting == "whole":
                    continue
                for rank, (parent, _) in enumerate(ranked[:10]):
                    if parent in qrels[q]:
                        seen += 1
                        chunk = coll.get(res.ids[i][rank])
                        a, b = chunk.metadata["start"], chunk.metadata["end"]
                        rel_spans = [spans[d][1:] for d in original[q] if d in spans and spans[d][0] == parent]
                        hit += any(a < e and s < b for s, e in rel_spans)
                        break
            label = method + (f", {extra['collapse_score']}" if extra else "")
            runs[(setting, label)] = run
            m = evaluate(run, qrels)
            if setting == "whole":
                vs = "—"
            else:
                c = {x.measure: x for x in compare_runs(runs[("whole", method)], run, qrels, trials=10000)}["ndcg@10"]
                vs = f"{c.diff:+.4f} (p = {c.p_randomization:.3g})"
            passage = f"{hit / seen:.3f} ({hit}/{seen})" if seen else "—"
            rows.append(f"| {setting} | {label} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {vs} | {passage} |")
            print(rows[-1], flush=True)
    for coll in colls.values():
        coll.close()
    body = header("Long documents: whole, chunks, situated chunks (bench_longdocs.py)", ("sentence-transformers",))
    body += (f"\nSciFact abstracts grouped by topic into {len(longs)} long documents of {words:,.0f} words on average "
             f"({len(chunks):,} chunks of ≤ 120 words, overlap ≤ 30); {len(qids)} test queries with qrels mapped to "
             "the long documents. Document-level nDCG@10 / R@100; change in nDCG@10 against *whole* with the same "
             "method (paired randomisation test); passage hit: of the queries whose first relevant document is in the "
             "top 10, the share whose returned chunk overlaps a relevant abstract.\n\n"
             "| documents | search | nDCG@10 | R@100 | vs whole | passage hit |\n|---|---|---|---|---|---|\n"
             + "\n".join(rows) + f"\n\nWhole run {time.perf_counter() - t0:.0f} s.\n")
    write_section("longdocs", body)


if __name__ == "__main__":
    main()
