"""Calibrated relevance cut-offs: how well retrievo's probabilities of relevance match the judgements, and
what cutting result lists at a probability gives against a fixed top-k.

For each dataset with a training split and each method, a :class:`ScoreCalibrator` is fitted on the
training split (top 20 per query; ToolLens: a seeded sample of 2,000 training queries) and measured on the
test split, which is never used to fit or choose anything:

- Brier score and expected calibration error (10 bins) of the probabilities, against Platt scaling on the
  raw score alone (the classic one-feature calibration);
- the cut-off: the probability threshold that maximised mean F1 on the training split, applied to the test
  split, against the fixed k that maximised mean F1 on the training split (k in 1..20). F1 per query
  from precision and recall of the judged relevant documents; a query whose cut list is empty counts
  precision 0.

Holdout nfcorpus: the SciFact calibrators and thresholds are applied as they are (nothing is fitted or
chosen on nfcorpus); reported to show what a calibrator fitted on another collection is worth.

Run: python benchmarks/bench_calibration.py
"""

from __future__ import annotations

import numpy as np

from _common import dataset_dir, eval_collection, header, write_section
from retrievo import Collection, SearchRequest
from retrievo.config import CollectionConfig
from retrievo.eval.datasets import BeirDataset
from retrievo.search.calibration import ScoreCalibrator, calibration_report

DEPTH = 20
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def judged(ds: BeirDataset, split: str, sample: int | None = None):
    queries, qrels = ds.queries(split), ds.qrels(split)
    qids = [q for q in queries if any(v > 0 for v in qrels.get(q, {}).values())]
    if sample and len(qids) > sample:
        qids = sorted(np.random.default_rng(0).choice(qids, sample, replace=False).tolist())
    return qids, queries, qrels


def run(coll: Collection, method: str, qids, queries, qrels):
    res = coll.searcher.search([queries[q] for q in qids], SearchRequest(method=method, k=DEPTH), query_ids=qids)
    labels = np.array([[int(qrels[q].get(str(d), 0) > 0) for d in row] for q, row in zip(qids, res.ids, strict=True)])
    n_rel = np.array([sum(1 for v in qrels[q].values() if v > 0) for q in qids])
    return res, labels, n_rel


def fixed_k(labels, counts, n_rel, k):
    """Mean precision, recall, F1 of the top k."""
    top = labels[:, :k] * (np.arange(k)[None, :] < counts[:, None])
    tp = top.sum(axis=1)
    prec = tp / k
    rec = tp / np.maximum(n_rel, 1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    return float(prec.mean()), float(rec.mean()), float(f1.mean())


def platt(scores_tr, counts_tr, labels_tr, scores_te, counts_te):
    """Logistic regression on the raw score alone (Platt scaling)."""
    from sklearn.linear_model import LogisticRegression

    v_tr = np.arange(DEPTH)[None, :] < counts_tr[:, None]
    lr = LogisticRegression(max_iter=1000).fit(scores_tr[v_tr][:, None], labels_tr[v_tr])
    s = np.where(np.isfinite(scores_te), scores_te, 0.0)
    p = lr.predict_proba(s.reshape(-1, 1))[:, 1].reshape(s.shape)
    return np.where(np.arange(DEPTH)[None, :] < counts_te[:, None], p, 0.0)


def main() -> None:
    rows = ["| dataset | method | test queries | Brier (Platt on score) | ECE (Platt on score) | threshold (from train) "
            "| mean length | P | R | F1 | best fixed k (from train) | F1 at that k |", "|" + "---|" * 12]
    scifact_cal: dict[str, tuple[ScoreCalibrator, float]] = {}
    plan = [("scifact", ("bm25", "dense", "hybrid"), None), ("toollens", ("bm25", "hybrid"), 2000)]
    for name, methods, sample in plan:
        ds = BeirDataset.from_path(dataset_dir(name))
        for method in methods:
            cfg = CollectionConfig() if "dense" in method or method == "hybrid" else CollectionConfig(dense=None)
            coll = eval_collection(ds, cfg)
            try:
                tr = judged(ds, "train", sample)
                te = judged(ds, "test")
                res_tr, lab_tr, nrel_tr = run(coll, method, *tr)
                res_te, lab_te, nrel_te = run(coll, method, *te)
            finally:
                coll.close()
            cal = ScoreCalibrator.fit(res_tr.scores, res_tr.counts, lab_tr, method)
            p_tr = cal.probabilities(res_tr.scores, res_tr.counts)
            t_best = max(THRESHOLDS, key=lambda t: calibration_report(p_tr, lab_tr, res_tr.counts, nrel_tr, t)["f1"])
            if name == "scifact":
                scifact_cal[method] = (cal, t_best)
            k_best = max(range(1, DEPTH + 1), key=lambda k: fixed_k(lab_tr, res_tr.counts, nrel_tr, k)[2])
            p_te = cal.probabilities(res_te.scores, res_te.counts)
            rep = calibration_report(p_te, lab_te, res_te.counts, nrel_te, t_best)
            base = calibration_report(platt(res_tr.scores, res_tr.counts, lab_tr, res_te.scores, res_te.counts),
                                      lab_te, res_te.counts, nrel_te, 0.5)
            _, _, f1k = fixed_k(lab_te, res_te.counts, nrel_te, k_best)
            line = (f"| {name} | {method} | {len(te[0])} | {rep['brier']:.4f} ({base['brier']:.4f}) | "
                    f"{rep['ece']:.4f} ({base['ece']:.4f}) | {t_best:.2f} | {rep['mean_length']:.2f} | "
                    f"{rep['precision']:.3f} | {rep['recall']:.3f} | {rep['f1']:.3f} | {k_best} | {f1k:.3f} |")
            rows.append(line)
            print(line, flush=True)
    # holdout: SciFact's calibrators, applied as they are
    ds = BeirDataset.from_path(dataset_dir("nfcorpus"))
    for method, (cal, t_best) in scifact_cal.items():
        cfg = CollectionConfig() if method != "bm25" else CollectionConfig(dense=None)
        coll = eval_collection(ds, cfg)
        try:
            res, lab, nrel = run(coll, method, *judged(ds, "test"))
        finally:
            coll.close()
        rep = calibration_report(cal.probabilities(res.scores, res.counts), lab, res.counts, nrel, t_best)
        line = (f"| nfcorpus (holdout; SciFact's calibrator) | {method} | {len(res.counts)} | {rep['brier']:.4f} | "
                f"{rep['ece']:.4f} | {t_best:.2f} | {rep['mean_length']:.2f} | {rep['precision']:.3f} | {rep['recall']:.3f} | "
                f"{rep['f1']:.3f} | | |")
        rows.append(line)
        print(line, flush=True)
    body = header("Calibrated relevance cut-offs", ("scikit-learn",)) + (
        "\nFitted on each dataset's training split (top 20 per query), measured on its test split; see the "
        "`bench_calibration.py` docstring. Brier/ECE: lower is better; in brackets Platt scaling on the raw "
        "score alone. The cut-off keeps a query's results down to the first one below the threshold; the "
        "fixed-k baseline keeps k results for every query.\n\n" + "\n".join(rows)
        + "\n\nCommand: `python benchmarks/bench_calibration.py`\n")
    write_section("calibration", body)


if __name__ == "__main__":
    main()
