"""English stopwords: Lucene's ``EnglishAnalyzer`` default set (as used by Pyserini/Anserini)."""

from __future__ import annotations

__all__ = ["ENGLISH_STOPWORDS"]

ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with
    """.split()
)
