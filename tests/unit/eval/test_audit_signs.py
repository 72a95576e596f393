"""The audit's pieces on hand-made data: the incoherence sign (adjacent word pairs counted exactly over the
collection, the same in every process — Python's string hashing is randomised per process) and the thresholds'
split-conformal bound."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from retrievo.eval.audit import SIGNS, PairCounts, _Scaler

STORED = ["The cat sat on the mat.", "the cat ran", "dogs bark loudly"]


def test_pairs_no_other_document_uses_by_hand():
    pc = PairCounts(STORED)
    # stored: "the cat" is in two documents, every other pair in one
    assert pc.incoherence(STORED, stored=True).tolist() == [0.8, 0.5, 1.0]
    # new: a word the collection never used makes its pairs unattested; one word has no pairs
    got = pc.incoherence(["the cat sat", "zebra cat sat", "x", "the mat dogs", "mat the"], stored=False)
    assert got.tolist() == [0.0, 0.5, 0.0, 0.5, 1.0]
    assert PairCounts([]).incoherence(["the cat"], stored=False).tolist() == [1.0]


def test_pair_counts_do_not_depend_on_the_process_hash_seed(scifact_small):
    texts = [d["text"] for d in scifact_small[:300]]
    probe = [t.split(". ")[0] + " unrelated words glued on" for t in texts[:50]]
    code = ("import json, sys; from retrievo.eval.audit import PairCounts; d = json.load(sys.stdin); "
            "print(json.dumps(PairCounts(d['t']).incoherence(d['p'], stored=False).tolist()))")
    import json

    runs = set()
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps({"t": texts, "p": probe}),
                             capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        runs.add(out.stdout)
    assert len(runs) == 1
    # and the in-process answer is the same
    assert json.loads(runs.pop()) == PairCounts(texts).incoherence(probe, stored=False).tolist()


def test_new_documents_like_the_reference_are_flagged_within_the_bound():
    """Split conformal: over many draws, the share of new documents flagged stays within max_fpr (fitting the
    thresholds and counting on the same documents gave about 2.4 % at 2 % here)."""
    n, max_fpr = 500, 0.02
    shares, bounds = [], set()
    for seed in range(200):
        r = np.random.default_rng(seed)
        ref = {s: r.standard_t(3, n) for s in SIGNS}
        new = {s: r.standard_t(3, 1000) for s in SIGNS}
        scaler = _Scaler(ref, np.ones(n, bool), max_fpr)
        shares.append(float(np.mean(scaler.suspicion(new)[0] > 1.0)))
        bounds.add(scaler.bound)
    assert bounds == {5 / 251}  # 250 to check: the 246th smallest suspicion of 250
    assert np.mean(shares) <= 5 / 251 + 3 * np.std(shares) / np.sqrt(len(shares))
    # too few to check for the bound asked: the largest of them, and the bound reached is said
    scaler = _Scaler({s: np.arange(40.0) for s in SIGNS}, np.ones(40, bool), 0.01)
    assert scaler.bound == 1 / 21
