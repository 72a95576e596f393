import math

import numpy as np
import pytest

from retrievo.eval.compare import compare_runs, randomization_test
from retrievo.eval.measures import evaluate
from retrievo.eval.runs import read_run, write_run


def test_measures_hand_computed():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d9": 2}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d5": 1.0}}
    m = evaluate(run, qrels)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx((dcg / idcg + 0.0) / 2)
    assert m["recall@100"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["mrr@10"] == pytest.approx((1.0 + 0.0) / 2)


def test_missing_query_counts_as_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert evaluate({"q1": {"d1": 1.0}}, qrels)["ndcg@10"] == pytest.approx(0.5)


def test_run_roundtrip(tmp_path):
    run = {"q1": {"a": 1.5, "b": 2.5}, "q2": {"c": 0.1}}
    write_run(tmp_path / "r.trec", run)
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 2.500000 retrievo"
    assert read_run(tmp_path / "r.trec") == run


def test_randomization_and_compare():
    a = np.zeros(30)
    b = np.full(30, 0.5)
    assert randomization_test(a, b, trials=2000) < 0.01
    assert randomization_test(a, a, trials=100) == 1.0
    qrels = {f"q{i}": {"d": 1} for i in range(20)}
    good = {f"q{i}": {"d": 1.0} for i in range(20)}
    bad = {f"q{i}": {"x": 1.0, "d": 0.5} for i in range(20)}
    res = {r.measure: r for r in compare_runs(bad, good, qrels, trials=2000)}
    assert res["mrr@10"].diff == pytest.approx(0.5) and res["mrr@10"].wins == 20
    assert res["mrr@10"].p_randomization < 0.01
