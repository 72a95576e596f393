"""Typos: a seeded typo generator (to measure robustness) and a corrector of query terms for BM25.

BM25 matches terms exactly, so a misspelt query word matches nothing; a dense model sees its sub-words
and degrades more gently. :class:`TypoCorrector` maps a query term that is not in the collection's
vocabulary to the vocabulary term one edit away (insertion, deletion, substitution or transposition of
adjacent characters: Damerau–Levenshtein distance 1) that the most documents contain, as spelling
correctors do (Norvig; SymSpell's "symmetric delete": every term is indexed under the strings one
deletion away, so a lookup needs only the query term's own deletions, not the alphabet × positions
edits). Terms under ``min_length`` characters are never corrected (too many neighbours).

:func:`perturb` makes typo'd queries for robustness checks: each word of at least 4 letters is, with
probability ``rate``, given one random edit (swap of two adjacent inner letters, deletion, insertion or
substitution of a letter), from a seeded generator.

Written here: the lookup is a dictionary of deletions over terms the collection already holds (no spelling
library knows a collection's own vocabulary and document frequencies), and the generator is a few lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

__all__ = ["TypoCorrector", "perturb"]

_WORD = re.compile(r"[^\W\d_]{4,}")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _deletes(term: str) -> set[str]:
    return {term[:i] + term[i + 1:] for i in range(len(term))}


def _within_one(a: str, b: str) -> bool:
    """Damerau–Levenshtein distance(a, b) <= 1 (adjacent transposition counts 1)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1:] == b[i + 1:]:
            return True  # substitution
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]  # transposition
    return a[i + 1:] == b[i:] if la > lb else a[i:] == b[i + 1:]  # deletion / insertion


class TypoCorrector:
    """Query terms outside the vocabulary → the in-vocabulary term one edit away with the most documents.

    Args:
        terms: the vocabulary (term id = position).
        doc_freq: documents per term id (terms with 0 are not candidates).
        min_length: shorter terms are left as they are.
    """

    def __init__(self, terms: Iterable[str], doc_freq: np.ndarray, min_length: int = 4) -> None:
        self.terms = list(terms)
        self.doc_freq = np.asarray(doc_freq)
        self.min_length = min_length
        self.ids = {t: i for i, t in enumerate(self.terms)}
        self._index: dict[str, list[int]] = {}
        for i, t in enumerate(self.terms):
            if len(t) < min_length - 1 or i >= len(self.doc_freq) or self.doc_freq[i] <= 0:
                continue
            for d in _deletes(t) | {t}:
                self._index.setdefault(d, []).append(i)

    def correct(self, term: str) -> int | None:
        """The term's id if it is in the vocabulary, else the best term one edit away, else ``None``."""
        if term in self.ids and self.ids[term] < len(self.doc_freq) and self.doc_freq[self.ids[term]] > 0:
            return self.ids[term]
        if len(term) < self.min_length:
            return None
        cands: set[int] = set()
        for d in _deletes(term) | {term}:
            cands.update(self._index.get(d, ()))
        best, best_key = None, None
        for i in cands:
            t = self.terms[i]
            if not _within_one(term, t):
                continue
            key = (-int(self.doc_freq[i]), t)  # most documents, then alphabetical: deterministic
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best


def perturb(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with one random edit in each word of 4+ letters, each with probability ``rate``."""

    def edit(m: re.Match) -> str:
        w = m.group(0)
        if rng.random() >= rate:
            return w
        kind = int(rng.integers(4))
        i = int(rng.integers(1, len(w) - 1))  # 1 .. len-2: the first letter stays, w[i + 1] exists
        c = _LETTERS[int(rng.integers(len(_LETTERS)))]
        if kind == 0:
            return w[:i] + w[i + 1] + w[i] + w[i + 2:]
        if kind == 1:
            return w[:i] + w[i + 1:]
        if kind == 2:
            return w[:i] + c + w[i:]
        return w[:i] + c + w[i + 1:]

    return _WORD.sub(edit, text)
