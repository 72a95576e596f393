"""SearchRequest: normalisation, resolution against a collection's config, the setting's key, and errors."""

from __future__ import annotations

import pytest

from retrievo.config import CollectionConfig, DenseIndexConfig, FusionConfig, PRFConfig, SparseConfig
from retrievo.errors import ConfigError, FilterError, InvalidInputError
from retrievo.request import Option, Overrides, SearchRequest, options, register_option, unregister_option

CFG = CollectionConfig(sparse=SparseConfig(), fusion=FusionConfig(method="rrf", weights=(0.7, 0.3)),
                       index=DenseIndexConfig(kind="hnsw", ef_search=64))


def test_component_settings_are_whole_configs_or_overrides_of_the_collections():
    r = SearchRequest(method="hybrid", fusion={"rrf_k": 10}, index={"ef_search": 256}).resolve(CFG)
    assert r.fusion == FusionConfig(method="rrf", weights=(0.7, 0.3), rrf_k=10)  # the rest is the collection's
    assert r.index == DenseIndexConfig(kind="hnsw", ef_search=256)
    whole = SearchRequest(method="hybrid", fusion=FusionConfig(method="convex")).resolve(CFG)
    assert whole.fusion == FusionConfig(method="convex")  # a whole config replaces the collection's
    assert SearchRequest(method="dense", index="flat").resolve(CFG).index == DenseIndexConfig(kind="flat", ef_search=64)
    assert SearchRequest(method="splade", sparse="approx").resolve(CFG).sparse == SparseConfig(mode="approx")
    plain = SearchRequest().resolve(CFG)
    assert plain.signals == ("bm25",) and plain.fusion == CFG.fusion and plain.index == CFG.index
    assert SearchRequest(method="dense+bm25").resolve(CFG).signals == ("dense", "bm25")


def test_depth_and_weights():
    assert SearchRequest(k=5).resolve(CFG).depth() == 5
    r = SearchRequest(method="bm25+dense+splade", k=5, fusion=FusionConfig(depth=300)).resolve(CFG)
    assert r.depth() == 300 and r.fusion_weights() == (1 / 3,) * 3
    assert SearchRequest(method="hybrid", k=2000).resolve(CFG).depth() == 2000
    with pytest.raises(InvalidInputError, match="resolve"):
        SearchRequest().depth()


def test_keys_name_what_changes_a_ranking():
    plain = CollectionConfig(sparse=SparseConfig())

    def key(**kw):
        return SearchRequest(**kw).resolve(plain).key()

    assert key() == "bm25"
    assert key(k=3, filter={"year": 2020}, min_probability=0.5) == "bm25"  # they cut a ranking, not change it
    assert key(method="bm25+dense") == key(method="hybrid") == "hybrid"
    assert key(method="hybrid", fusion={"method": "rrf"}) == "hybrid;fusion(method=rrf)"
    assert key(method="hybrid", fusion={"weights": (0.5, 0.5)}) == "hybrid"  # equal weights are the default
    assert key(method="hybrid", fusion={"weights": (0.25, 0.75), "rrf_k": 5}) == "hybrid;fusion(weights=0.25,0.75)"
    assert key(method="dense", index={"kind": "hnsw", "ef_search": 32, "nprobe": 3}) == "dense;index(kind=hnsw,ef_search=32)"
    assert key(method="bm25", index="hnsw") == "bm25"  # no dense signal: the index does not matter
    assert key(method="splade", sparse={"mode": "approx", "query_cut": 4}) == "splade;sparse(mode=approx,query_cut=4)"
    assert key(prf=True, correct_typos=True) == "bm25;prf;typos"
    assert key(prf=PRFConfig(fb_terms=5, alpha=0.5)) == "bm25;prf(fb_terms=5)"  # alpha is the dense signal's
    assert key(method="splade", prf=True) == "splade"  # SPLADE has no feedback
    assert key(method="dense", adapter=True) == "dense;adapter"
    assert SearchRequest(prf=True).resolve(plain).slug().startswith("bm25-") and SearchRequest().resolve(plain).slug() == "bm25"
    assert SearchRequest(method="hybrid", prf=True).resolve(plain).label() == "hybrid-prf"


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        SearchRequest(k=0)
    with pytest.raises(InvalidInputError, match="method must be a string"):
        SearchRequest(method=3)
    with pytest.raises(InvalidInputError, match="unknown method 'bm26'"):
        SearchRequest(method="bm26").resolve(CFG)
    with pytest.raises(InvalidInputError, match="unknown method"):
        SearchRequest(method="bm25+bm25").resolve(CFG)
    with pytest.raises(InvalidInputError, match="search-time"):
        SearchRequest(sparse={"n_postings": 3})
    with pytest.raises(InvalidInputError, match="unknown fusion settings"):
        SearchRequest(fusion={"mehtod": "rrf"})
    with pytest.raises(InvalidInputError, match="index must be a kind name"):
        SearchRequest(index=3)
    with pytest.raises(ConfigError, match="kind must be"):
        SearchRequest(method="dense", index="annoy").resolve(CFG)
    with pytest.raises(ConfigError, match="rrf_k"):
        SearchRequest(method="hybrid", fusion={"rrf_k": -1}).resolve(CFG)
    with pytest.raises(InvalidInputError, match=r"fusion.weights needs 3 weights \(bm25, dense, splade\)"):
        SearchRequest(method="bm25+dense+splade").resolve(CFG)  # the collection's two weights
    with pytest.raises(InvalidInputError, match="adapter is for the dense signal"):
        SearchRequest(adapter=True).resolve(CFG)
    with pytest.raises(InvalidInputError, match=r"min_probability must be in \[0, 1\]"):
        SearchRequest(min_probability=2)
    with pytest.raises(FilterError, match="not valid JSON"):
        SearchRequest(filter="{year")
    with pytest.raises(InvalidInputError, match="unknown options"):
        SearchRequest(options={"nope": 1})


def test_from_options_builds_what_flags_and_bodies_give():
    r = SearchRequest.from_options({"method": "hybrid", "fusion.method": "rrf", "index.ef_search": 8, "prf": True,
                                    "prf.fb_terms": 4, "k": None, "sparse.mode": None})
    assert r.fusion == Overrides(FusionConfig, {"method": "rrf"}) and r.index == Overrides(DenseIndexConfig, {"ef_search": 8})
    assert r.prf == PRFConfig(fb_terms=4) and r.k == 10 and r.sparse is None
    with pytest.raises(InvalidInputError, match="--fb-docs: pseudo-relevance feedback settings need --prf"):
        SearchRequest.from_options({"prf.fb_docs": 3}, describe=lambda n: {"prf.fb_docs": "--fb-docs", "prf": "--prf"}[n])
    with pytest.raises(InvalidInputError, match="unknown option"):
        SearchRequest.from_options({"bogus": 1})
    again = SearchRequest.from_dict(r.to_dict())
    assert again.resolve(CFG) == r.resolve(CFG)
    with pytest.raises(InvalidInputError, match="unknown settings"):
        SearchRequest.from_dict({"methd": "bm25"})


def test_plugin_options():
    opt = register_option(Option("boost_x", "--boost-x", "float", "a test option", default=1.0))
    try:
        assert opt in options()
        r = SearchRequest(options={"boost_x": 2.0}).resolve(CFG)
        assert r.options["boost_x"] == 2.0 and r.key() == "bm25;boost_x=2"
        assert SearchRequest().resolve(CFG).options["boost_x"] == 1.0  # the default, not in the key
        assert SearchRequest().resolve(CFG).key() == "bm25"
        assert SearchRequest.from_options({"boost_x": 3.0}).options == {"boost_x": 3.0}
        with pytest.raises(InvalidInputError, match="built-in"):
            register_option(Option("k", "--kk", "int", "clash"))
        with pytest.raises(InvalidInputError, match="already registered"):
            register_option(Option("boost_x", "--boost-y", "float", "another"))
    finally:
        unregister_option("boost_x")


def test_a_request_is_resolved_once_per_config_until_a_plugin_comes():
    import pickle

    r = SearchRequest(method="bm25", k=5)
    first = r.resolve(CFG)
    assert r.resolve(CFG) is first and first.resolve(CFG) is first  # memo: the same object, and idempotent
    other = CollectionConfig(fusion=FusionConfig(method="rrf"))
    assert r.resolve(other) is not first and r.resolve(other) == SearchRequest(method="bm25", k=5).resolve(other)
    register_option(Option("boost_z", "--boost-z", "float", "a test option", default=2.5))
    try:  # a plugin registered since: resolved again, with its option's default
        again = r.resolve(CFG)
        assert again is not first and again.options["boost_z"] == 2.5
    finally:
        unregister_option("boost_z")
    assert "boost_z" not in r.resolve(CFG).options
    copy = pickle.loads(pickle.dumps(r))
    assert copy == r and "_resolved" not in copy.__dict__  # the memo does not travel


def test_the_server_builds_each_setting_once():
    from retrievo.server.schemas import RequestCache, request_from_body, search_body_model

    body = search_body_model()
    cache = RequestCache(size=2)
    a = body.model_validate({"query": "one", "method": "bm25", "k": 5, "include_text": False})
    b = body.model_validate({"query": "two", "method": "bm25", "k": 5})
    assert cache.get(a, 5) is cache.get(b, 5)  # only the queries and the answer's shape differ
    assert cache.get(a, 5) == request_from_body(a, 5)
    assert cache.get(a, 7) is not cache.get(a, 5) and cache.get(a, 7).k == 7
    c = body.model_validate({"query": "x", "method": "bm25", "correct_typos": True})
    assert cache.get(c, 10).correct_typos and not cache.get(a, 10).correct_typos
    f = body.model_validate({"query": "x", "filter": {"n": {"$gt": 3}}})  # not a plain value: built each time
    assert cache.get(f, 10) is not cache.get(f, 10) and cache.get(f, 10) == request_from_body(f, 10)
    assert len(cache._requests) <= 2  # bounded
