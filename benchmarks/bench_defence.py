"""Defending the index: planted passages with and without the admission gate (and what the audit detects), on
SciFact and ToolLens (development) and nfcorpus (holdout, reported).

Per collection: the BM25 + MiniLM + SPLADE collection ``retrievo eval`` builds, minus a seeded 5 % of its documents
held out as *new clean documents*. Attacks, each on its own seeded target test queries (50 per style; 15 on
ToolLens's 464 tools): **PoisonedRAG** black-box (the target query followed by the attacker's sentence,
:func:`retrievo.eval.robustness.poisoned_passages`), **PoisonedRAG on-topic** (the target query followed by the
first 30 words of the document the collection ranks first for it, :func:`retrievo.eval.robustness.on_topic_passages`:
a body that agrees with the opening, as the paper's LLM-written one does), **keyword stuffing** aimed at BM25 (the query's content words
repeated six times, then the attacker's sentence) and **SPLADE stuffing** (the twelve terms the query's SPLADE vector
weighs most, expansion terms included, repeated up to six times by weight;
:func:`retrievo.eval.robustness.stuffed_passages`); and a **gradient** attack
against the dense model, white box (:func:`retrievo.eval.robustness.gradient_passages`: 24 trigger word pieces
before the attacker's sentence, 40 HotFlip steps of 32 exactly evaluated candidates each, on 20 targets, 10 on
ToolLens; passages cached in ``benchmarks/.cache``; its cost per passage is reported).

The gate (:class:`retrievo.eval.audit.Gate`, ``max_fpr`` 1 %) is calibrated on the collection as it stands and
screens the planted passages together with the held-out clean documents; detection recall per style and the false
positives among the held-out clean documents (new documents it never calibrated on) are reported. The false
positives are counted over ``FOLDS`` disjoint held-out folds of 5 % each (the gate recalibrated on the collection
minus each fold; the planted passages are screened with the first), so a 1 % rate is measurable on ToolLens's 464
tools too (115 clean documents, not 23). Both for two probe
sets: the training split's queries (a query log that does not hold the attacked queries) and the test queries (a
log that does: attackers target what users ask). success@10 of each attack per method without the gate (all
planted passages added) and with it (only the admitted ones), and nDCG@10 of the other test queries.

Run: ``python benchmarks/bench_defence.py`` (writes the "defence" section of RESULTS.md).
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from _common import CACHE, dataset_dir, eval_collection_copy, header, write_section
from retrievo import Collection, CollectionConfig, SearchRequest
from retrievo.config import SparseConfig
from retrievo.eval.audit import Gate
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.eval.robustness import attack_success, on_topic_passages, poisoned_passages, stuffed_passages

METHODS = ("bm25", "dense", "splade", "hybrid")
CONFIG = CollectionConfig(sparse=SparseConfig())  # BM25 + MiniLM + SPLADE; hybrid fuses BM25 and dense
DATASETS = (("scifact", "dev", 50, 20), ("toollens", "dev", 15, 10), ("nfcorpus", "holdout", 50, 20))
FOLDS = 5  # held-out folds of clean documents, for the false-positive rate
GRADIENT = {"trigger_tokens": 24, "steps": 40, "candidates": 32, "seed": 0}


def gradient_cached(name: str, queries: dict[str, str], targets: list[str]) -> tuple[list[dict], dict]:
    """The gradient attacker's passages for ``targets`` (computed once, then read from the cache)."""
    import json

    from retrievo.eval.robustness import gradient_passages

    path = CACHE / f"defence-gradient-{name}.json"
    key = {"targets": targets, **GRADIENT}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["key"] == key:
            return saved["docs"], saved["cost"]
    docs, cost = gradient_passages("sentence-transformers/all-MiniLM-L6-v2", queries, targets, **GRADIENT)
    path.write_text(json.dumps({"key": key, "docs": docs, "cost": cost}))
    return docs, cost


def main() -> None:
    t0 = time.perf_counter()
    rows_detect, rows_attack = [], []
    costs = []
    for name, role, n_targets, n_gradient in DATASETS:
        ds = BeirDataset.from_path(dataset_dir(name))
        queries, qrels = ds.queries("test"), ds.qrels("test")
        queries = {q: t for q, t in queries.items() if q in qrels}
        try:
            log = ds.queries("train")
        except Exception:  # no training split
            log = {}
        work = eval_collection_copy(ds, "defence", CONFIG)
        coll = Collection.open(work)
        snap = coll.snapshot()
        live_ids = [str(x) for x in snap.ids[snap.live]]
        rng = np.random.default_rng(0)
        size = max(5, len(live_ids) // 20)
        held_ids = sorted(rng.choice(live_ids, size=size, replace=False).tolist())
        rest = rng.permutation(sorted(set(live_ids) - set(held_ids))).tolist()
        folds = [held_ids] + [sorted(rest[i * size:(i + 1) * size]) for i in range(FOLDS - 1)]
        held_docs = [coll.get(i) for i in held_ids]
        coll.delete(held_ids)
        coll.commit()
        t_pr, pr = poisoned_passages(queries, n_targets, seed=0)
        t_st = [q for q in list(queries)[::-1] if q not in set(t_pr)][:n_targets]
        st = stuffed_passages(queries, t_st)
        t_sp = [q for q in list(queries)[::-2] if q not in set(t_pr) | set(t_st)][:n_targets]
        sp = stuffed_passages(queries, t_sp, sparse_encoder=coll.signals["splade"].encoder, prefix="sstuff-")
        taken = set(t_pr) | set(t_st) | set(t_sp)
        t_gr = [q for q in list(queries)[len(queries) // 2:] if q not in taken][:n_gradient]
        gr, cost = gradient_cached(name, queries, t_gr)
        costs.append(f"{name}: {cost['seconds_per_passage']:.1f} s and {cost['forward_passes_per_passage']:.0f} model "
                     f"passes per passage (forward + backward counted once each), mean final cosine with the target "
                     f"query {cost['final_cosine_mean']:.3f}")
        print(costs[-1], flush=True)
        t_on = [q for q in list(queries)[1::3] if q not in taken | set(t_gr)][:n_targets]
        on = on_topic_passages(coll, queries, t_on)
        styles = {"PoisonedRAG": (t_pr, pr, "poison-"), "PoisonedRAG on-topic": (t_on, on, "ontopic-"),
                  "stuffing": (t_st, st, "stuff-"),
                  "SPLADE stuffing": (t_sp, sp, "sstuff-"), "gradient": (t_gr, gr, "grad-")}
        planted = [*pr, *on, *st, *sp, *gr]
        others = [q for q in queries if q not in taken | set(t_gr) | set(t_on)]
        label = f"{name} ({role})"
        base = Collection.open(work, readonly=True)
        before = {m: evaluate(base.searcher.search([queries[q] for q in others], SearchRequest(method=m, k=100),
                                                   query_ids=others).to_run(), {q: qrels[q] for q in others})["ndcg@10"]
                  for m in METHODS}
        base.close()
        probe_sets = {"training queries": log, "test queries": queries}
        admitted_by_probe, recall_by_probe, fp_by_probe, took = {}, {}, {p: [0, 0] for p in probe_sets}, {}
        fold_docs = held_docs
        for f, fold in enumerate(folds):
            if f:  # the previous fold back, this one out: the gate calibrates on the collection without it
                out = [coll.get(i) for i in fold]
                coll.upsert(fold_docs)
                coll.delete(fold)
                coll.commit()
                fold_docs = out
            for probe_name, probes in probe_sets.items():
                if not probes:
                    continue
                gate = Gate(coll, probes, max_fpr=0.01)
                t1 = time.perf_counter()
                admitted, held = gate.screen([*(planted if not f else []), *[d.to_dict() for d in fold_docs]])
                gate.close()
                held_set = {d.id for d, _ in held}
                fp_by_probe[probe_name][0] += sum(d.id in held_set for d in fold_docs)
                fp_by_probe[probe_name][1] += len(fold_docs)
                if not f:
                    took[probe_name] = time.perf_counter() - t1
                    recall_by_probe[probe_name] = {s: np.mean([d["_id"] in held_set for d in docs])
                                                   for s, (_, docs, _) in styles.items()}
                    admitted_by_probe[probe_name] = {d.id for d in admitted}
                print(f"{label} fold {f} {probe_name}: {fp_by_probe[probe_name]} clean held so far", flush=True)
        coll.upsert(fold_docs)  # back to the collection minus the first fold
        coll.delete(folds[0])
        coll.commit()
        for probe_name, probes in probe_sets.items():
            if not probes:
                rows_detect.append(f"| {label} | {probe_name} | (no training split) | | | | | | |")
                continue
            fp, n = fp_by_probe[probe_name]
            rows_detect.append(f"| {label} | {probe_name} | " + " | ".join(
                f"{r:.2f}" for r in recall_by_probe[probe_name].values()) + f" | {fp} / {n} ({fp / n:.1%}) | "
                f"{took[probe_name]:.0f} s |")
            print(rows_detect[-1], flush=True)
        # attacks without the gate, then with it (the test-query log, else the training one)
        chosen = admitted_by_probe.get("test queries") or admitted_by_probe.get("training queries") or set()
        for gated in (False, True):
            gwork = CACHE / f"defence-run-{name}"
            shutil.rmtree(gwork, ignore_errors=True)
            shutil.copytree(work, gwork)
            g = Collection.open(gwork)
            g.add([d for d in planted if not gated or d["_id"] in chosen])
            g.commit()
            for m in METHODS:
                cells = []
                for targets, _, prefix in styles.values():
                    res = g.searcher.search([queries[q] for q in targets], SearchRequest(method=m), query_ids=targets)
                    cells.append(f"{attack_success(res, targets, prefix=prefix)['success@10']:.2f}")
                other = g.searcher.search([queries[q] for q in others], SearchRequest(method=m, k=100),
                                          query_ids=others)
                after = evaluate(other.to_run(), {q: qrels[q] for q in others})["ndcg@10"]
                rows_attack.append(f"| {label} | {m} | {'on' if gated else 'off'} | {' | '.join(cells)} | "
                                   f"{before[m]:.4f} → {after:.4f} |")
                print(rows_attack[-1], flush=True)
            g.close()
            shutil.rmtree(gwork, ignore_errors=True)
        coll.close()
    body = header("Defending the index: audit and admission gate (bench_defence.py)", ("sentence-transformers",))
    body += ("\nDetection by the admission gate (max_fpr 1 %, calibrated on the collection): recall of planted passages "
             f"per attack style, and false positives among held-out clean documents (never calibrated on: {FOLDS} "
             "disjoint folds of 5 % of the collection, the gate recalibrated without each), per probe set; time: one "
             "screen of the planted passages and the first fold.\n\n"
             "| collection | probe queries | PoisonedRAG recall | PoisonedRAG on-topic recall | stuffing recall | "
             "SPLADE stuffing recall | gradient recall | false positives (clean) | time |\n|---|---|---|---|---|---|---|"
             "---|---|\n" + "\n".join(rows_detect)
             + "\n\nAttack success@10 without and with the gate (gate probes: the test queries), and nDCG@10 of the "
             "other test queries before the attack → after.\n\n"
             "| collection | method | gate | PoisonedRAG success@10 | PoisonedRAG on-topic success@10 | stuffing "
             "success@10 | SPLADE stuffing success@10 | gradient success@10 | nDCG@10 others |\n|---|---|---|---|---|---|"
             "---|---|---|\n" + "\n".join(rows_attack)
             + "\n\nGradient attacker's compute: " + "; ".join(costs) + f".\n\nWhole run {time.perf_counter() - t0:.0f} s.\n")
    write_section("defence", body)


if __name__ == "__main__":
    main()
