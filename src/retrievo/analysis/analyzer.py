"""Text analysis for the lexical index: Unicode tokenisation, case folding, stopwords, Snowball stemming.

Stemming uses PyStemmer (the C Snowball stemmers); stems are memoised per analyzer because a corpus
repeats the same surface forms many times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from retrievo.analysis.stopwords import ENGLISH_STOPWORDS
from retrievo.config import AnalyzerConfig
from retrievo.errors import ConfigError

__all__ = ["Analyzer"]


class Analyzer:
    """Turns text into index terms according to an :class:`AnalyzerConfig`."""

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config or AnalyzerConfig()
        try:
            self._pattern = re.compile(self.config.token_pattern)
        except re.error as exc:
            raise ConfigError(f"AnalyzerConfig.token_pattern is not a valid regex: {exc}") from exc
        self._stop = ENGLISH_STOPWORDS if self.config.stopwords == "english" else frozenset()
        # highlighting may look only at tokens starting like a query term (see term_spans)
        self._first_letter_safe = (self.config.token_pattern == r"(?u)\b\w\w+\b"
                                   and self.config.stemmer in (None, "english"))
        self._candidates: dict[str, re.Pattern[str]] = {}
        self._stem_cache: dict[str, str] = {}
        self._stemmer = None
        if self.config.stemmer:
            import Stemmer

            try:
                self._stemmer = Stemmer.Stemmer(self.config.stemmer)
            except KeyError as exc:
                raise ConfigError(
                    f"AnalyzerConfig.stemmer: unknown language {self.config.stemmer!r}; "
                    f"known: {sorted(Stemmer.algorithms())}"
                ) from exc

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into terms (tokens after lowercasing, stopword removal and stemming)."""
        if self.config.lowercase:
            text = text.lower()
        return self._stem_all([t for t in self._pattern.findall(text) if t not in self._stop])

    def _stem_all(self, tokens: list[str]) -> list[str]:
        if self._stemmer is None:
            return tokens
        cache = self._stem_cache
        missing = [t for t in set(tokens) if t not in cache]
        if missing:
            if len(cache) + len(missing) > 2_000_000:  # keep memory bounded on huge vocabularies
                cache.clear()
            for t, s in zip(missing, self._stemmer.stemWords(missing), strict=True):
                cache[t] = s
        return [cache[t] for t in tokens]

    def term_spans(self, text: str, terms: set[str] | frozenset[str], limit: int | None = None) -> list[tuple[int, int]]:
        """Character spans ``[start, end)`` of the tokens of ``text`` whose index term is in ``terms`` (the
        first ``limit`` of them).

        Used to highlight the words that matched a query; each token is analysed as :meth:`tokenize`
        analyses it, but offsets refer to the original text. Tokens longer than the longest term are
        skipped unstemmed (stemming never lengthens a word much, and a huge token would cost much).
        """
        if not terms or limit == 0:
            return []
        longest = 3 * max(len(t) for t in terms) + 8
        pattern = self._pattern
        if self._first_letter_safe and all(terms):
            # only tokens that begin as some term does can stem to it (English Snowball strips suffixes and
            # never changes a word's first letter; tested against the full scan): let the regex engine skip
            # the others
            first = "".join(sorted({re.escape(t[0]) for t in terms}))
            pattern = self._candidates.get(first)
            if pattern is None:
                pattern = self._candidates[first] = re.compile(
                    rf"(?u)\b(?=[{first}])\w\w+\b", re.IGNORECASE if self.config.lowercase else 0)
        matches = [m for m in pattern.finditer(text) if m.end() - m.start() <= longest]
        toks = [m.group(0).lower() if self.config.lowercase else m.group(0) for m in matches]
        keep = [i for i, t in enumerate(toks) if t not in self._stop]
        stems = self._stem_all([toks[i] for i in keep])
        spans = [(matches[i].start(), matches[i].end()) for i, s in zip(keep, stems, strict=True) if s in terms]
        return spans if limit is None else spans[:limit]

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]
