"""Typos: the distance check and corrector against brute force, the generator, and correction through a
collection, the CLI's flags and HTTP."""

from __future__ import annotations

import numpy as np

from retrievo import Collection
from retrievo.analysis.typos import TypoCorrector, _within_one, perturb


def dl_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance by dynamic programming (the reference)."""
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    d[:, 0] = np.arange(len(a) + 1)
    d[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i, j] = min(d[i, j], d[i - 2, j - 2] + 1)
    return int(d[-1, -1])


def test_within_one_equals_the_dynamic_programme():
    rng = np.random.default_rng(0)
    words = ["protein", "protien", "prtein", "proteins", "brotein", "rpotein", "protein", "pro", "aa", "ab", "ba", "",
             "a", "microglia", "micorglia", "microgila"]
    words += ["".join(rng.choice(list("abc"), rng.integers(0, 6))) for _ in range(200)]
    for a in words:
        for b in words[:40]:
            assert _within_one(a, b) == (dl_distance(a, b) <= 1), (a, b)


def test_corrector_picks_the_most_frequent_term_one_edit_away():
    terms = ["protein", "protean", "proteins", "cell", "brain", "brains", "rain"]
    df = np.array([50, 2, 9, 40, 30, 5, 0])
    tc = TypoCorrector(terms, df)
    assert tc.correct("protein") == 0            # in the vocabulary: itself
    assert tc.correct("protien") == 0            # transposition
    assert tc.correct("proteinn") == 0           # insertion; "proteins" is one edit away too, with fewer docs
    assert tc.correct("protan") == 1             # one deletion from "protean", the only term that near
    assert tc.correct("prtan") is None           # two edits from everything
    assert tc.correct("bain") == 4               # deletion: "brain" (30) beats "rain" (0 documents: never)
    assert tc.correct("cel") is None             # shorter than min_length: left alone
    assert tc.correct("xxxxxxxx") is None
    # brute force over the vocabulary for random strings
    rng = np.random.default_rng(1)
    for _ in range(300):
        w = "".join(rng.choice(list("proteinbacl"), rng.integers(4, 9)))
        near = [i for i, t in enumerate(terms) if df[i] > 0 and dl_distance(w, t) <= 1]
        want = min(near, key=lambda i: (-df[i], terms[i])) if near else None
        assert tc.correct(w) == want, w


def test_perturb_is_seeded_and_edits_long_words_once():
    text = "Microglia are immune cells of the brain, 2024"
    a = perturb(text, 1.0, np.random.default_rng(3))
    assert a == perturb(text, 1.0, np.random.default_rng(3))
    assert perturb(text, 0.0, np.random.default_rng(3)) == text
    for orig, new in zip(text.split(), a.split(), strict=True):
        word = orig.strip(",")
        if len(word) >= 4 and word.isalpha():
            assert dl_distance(word, new.strip(",")) == 1 and new[0] == orig[0]
        else:
            assert new == orig


def test_correct_typos_through_a_collection(tmp_path, scifact_small, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(scifact_small[:200])
    coll.commit()
    clean = coll.search("microglia immune cells", k=5)
    typo = "micorglia imune cells"
    assert coll.search(typo, k=5).ids.tolist() != clean.ids.tolist()
    fixed = coll.search(typo, k=5, correct_typos=True)
    assert fixed.ids.tolist() == clean.ids.tolist()
    np.testing.assert_allclose(fixed.scores, clean.scores, rtol=1e-6)
    assert coll.search("microglia immune cells", k=5, correct_typos=True).ids.tolist() == clean.ids.tolist()
    # what the correction changed is reported per query (analysed terms; "" = no replacement, left out)
    two = coll.search([typo, "microglia qqxqzv"], k=5, correct_typos=True)
    assert "microglia" not in coll.snapshot().vocab  # not in these 200 documents: nothing to correct it to
    assert two.corrections[0] == {"micorglia": "", "imun": "immun"}
    assert two.corrections[1] == {"microglia": "", "qqxqzv": ""} and coll.search(typo).corrections is None
