import math

import numpy as np
import pytest

from retrievo.analysis.analyzer import Analyzer
from retrievo.config import BM25Config
from retrievo.indexes.inverted import InvertedIndex, compute_stats, term_frequencies


def build(token_lists, live=None, config=None):
    vocab: dict[str, int] = {}
    indptr, terms, counts, doclen = term_frequencies(token_lists, vocab)
    live = np.ones(len(token_lists), bool) if live is None else np.asarray(live)
    idx = InvertedIndex(indptr, terms, counts, doclen, live, len(vocab), config or BM25Config())
    return idx, vocab


def test_hand_computed_lucene_bm25():
    docs = [["a", "b", "a"], ["b", "c"], ["c"]]
    idx, vocab = build(docs, config=BM25Config(k1=1.2, b=0.75))
    n, avgdl = 3, 2.0
    # score(q="a", d0): df=1, tf=2, |d|=3
    idf_a = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    expected = idf_a * 2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / avgdl))
    scores = idx.get_scores(np.array([vocab["a"]]))
    assert scores[0] == pytest.approx(expected, rel=1e-6)
    assert scores[1] == 0 and scores[2] == 0
    # b occurs in d0 (tf 1, len 3) and d1 (tf 1, len 2)
    idf_b = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))
    rows, sc, counts = idx.search([np.array([vocab["b"]])], k=5)
    assert counts.tolist() == [2]
    assert rows[0, :2].tolist() == [1, 0]  # the shorter document wins
    assert sc[0, 0] == pytest.approx(idf_b / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / avgdl)), rel=1e-6)
    assert rows[0, 2] == -1 and np.isneginf(sc[0, 2])


def test_dead_rows_excluded_from_statistics_and_results():
    docs = [["a", "b"], ["a"], ["b", "c"]]
    idx, vocab = build(docs, live=[True, False, True])
    fresh, v2 = build([["a", "b"], ["b", "c"]])
    s_dead = idx.get_scores(np.array([vocab["a"], vocab["b"]]))
    s_fresh = fresh.get_scores(np.array([v2["a"], v2["b"]]))
    np.testing.assert_allclose(s_dead[[0, 2]], s_fresh, rtol=1e-6)
    assert s_dead[1] == 0


def test_term_frequencies_hand_checked():
    vocab = {"x": 0}
    indptr, terms, counts, doclen = term_frequencies([["y", "x", "y"], [], ["z"]], vocab)
    assert vocab == {"x": 0, "y": 1, "z": 2}
    assert indptr.tolist() == [0, 2, 2, 3] and doclen.tolist() == [3, 0, 1]
    assert dict(zip(terms[:2].tolist(), counts[:2].tolist(), strict=True)) == {1: 2, 0: 1}


def test_stats_are_additive():
    indptr = np.array([0, 2, 3, 5])
    terms = np.array([0, 1, 0, 1, 2], np.int32)
    doclen = np.array([2, 1, 2], np.int32)
    whole = compute_stats(indptr, terms, doclen, np.array([1, 1, 1], bool), 3)
    a = compute_stats(indptr, terms, doclen, np.array([1, 0, 0], bool), 3)
    b = compute_stats(indptr, terms, doclen, np.array([0, 1, 1], bool), 3)
    s = a + b
    assert s.n_docs == whole.n_docs and s.total_len == whole.total_len
    np.testing.assert_array_equal(s.df, whole.df)


def test_filter_mask_and_k_larger_than_matches():
    docs = [["x"], ["x", "y"], ["x", "x"], ["z"]]
    idx, vocab = build(docs)
    rows, _, counts = idx.search([np.array([vocab["x"]])], k=10, allowed=np.array([True, False, True, True]))
    assert counts[0] == 2 and set(rows[0, :2].tolist()) == {0, 2}


def test_scores_equal_bm25s_lucene(scifact_small, scifact_queries):
    bm25s = pytest.importorskip("bm25s")
    an = Analyzer()
    corpus_tokens = [an.tokenize(d["title"] + " " + d["text"]) for d in scifact_small]
    idx, vocab = build(corpus_tokens)
    ref = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    ref.index(bm25s.tokenization.Tokenized(
        ids=[[vocab[t] for t in toks] for toks in corpus_tokens],
        vocab={t: i for t, i in vocab.items()},
    ), show_progress=False)
    checked = 0
    for q in scifact_queries:
        qt = [vocab[t] for t in an.tokenize(q) if t in vocab]
        if not qt:
            continue
        ours = idx.get_scores(np.array(qt))
        theirs = ref.get_scores(qt)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
        rows, sc, cnt = idx.search([np.array(qt)], k=10)
        top_ref = np.sort(theirs)[::-1][:10]
        np.testing.assert_allclose(sc[0, : cnt[0]], top_ref[: cnt[0]], atol=1e-5)
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("variant,delta", [("bm25l", None), ("bm25+", None), ("bm25l", 0.2), ("bm25+", 0.5)])
def test_bm25_variants_equal_bm25s_on_matched_terms(scifact_small, scifact_queries, variant, delta):
    """BM25L and BM25+ as Lv and Zhai define them: a query term adds to the documents that contain it. bm25s also
    gives every document without the term its zero-frequency weight ``idf · tf'(0)``; take that out of its scores
    and they must equal ours."""
    bm25s = pytest.importorskip("bm25s")
    an = Analyzer()
    corpus_tokens = [an.tokenize(d["title"] + " " + d["text"]) for d in scifact_small]
    cfg = BM25Config(variant=variant, delta=delta)
    idx, vocab = build(corpus_tokens, config=cfg)
    ref = bm25s.BM25(method=variant, k1=0.9, b=0.4, delta=cfg.lower_bound)
    ref.index(bm25s.tokenization.Tokenized(ids=[[vocab[t] for t in toks] for toks in corpus_tokens],
                                           vocab=dict(vocab)), show_progress=False)
    k1, dl = 0.9, cfg.lower_bound
    tf0 = (k1 + 1) * dl / (k1 + dl) if variant == "bm25l" else dl  # tf'(0)
    n = len(corpus_tokens)
    sets = [set(toks) for toks in corpus_tokens]
    checked = 0
    for q in scifact_queries:
        qt = sorted({vocab[t] for t in an.tokenize(q) if t in vocab})
        if not qt:
            continue
        terms = {i: t for t, i in vocab.items()}
        df = {t: sum(terms[t] in s for s in sets) for t in qt}
        idf = {t: math.log((n + 1) / (df[t] + 0.5)) if variant == "bm25l" else math.log((n + 1) / df[t]) for t in qt}
        absent = np.array([sum(idf[t] * tf0 for t in qt if terms[t] not in s) for s in sets])
        np.testing.assert_allclose(idx.get_scores(np.array(qt)), ref.get_scores(qt) - absent, atol=5e-5, rtol=1e-5)
        checked += 1
    assert checked > 40
    lucene, _ = build(corpus_tokens)
    assert not np.allclose(lucene.get_scores(np.array(qt)), idx.get_scores(np.array(qt)))


def test_bm25_variant_config_checks_and_keeps_old_manifests():
    from retrievo.errors import ConfigError

    assert "variant" not in BM25Config().to_dict() and "delta" not in BM25Config().to_dict()
    assert BM25Config.from_dict(BM25Config(variant="bm25+").to_dict()).variant == "bm25+"
    with pytest.raises(ConfigError, match="variant"):
        BM25Config(variant="okapi")
    with pytest.raises(ConfigError, match="delta"):
        BM25Config(delta=0.5)


@pytest.mark.parametrize("variant", ["lucene", "bm25l", "bm25+"])
def test_unseen_documents_score_as_they_would_inside_with_the_same_statistics(variant):
    """``score_unseen``: a document scored from outside, with the index's statistics, gets the score it has as a
    row of the index (the statistics count it there) — every query, repeated query terms included."""
    docs = [["a", "b", "a"], ["b", "c"], ["c", "d", "d", "e"], ["a", "e"]]
    idx, vocab = build(docs, config=BM25Config(variant=variant))
    queries = [np.array([vocab[t] for t in q]) for q in (["a"], ["b", "c"], ["d", "d", "a"], ["e", "c", "a"])]
    rows = [2, 0]
    indptr, terms, counts, doclen = term_frequencies([docs[r] for r in rows], dict(vocab))
    got = idx.score_unseen(queries, indptr, terms, counts, doclen)
    want = np.array([[idx.get_scores(q)[r] for r in rows] for q in queries])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.shape == (4, 2) and (got[0] == [0, want[0, 1]]).all()  # "a" is not in document 2
    assert idx.score_unseen(queries, np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
                            np.zeros(0, np.int32)).shape == (4, 0)
