import pytest

from retrievo.analysis.analyzer import Analyzer
from retrievo.config import AnalyzerConfig
from retrievo.errors import ConfigError


def test_default_pipeline_hand_checked():
    a = Analyzer()
    # "The" and "of" are stopwords; "a" is too short; stems by Snowball English
    assert a.tokenize("The Running of a Dogs' races, 2020!") == ["run", "dog", "race", "2020"]


def test_unicode_tokens_and_case():
    a = Analyzer()
    assert a.tokenize("Über Café-Straße naïve") == ["über", "café", "straße", "naïv"]


def test_no_stem_no_stop():
    a = Analyzer(AnalyzerConfig(stopwords=None, stemmer=None))
    assert a.tokenize("The Running of dogs") == ["the", "running", "of", "dogs"]


def test_unknown_stemmer_is_clear():
    with pytest.raises(ConfigError, match="unknown language"):
        Analyzer(AnalyzerConfig(stemmer="klingon"))


def test_term_spans_mark_tokens_whose_terms_match():
    from retrievo.analysis.analyzer import Analyzer

    a = Analyzer()
    text = "Microglia: the brain's Immune cells; the CELLS of brains."
    terms = set(a.tokenize("immune cell brain"))
    spans = a.term_spans(text, terms)
    assert [text[s:e] for s, e in spans] == ["brain", "Immune", "cells", "CELLS", "brains"]
    assert a.term_spans(text, set()) == [] and a.term_spans("", terms) == []
    assert a.term_spans(text, set(a.tokenize("the of"))) == []  # stopwords are not terms


def test_highlighting_looks_only_at_candidate_tokens_and_finds_the_same_spans(scifact_small, scifact_queries):
    """term_spans skips tokens that cannot stem to a query term (English Snowball keeps the first letter);
    the spans are those of a scan of every token."""
    fast, full = Analyzer(), Analyzer()
    full._first_letter_safe = False
    for q in scifact_queries[:40]:
        terms = set(fast.tokenize(q))
        for d in scifact_small[:60]:
            assert fast.term_spans(d["text"], terms) == full.term_spans(d["text"], terms)
    assert fast.term_spans("Cells, CELL and cellular cells", {"cell"}) == [(0, 5), (7, 11), (25, 30)]
