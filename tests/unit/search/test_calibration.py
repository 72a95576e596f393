"""Calibrated relevance: features by hand, a fit that is calibrated on held-out data, persistence, the
cut-off through a real collection, the report's arithmetic, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from retrievo import Collection
from retrievo.errors import InvalidInputError
from retrievo.search.calibration import ScoreCalibrator, calibration_report, list_features


def test_list_features_by_hand():
    scores = np.array([[4.0, 3.0, 1.0], [2.0, -np.inf, -np.inf]])
    f = list_features(scores, np.array([3, 1]))
    np.testing.assert_allclose(f[0, :, 0], [4, 3, 1])                 # score
    np.testing.assert_allclose(f[0, :, 1], [0, -1, -3])               # gap to the top
    np.testing.assert_allclose(f[0, :, 2], [1, 0.75, 0.25])           # ratio to the top
    np.testing.assert_allclose(f[0, :, 3], np.log([1, 2, 3]))         # log rank
    np.testing.assert_allclose(f[0, :, 4], [1, 1, 1])                 # first - second
    np.testing.assert_allclose(f[1, 0], [2, 0, 1, 0, 0])              # a list of one: no gap at the head
    assert (f[1, 1:] == 0).all()                                      # padding


def synthetic(n, seed):
    """Lists whose results are relevant with probability sigmoid(2 * score - 3)."""
    rng = np.random.default_rng(seed)
    scores = -np.sort(-rng.normal(1.5, 1.0, (n, 10)), axis=1)
    labels = (rng.random((n, 10)) < 1 / (1 + np.exp(-(2 * scores - 3)))).astype(int)
    return scores, np.full(n, 10), labels


def test_fit_is_calibrated_on_held_out_lists_and_round_trips(tmp_path):
    s, c, y = synthetic(3000, 0)
    cal = ScoreCalibrator.fit(s, c, y, "bm25")
    s2, c2, y2 = synthetic(3000, 1)
    p = cal.probabilities(s2, c2)
    rep = calibration_report(p, y2, c2, y2.sum(axis=1), 0.5)
    assert rep["ece"] < 0.03 and rep["brier"] < 0.2
    truth = 1 / (1 + np.exp(-(2 * s2 - 3)))
    assert np.abs(p - truth).mean() < 0.05
    cal.save(tmp_path / "c.json")
    again = ScoreCalibrator.load(tmp_path / "c.json")
    np.testing.assert_array_equal(again.probabilities(s2, c2), p)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="bad.json"):
        ScoreCalibrator.load(tmp_path / "bad.json")


def test_report_by_hand():
    prob = np.array([[0.9, 0.6, 0.7, 0.1], [0.2, 0.9, 0.0, 0.0]])
    labels = np.array([[1, 0, 1, 0], [1, 1, 0, 0]])
    counts = np.array([4, 2])
    rep = calibration_report(prob, labels, counts, np.array([2, 3]), 0.5)
    # query 0 keeps ranks 1-3 (the cut is at the first result under 0.5): P 2/3, R 1; query 1 keeps none
    assert rep["mean_length"] == pytest.approx(1.5)
    assert rep["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert rep["recall"] == pytest.approx((1 + 0) / 2)
    assert rep["f1"] == pytest.approx((0.8 + 0) / 2)
    p = np.array([0.9, 0.6, 0.7, 0.1, 0.2, 0.9])
    y = np.array([1, 0, 1, 0, 1, 1])
    assert rep["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_calibrated_cut_off_through_a_collection(tmp_path, scifact_small, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(scifact_small[:200])
    coll.commit()
    docs = scifact_small[:200]
    # a query per document (its title); the document itself is the one relevant answer
    queries = {f"q{i}": d["title"] for i, d in enumerate(docs[:150]) if d["title"]}
    qrels = {f"q{i}": {d["_id"]: 1} for i, d in enumerate(docs[:150])}
    with pytest.raises(InvalidInputError, match="no calibration for method 'bm25'"):
        coll.search("brain cells", k=5, min_probability=0.5)
    cal = coll.calibrate(queries, qrels, method="bm25", depth=10)
    assert (tmp_path / "c" / "calibration" / "bm25.json").exists() and cal.n_queries == len(queries)
    held_out = [d["title"] for d in docs[150:200] if d["title"]]
    full = coll.search(held_out, k=10)
    cut = coll.search(held_out, k=10, min_probability=0.5)
    assert cut.probabilities is not None and (cut.counts <= full.counts).all() and cut.counts.sum() > 0
    for i in range(len(held_out)):
        n = cut.counts[i]
        assert (cut.probabilities[i, :n] >= 0.5).all() and (cut.probabilities[i, n:] == 0).all()
        assert cut.ids[i, :n].tolist() == full.ids[i, :n].tolist() and (cut.ids[i, n:] == "").all()
        if n < full.counts[i]:  # cut at the first result under the threshold
            p_all = Collection.calibrator(coll, "bm25").probabilities(full.scores[i:i + 1], full.counts[i:i + 1])
            assert p_all[0, n] < 0.5
    dicts = cut.to_dicts()
    assert [len(d["results"]) for d in dicts] == cut.counts.tolist()
    assert all(h["probability"] >= 0.5 for d in dicts for h in d["results"])
    assert "probability" not in full.to_dicts()[0]["results"][0]
    assert (coll.search(held_out, k=10, min_probability=0.0).counts == full.counts).all()
    assert (coll.search(held_out, k=10, min_probability=1.0).counts == 0).all()
    with pytest.raises(InvalidInputError, match=r"min_probability must be in \[0, 1\]"):
        coll.search("x", min_probability=1.5)
    ro = Collection.open(tmp_path / "c", readonly=True)
    try:
        assert ro.search(held_out, k=10, min_probability=0.5).counts.tolist() == cut.counts.tolist()
        # re-calibrated by another handle: the reader sees the new file
        refit = coll.calibrate(queries, qrels, method="bm25", depth=3)
        path = tmp_path / "c" / "calibration" / "bm25.json"
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
        assert ro.calibrator("bm25") == refit and refit.depth == 3
        with pytest.raises(InvalidInputError, match="read-only"):
            ro.calibrate(queries, qrels, method="bm25")
    finally:
        ro.close()


def test_bad_calibration_input():
    s, c, y = synthetic(50, 2)
    with pytest.raises(InvalidInputError, match="relevant and non-relevant"):
        ScoreCalibrator.fit(s, c, np.zeros_like(y), "bm25")
    with pytest.raises(InvalidInputError, match=r"must be \(n, k\)"):
        ScoreCalibrator.fit(s, c, y[:, :5], "bm25")
