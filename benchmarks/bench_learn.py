"""Learning from judgements: a dense model fine-tuned on a collection's training split (``retrievo train``),
measured on its test split against the bundled model, and query drift compensation (``retrievo map-queries``)
against re-indexing.

Per dataset (SciFact, ToolLens, and the holdout nfcorpus — trained on its own train split with the same
command and defaults, nothing looked at on its test split before this table):

1. ``retrievo train`` on the eval collection (BM25 + MiniLM) with its defaults (seed 0); the model is kept in
   ``benchmarks/.cache/trained/<dataset>-dense`` and reused (``--retrain`` to train again); its training time
   and held-out nDCG@10 come from the ``retrievo_training.json`` it wrote;
2. the collection indexed with the fine-tuned model (the eval cache, keyed by model);
3. nDCG@10 / R@100 on test for dense and hybrid, bundled vs fine-tuned, with the paired randomisation test
   (``retrievo compare``'s) — on every test query and, for SciFact, on the test queries none of whose
   relevant documents any training query has ("unseen documents"); for ToolLens, queries whose tools all
   appear in training judgements vs the others ("seen / unseen tools");
4. SciFact only: the bundled-model index searched with the fine-tuned model's queries mapped into its space
   (``map-queries``, 4,000 sampled documents re-encoded, ridge chosen by held-out fit; then the same with the
   training queries' texts, ``--queries``: the map also keeps their new-model scores), and the share of the
   re-index gain each recovers.

Run: python benchmarks/bench_learn.py [--datasets scifact,toollens,nfcorpus] [--retrain]
"""

from __future__ import annotations

import argparse
import shutil
import time

from _common import (
    CACHE,
    dataset_dir,
    eval_collection,
    eval_collection_copy,
    header,
    trained_once,
    write_section,
)
from retrievo import Collection, SearchRequest
from retrievo.config import CollectionConfig, DenseConfig
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.training.dense import train_dense

TRAINED = CACHE / "trained"


def trained_model(name: str, ds: BeirDataset, retrain: bool) -> tuple[str, dict]:
    out = TRAINED / f"{name}-dense"
    info = trained_once(out, ds, "learn", lambda c, d, o: train_dense(c, d.queries("train"), d.qrels("train"), o,
                                                                      overwrite=True), retrain)
    return str(out), info


def runs(coll: Collection, queries: dict, qids: list[str], **req) -> dict[str, dict]:
    out = {}
    for method in ("dense", "hybrid"):
        res = coll.searcher.search([queries[q] for q in qids], SearchRequest(method=method, k=100, **req), query_ids=qids)
        out[method] = res.to_run()
    return out


def row(label: str, qids: list[str], qrels: dict, base: dict, new: dict) -> list[str]:
    lines = []
    sub = {q: qrels[q] for q in qids}
    for method in ("dense", "hybrid"):
        a = {q: base[method][q] for q in qids if q in base[method]}
        b = {q: new[method][q] for q in qids if q in new[method]}
        ea, eb = evaluate(a, sub), evaluate(b, sub)
        cmp = {r.measure: r for r in compare_runs(a, b, sub, trials=10000)}["ndcg@10"]
        lines.append(f"| {label} | {len(qids)} | {method} | {ea['ndcg@10']:.4f} | {eb['ndcg@10']:.4f} | "
                     f"{eb['ndcg@10'] - ea['ndcg@10']:+.4f} (p = {cmp.p_randomization:.3g}) | "
                     f"{ea['recall@100']:.4f} → {eb['recall@100']:.4f} |")
        print(lines[-1], flush=True)
    return lines


def pipeline_rows(ds: BeirDataset, path, queries: dict, qrels: dict, qids: list[str], base: dict) -> list[str]:
    """SciFact: the fine-tuned model with the stages that also learn or need no training (a query adapter
    fitted on the same training split, e2rank), all test queries and the unseen-documents subset, each
    against the bundled model's hybrid with the paired randomisation test."""
    seen = {d for r in ds.qrels("train").values() for d, v in r.items() if v > 0}
    unseen = [x for x in qids if not any(v > 0 and d in seen for d, v in qrels[x].items())]
    work = CACHE / "learn-pipelines"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(path, work)
    coll = Collection.open(work)
    out = []
    try:
        coll.fit_query_adapter(ds.queries("train"), ds.qrels("train"))
        for label, req in (("fine-tuned hybrid", {}), ("+ e2rank", {"rerank": "e2rank"}),
                           ("+ query adapter", {"adapter": True}), ("+ query adapter + e2rank", {"adapter": True, "rerank": "e2rank"})):
            res = coll.searcher.search([queries[x] for x in qids], SearchRequest(method="hybrid", k=100, **req), query_ids=qids)
            run = res.to_run()
            cells = []
            for sub_ids in (qids, unseen):
                sub = {x: qrels[x] for x in sub_ids}
                a = {x: base["hybrid"][x] for x in sub_ids if x in base["hybrid"]}
                b = {x: run[x] for x in sub_ids if x in run}
                ea, eb = evaluate(a, sub)["ndcg@10"], evaluate(b, sub)["ndcg@10"]
                p = {r.measure: r for r in compare_runs(a, b, sub, trials=10000)}["ndcg@10"].p_randomization
                cells.append(f"{eb:.4f} ({eb - ea:+.4f}, p = {p:.3g})")
            out.append(f"| {label} | {cells[0]} | {cells[1]} |")
            print(out[-1], flush=True)
    finally:
        coll.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="scifact,toollens,nfcorpus")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = ["| dataset (test queries) | queries | method | bundled MiniLM | fine-tuned | change (paired p) | R@100 |",
            "|---|---|---|---|---|---|---|"]
    notes, drift, pipelines = [], [], []
    for name in args.datasets.split(","):
        ds = BeirDataset.from_path(dataset_dir(name))
        model, info = trained_model(name, ds, args.retrain)
        notes.append(f"{name}: trained in {info['seconds'] / 60:.1f} min ({info['steps']} steps, {info['rows']} rows of "
                     f"{info['train_queries']} training queries, bf16 {info['bf16']}); held-out training queries "
                     f"({info['val_queries']}) nDCG@10 {info['val_ndcg_before']:.4f} → {info['val_ndcg_best']:.4f}")
        print(notes[-1], flush=True)
        q, qr = ds.queries("test"), ds.qrels("test")
        qids = [x for x in q if x in qr]
        base_coll = eval_collection(ds)
        try:
            base = runs(base_coll, q, qids)
        finally:
            base_coll.close()
        new_coll = eval_collection(ds, CollectionConfig(dense=DenseConfig(model=model)))
        try:
            new = runs(new_coll, q, qids)
        finally:
            new_coll.close()
        if name == "scifact":
            pipelines += pipeline_rows(ds, new_coll.path, q, qr, qids, base)
        label = name + (" (holdout)" if name == "nfcorpus" else "")
        rows += row(label, qids, qr, base, new)
        seen = {d for r in ds.qrels("train").values() for d, v in r.items() if v > 0}
        if name == "scifact":
            unseen = [x for x in qids if not any(v > 0 and d in seen for d, v in qr[x].items())]
            rows += row("scifact, unseen documents", unseen, qr, base, new)
        if name == "toollens":
            all_seen = [x for x in qids if all(d in seen for d, v in qr[x].items() if v > 0)]
            rest = [x for x in qids if x not in set(all_seen)]
            rows += row("toollens, seen tools", all_seen, qr, base, new)
            if rest:
                rows += row("toollens, unseen tools", rest, qr, base, new)
            else:
                notes.append("toollens: every test query's tools are relevant to some training query (no unseen-tool row)")
        if name == "scifact":  # drift: the bundled-model index, the fine-tuned model's queries mapped into it
            train_texts = list(ds.queries("train").values())
            coll = Collection.open(eval_collection_copy(ds, "drift"))
            try:
                for label, kw in (("documents only", {}),
                                  (f"+ scores of the {len(train_texts)} training queries (texts only)", {"queries": train_texts})):
                    t0 = time.perf_counter()
                    qm = coll.searcher.fit_query_map(model, sample=4000, show_progress=True, **kw)
                    fit_s = time.perf_counter() - t0
                    mapped = runs(coll, q, qids, query_map=True)
                    for part, subset in (("scifact", qids), ("scifact, unseen documents", unseen)):
                        sub = {x: qr[x] for x in subset}
                        for method in ("dense", "hybrid"):
                            o, n, m = (evaluate({x: r[method][x] for x in subset if x in r[method]}, sub)["ndcg@10"]
                                       for r in (base, new, mapped))
                            p_old = {r.measure: r for r in compare_runs(base[method], mapped[method], sub, trials=10000)}
                            rec = (m - o) / (n - o) if abs(n - o) >= 0.005 else float("nan")
                            drift.append(f"| {part} ({len(subset)}) | {method} | {label} | {o:.4f} | {m:.4f} (p = "
                                         f"{p_old['ndcg@10'].p_randomization:.3g}) | {n:.4f} | "
                                         + ("—" if rec != rec else f"{rec:.0%}") + " |")
                            print(drift[-1], flush=True)
                    extra = (f"; held-out training queries' top-20 scores within {qm.info['heldout_top_rmse']:.4f} of the "
                             f"new model's (documents-only map {qm.info['heldout_top_rmse_documents_map']:.4f}, root mean "
                             "square)" if kw else "")
                    notes.append(f"drift map ({label}): fitted in {fit_s:.0f} s (documents encoded through the cache) on "
                                 f"{qm.info['documents']} documents, held-out R² {qm.info['heldout_r2']:.3f}, cosine "
                                 f"{qm.info['heldout_cosine']:.3f}{extra}")
            finally:
                coll.close()
                shutil.rmtree(CACHE / f"drift-{ds.name}", ignore_errors=True)
    body = header("Learning from judgements: fine-tuned dense model, query drift compensation",
                  ("torch", "sentence-transformers", "transformers")) + (
        "\nSee the `bench_learn.py` docstring. `retrievo train` defaults (2 epochs, 3 mined negatives, at most 2,000 "
        "rows, seed 0).\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + "\n".join(rows)
        + ("\n\nQuery drift compensation: the bundled-model index searched with the fine-tuned model's queries mapped "
           "into its space (`retrievo map-queries`, 4,000 sampled documents re-encoded; the second map also keeps the new "
           "model's scores of the training queries' top 20 sampled documents and 20 others, no judgements used), next "
           "to the old queries and a full re-index (nDCG@10 on test; p: paired randomisation test against the old "
           "queries; gap recovered left out where re-indexing gains under 0.005):\n\n| test queries | method | map | old model | mapped queries, old index | re-indexed | gap recovered |"
           "\n|---|---|---|---|---|---|---|\n"
           + "\n".join(drift) if drift else "")
        + ("\n\nSciFact pipelines built from the fine-tuned model (hybrid; change and paired p against the bundled "
           "model's hybrid):\n\n| pipeline | all test queries | unseen documents |\n|---|---|---|\n" + "\n".join(pipelines)
           if pipelines else "")
        + f"\n\nCommand: `python benchmarks/bench_learn.py --datasets {args.datasets}`\n")
    print(body)
    if not args.no_write:
        write_section("learn", body)


if __name__ == "__main__":
    main()
