"""Topic retrieval from keywords (Lbl2Vec on the collection's dense vectors) against a keyword-BM25 baseline, as
an unsupervised classifier of ToolLens tools into their categories.

ToolLens's 464 tools each carry one of 19 categories (``Food``, ``News_Media``, ``Health_and_Fitness``, …). The
tools are indexed from their specs *without* the category (:func:`bench_tools.toollens_specs` minus the
``category`` key), so no method reads the label. Each category is a topic whose keywords are only the words of its
own name (``Health_and_Fitness`` → ``health``, ``fitness``) — nothing was chosen by looking at the results.

Methods: **keyword BM25** (each document's BM25 score for the topic's keywords as a query); **keywords, dense**
(cosine to the mean of the keywords' MiniLM vectors: Lbl2Vec's starting point); **Lbl2Vec** (topic vectors moved
to the centroid of their 50 most similar documents, two rounds, blended 1 : 2 with the keywords;
:func:`retrievo.structure.topics.fit_topics` defaults; the keyword weight 2 was the best of a small grid — 1 to
3 rounds, 20 to 100 documents, weights 0.25 to 2 — on this same set, the only labelled one at hand, so the row
with weight 0.5 shows how much that choice matters). Measures: macro-averaged ROC AUC of each topic's scores
one-vs-rest; accuracy and macro F1 of assigning each tool to its best-scoring topic (a tool no keyword matches is
unassigned under BM25 and counts as wrong).

Run: ``python benchmarks/bench_topics.py`` (writes the "topics" section of RESULTS.md).
"""

from __future__ import annotations

import time

import numpy as np
from bench_tools import build, toollens_specs
from sklearn.metrics import f1_score, roc_auc_score

from _common import CACHE, dataset_dir, header, write_section
from retrievo.config import CollectionConfig
from retrievo.structure.tools import tool_document
from retrievo.structure.topics import fit_topics


def keywords_of(category: str) -> list[str]:
    return [w for w in category.replace("_", " ").lower().split() if w != "and"]


def scores_table(label: str, sims: np.ndarray, names: list[str], truth: list[str], assigned: list[str | None]) -> str:
    y = np.array([names.index(t) for t in truth])
    aucs = [roc_auc_score(y == t, sims[:, t]) for t in range(len(names))]
    pred = [a if a is not None else "(none)" for a in assigned]
    acc = float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))
    f1 = f1_score(truth, pred, labels=names, average="macro", zero_division=0)
    return f"| {label} | {np.mean(aucs):.4f} | {acc:.4f} | {f1:.4f} | {sum(a is None for a in assigned)} |"


def main() -> None:
    t0 = time.perf_counter()
    specs = toollens_specs(dataset_dir("toollens"))
    truth = [s["category"] for s in specs]
    docs = [tool_document({k: v for k, v in s.items() if k != "category"}, f"ToolLens tool {i}")
            for i, s in enumerate(specs)]
    assert not any("category" in d.metadata for d in docs)
    names = sorted(set(truth))
    topics = {n: keywords_of(n) for n in names}
    coll = build(CACHE / "topics" / "toollens", docs, CollectionConfig())
    order = {d.id: i for i, d in enumerate(docs)}
    rows = []
    # keyword BM25
    snap = coll.snapshot()
    inv = snap.signals["bm25"]
    live_ids = [str(snap.ids[r]) for r in np.flatnonzero(snap.live)]
    bm = np.zeros((len(docs), len(names)))
    for t, n in enumerate(names):
        terms = np.array([snap.vocab[w] for w in coll.analyzer.tokenize(" ".join(topics[n])) if w in snap.vocab],
                         dtype=np.int64)
        s = inv.get_scores(terms)
        for r in np.flatnonzero(snap.live):
            bm[order[str(snap.ids[r])], t] = s[r]
    assigned = [names[int(np.argmax(bm[i]))] if bm[i].max() > 0 else None for i in range(len(docs))]
    rows.append(scores_table("keyword BM25", bm, names, truth, assigned))
    print(rows[-1], flush=True)
    for label, kw in (("keywords, dense (no refinement)", {"iterations": 0}), ("Lbl2Vec (refined, defaults)", {}),
                      ("Lbl2Vec, keyword weight 0.5", {"keyword_weight": 0.5})):
        model = fit_topics(coll, topics, **kw)
        sims = np.zeros((len(docs), len(names)))
        for i, d in enumerate(model.ids):
            sims[order[d]] = model.similarities[i]
        got = model.assign()
        rows.append(scores_table(label, sims, names, truth, [got[d.id] for d in docs]))
        print(rows[-1], flush=True)
    assert sorted(live_ids) == sorted(order)
    coll.close()
    body = header("Topic retrieval from keywords (bench_topics.py)", ("scikit-learn",))
    body += (f"\nToolLens: {len(docs)} tools indexed without their category, {len(names)} categories as topics whose "
             "keywords are the words of the category's name. Macro AUC: each topic's scores one-vs-rest, averaged; "
             "accuracy and macro F1 of each tool's best topic (unassigned: no keyword matched).\n\n"
             "| method | macro AUC | accuracy | macro F1 | unassigned |\n|---|---|---|---|---|\n" + "\n".join(rows)
             + f"\n\nWhole run {time.perf_counter() - t0:.0f} s.\n")
    write_section("topics", body)


if __name__ == "__main__":
    main()
