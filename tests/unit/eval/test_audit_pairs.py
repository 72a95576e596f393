"""The audit's incoherence sign: adjacent word pairs counted exactly over the collection, the same in every
process (Python's string hashing is randomised per process; the counts must not depend on it)."""

from __future__ import annotations

import os
import subprocess
import sys

from retrievo.eval.audit import PairCounts

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
