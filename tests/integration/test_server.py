"""The HTTP server as a real process on loopback: routes, auth, limits, errors and consistency under writes."""

from __future__ import annotations

import threading

import httpx
import pytest

from retrievo.server.process import ServerProcess

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory, scifact_small):
    root = tmp_path_factory.mktemp("served")
    srv = ServerProcess(root, api_key=KEY, args=["--commit-interval", "0.2"]).start()
    h = srv.headers
    r = httpx.post(srv.url + "/v1/collections", json={"name": "sci", "dense": False}, headers=h)
    assert r.status_code == 201, r.text
    r = httpx.post(srv.url + "/v1/collections/sci/documents", json=scifact_small[:200], headers=h)
    assert r.status_code == 202, r.text
    assert httpx.post(srv.url + "/v1/collections/sci/commit", headers=h, timeout=60).json()["documents"] == 200
    yield srv
    srv.stop()


def test_search_returns_hits_with_highlights_and_pages(server):
    body = {"query": "microglia immune cells of the brain", "k": 5, "method": "bm25"}
    r = httpx.post(server.url + "/v1/collections/sci/search", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    hits = data["results"][0]["hits"]
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0]["score"] >= hits[-1]["score"]
    first = hits[0]
    spans = first["highlights"]["text"] + first["highlights"]["title"]
    assert spans, "the best BM25 hit must contain a query term"
    marked = {first["text"][s:e].lower() for s, e in first["highlights"]["text"]}
    assert marked and all(m.startswith(("microgli", "immun", "cell", "brain")) for m in marked)
    page2 = httpx.post(server.url + "/v1/collections/sci/search", json={**body, "k": 3, "offset": 3}).json()
    assert [h["id"] for h in page2["results"][0]["hits"]][:2] == [h["id"] for h in hits[3:5]]
    assert page2["results"][0]["hits"][0]["rank"] == 4


def test_search_with_pseudo_relevance_feedback_matches_the_library(server):
    from retrievo import Collection

    q = "microglia immune cells of the brain"
    r = httpx.post(server.url + "/v1/collections/sci/search", json={"query": q, "k": 10, "prf": True})
    assert r.status_code == 200, r.text
    served = [h["id"] for h in r.json()["results"][0]["hits"]]
    coll = Collection.open(server.root / "sci", readonly=True)
    try:
        assert served == [d for d, _ in coll.search(q, k=10, prf=True).row(0)]
        assert served != [d for d, _ in coll.search(q, k=10).row(0)]  # feedback did change the ranking
    finally:
        coll.close()
    bad = httpx.post(server.url + "/v1/collections/sci/search", json={"query": q, "prf": "sometimes"})
    assert bad.status_code == 422
    no_dense = httpx.post(server.url + "/v1/collections/sci/search", json={"query": q, "adapter": True})
    assert no_dense.status_code == 400 and "adapter is for the dense signal" in no_dense.json()["error"]["message"]
    fixed = httpx.post(server.url + "/v1/collections/sci/search",
                       json={"query": "micorglia imune cells of the brian", "k": 10, "correct_typos": True})
    clean = httpx.post(server.url + "/v1/collections/sci/search", json={"query": q, "k": 10})
    assert [h["id"] for h in fixed.json()["results"][0]["hits"]] == [h["id"] for h in clean.json()["results"][0]["hits"]]


def test_calibrated_cut_off_over_http(server, scifact_small):
    from retrievo import Collection

    url = server.url + "/v1/collections/sci/search"
    missing = httpx.post(url, json={"query": "brain", "min_probability": 0.5})
    assert missing.status_code == 400 and "no calibration" in missing.json()["error"]["message"]
    docs = [d for d in scifact_small[:200] if d["title"]][:120]
    coll = Collection.open(server.root / "sci")  # calibrating writes one file; the server keeps serving
    try:
        coll.calibrate({d["_id"]: d["title"] for d in docs}, {d["_id"]: {d["_id"]: 1} for d in docs}, depth=10)
    finally:
        coll.close()
    q = docs[5]["title"]
    full = httpx.post(url, json={"query": q, "k": 10}).json()["results"][0]["hits"]
    cut = httpx.post(url, json={"query": q, "k": 10, "min_probability": 0.2}).json()["results"][0]["hits"]
    assert cut and [h["id"] for h in cut] == [h["id"] for h in full][:len(cut)]
    assert all(h["probability"] >= 0.2 for h in cut)
    assert full[0].get("probability") is None  # without a cut-off no probability is computed
    assert httpx.post(url, json={"query": q, "min_probability": 2}).status_code == 422


def test_batch_search_and_documents(server, scifact_small):
    r = httpx.post(server.url + "/v1/collections/sci/search",
                   json={"queries": ["vitamin d", "stem cells"], "k": 3, "include_text": False, "highlight": False})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["query"] for x in res] == ["vitamin d", "stem cells"]
    assert "text" not in res[0]["hits"][0] or res[0]["hits"][0]["text"] is None
    doc = scifact_small[0]
    got = httpx.get(server.url + f"/v1/collections/sci/documents/{doc['_id']}").json()
    assert got["id"] == doc["_id"] and got["text"] == doc["text"]
    r = httpx.post(server.url + "/v1/collections/sci/lookup", json={"ids": [doc["_id"], "nope"]}).json()
    assert [d["id"] for d in r["documents"]] == [doc["_id"]] and r["missing"] == ["nope"]
    assert httpx.get(server.url + "/v1/collections/sci/documents/nope").status_code == 404
    info = httpx.get(server.url + "/v1/collections/sci").json()
    assert info["documents"] == 200 and info["info"]["documents"] == 200
    assert [c["name"] for c in httpx.get(server.url + "/v1/collections").json()] == ["sci"]


WRITES = [
    ("POST", "/v1/collections", {"name": "x1", "dense": False}),
    ("POST", "/v1/collections/sci/documents", [{"id": "w1", "text": "hello"}]),
    ("DELETE", "/v1/collections/sci/documents/w1", None),
    ("POST", "/v1/collections/sci/delete", {"ids": ["w1"]}),
    ("POST", "/v1/collections/sci/commit", None),
    ("PATCH", "/v1/collections/sci/documents/w1", {"metadata": {"a": 1}}),
    ("POST", "/v1/collections/sci/snapshots", None),
    ("POST", "/v1/collections/sci/quarantine/release", {"ids": ["w1"]}),
    ("POST", "/v1/collections/sci/quarantine/drop", {"ids": ["w1"]}),
]


@pytest.mark.parametrize("method,path,body", WRITES)
def test_every_write_route_needs_the_key(server, method, path, body):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}, {"Authorization": "Basic " + KEY}):
        r = httpx.request(method, server.url + path, json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["type"] == "Unauthorized"
    assert "x1" not in [c["name"] for c in httpx.get(server.url + "/v1/collections").json()]


def test_write_routes_list_is_complete(server):
    """Every mutating route of the spec is in WRITES, so the auth test above covers them all."""
    spec = httpx.get(server.url + "/openapi.json").json()
    mutating = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                if m in ("post", "delete", "put", "patch") and not p.endswith(("/search", "/lookup", "/facets"))}
    covered = {(m, p.replace("sci", "{name}").replace("w1", "{doc_id}")) for m, p, _ in WRITES}
    assert mutating == covered


@pytest.mark.parametrize("name", ["..", "..%2F..%2Fetc", "a%2Fb", "%2E%2E", ".hidden", "a" * 65, "x%00y", "sp ace"])
def test_collection_names_cannot_escape(server, tmp_path, name):
    r = httpx.post(server.url + "/v1/collections", json={"name": name.replace("%2F", "/").replace("%2E", ".")
                                                          .replace("%00", "\x00"), "dense": False},
                   headers=server.headers)
    assert r.status_code in (400, 422), r.text
    r = httpx.post(server.url + f"/v1/collections/{name}/search", json={"query": "x"})
    assert r.status_code in (400, 404), r.text
    assert not (server.root.parent / "x1").exists()


def test_limits_and_errors(server):
    u = server.url + "/v1/collections/sci"
    r = httpx.post(u + "/search", json={"query": "x", "k": 100_000})
    assert r.status_code == 422 and "k" in r.json()["error"]["message"]
    assert httpx.post(u + "/search", json={"query": "x" * 5000}).status_code == 422
    assert httpx.post(u + "/search", json={"queries": ["x"] * 101}).status_code == 422  # over the spec cap
    assert httpx.post(u + "/search", json={"query": "x", "queries": ["y"]}).status_code == 422
    assert httpx.post(u + "/search", json={"query": "x", "bogus": 1}).status_code == 422
    r = httpx.post(u + "/search", json={"query": "x", "filter": {"nope": 1}})
    assert r.status_code == 400 and r.json()["error"]["type"] == "FilterError" and "nope" in r.json()["error"]["message"]
    assert httpx.post(u + "/search", json={"query": "x", "method": "dense"}).status_code == 400  # no dense model
    assert httpx.post(server.url + "/v1/collections/none/search", json={"query": "x"}).status_code == 404
    big = [{"id": f"b{i}", "text": "t"} for i in range(1001)]
    assert httpx.post(u + "/documents", json=big, headers=server.headers).status_code == 413
    huge = b'[{"id": "h", "text": "' + b"a" * (17 * 2**20) + b'"}]'
    r = httpx.post(u + "/documents", content=huge, headers={**server.headers, "content-type": "application/json"})
    assert r.status_code == 413
    r = httpx.post(u + "/documents", json=[{"id": "e1", "text": ""}], headers=server.headers)
    assert r.status_code == 400 and "documents[0]" in r.json()["error"]["message"]
    r = httpx.post(u + "/documents", content=b'{"id": "n1", "text": "ok"}\nnot json',
                   headers={**server.headers, "content-type": "application/x-ndjson"})
    assert r.status_code == 400 and "line 2" in r.json()["error"]["message"]
    r = httpx.post(u + "/documents", content=b"a,b", headers={**server.headers, "content-type": "text/csv"})
    assert r.status_code == 415
    r = httpx.post(server.url + "/v1/collections", json={"name": "sci", "dense": False}, headers=server.headers)
    assert r.status_code == 409
    # none of the refused writes changed anything
    httpx.post(u + "/commit", headers=server.headers, timeout=60)
    assert httpx.get(u).json()["documents"] == 200


def test_ndjson_upsert_delete_and_commit(server):
    u = server.url + "/v1/collections/sci"
    body = b'{"id": "nd1", "text": "zyzzyva beetle"}\n\n{"id": "nd2", "title": "T", "text": "zyzzyva weevil"}\n'
    r = httpx.post(u + "/documents", content=body, headers={**server.headers, "content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["acknowledged"] == 2
    httpx.post(u + "/commit", headers=server.headers, timeout=60)
    hits = httpx.post(u + "/search", json={"query": "zyzzyva"}).json()["results"][0]["hits"]
    assert sorted(h["id"] for h in hits) == ["nd1", "nd2"]
    assert httpx.delete(u + "/documents/nd1", headers=server.headers).status_code == 202
    assert httpx.post(u + "/delete", json={"ids": ["nd2"]}, headers=server.headers).status_code == 202
    httpx.post(u + "/commit", headers=server.headers, timeout=60)
    assert httpx.post(u + "/search", json={"query": "zyzzyva"}).json()["results"][0]["hits"] == []


def test_searches_never_see_half_a_commit(server):
    """Writers add batches of 7 docs sharing a rare token; readers must always see whole batches."""
    u = server.url + "/v1/collections/sci"
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader():
        with httpx.Client() as c:
            while not stop.is_set():
                r = c.post(u + "/search", json={"query": "quokkaword", "k": 1000, "include_text": False,
                                                "highlight": False})
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                seen.append(len(r.json()["results"][0]["hits"]))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    with httpx.Client(headers=server.headers, timeout=60) as c:
        for b in range(6):
            docs = [{"id": f"q{b}-{i}", "text": f"quokkaword batch {b} item {i}"} for i in range(7)]
            assert c.post(u + "/documents", json=docs).status_code == 202
            assert c.post(u + "/commit").status_code == 200
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert seen and all(n % 7 == 0 for n in seen), sorted(set(seen))
    assert max(seen) <= 42
    assert httpx.post(u + "/search", json={"query": "quokkaword", "k": 100}).json()["results"][0]["hits"].__len__() == 42


def test_read_auth_and_page(tmp_path):
    with ServerProcess(tmp_path, api_key=KEY, args=["--read-auth"]) as srv:
        assert httpx.get(srv.url + "/v1/collections").status_code == 401
        assert httpx.get(srv.url + "/v1/collections", headers=srv.headers).status_code == 200
        assert httpx.get(srv.url + "/v1/health").status_code == 200
        page = httpx.get(srv.url + "/")
        assert page.status_code == 200 and 'id="query"' in page.text
        assert httpx.get(srv.url + "/page/app.js").status_code == 200
        assert httpx.get(srv.url + "/page/../app.py").status_code == 404
        # CORS is off by default: no allow-origin header on a cross-origin request
        r = httpx.get(srv.url + "/v1/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_commit_after_restart_returns_at_once(tmp_path):
    """Sequence numbers persist across restarts; a commit with nothing new must not wait for old ones."""
    with ServerProcess(tmp_path, api_key=KEY) as srv:
        httpx.post(srv.url + "/v1/collections", json={"name": "c", "dense": False}, headers=srv.headers)
        httpx.post(srv.url + "/v1/collections/c/documents", json=[{"id": "a", "text": "hello"}], headers=srv.headers)
        assert httpx.post(srv.url + "/v1/collections/c/commit", headers=srv.headers, timeout=60).status_code == 200
    with ServerProcess(tmp_path, api_key=KEY) as srv:
        r = httpx.post(srv.url + "/v1/collections/c/commit", headers=srv.headers, timeout=10)
        assert r.status_code == 200 and r.json()["documents"] == 1


def test_supplied_vectors_are_logged_replayed_and_searched(tmp_path):
    """Documents with their own vectors: checked before the acknowledgement, kept through a SIGKILL (the
    write-ahead log replays them), searched with query vectors; the model is never needed."""
    import numpy as np

    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [{"id": f"v{i}", "text": f"vector document {i}", "vector": x[i].tolist()} for i in range(20)]
    cfg = {"dense": {"model": str(tmp_path / "no-such-model")}}
    srv = ServerProcess(tmp_path / "root", api_key=KEY, args=["--commit-interval", "3600"]).start()
    h = srv.headers
    try:
        r = httpx.post(srv.url + "/v1/collections", json={"name": "vec", "config": cfg}, headers=h)
        assert r.status_code == 201, r.text
        url = srv.url + "/v1/collections/vec"
        assert httpx.post(url + "/documents", json=docs[:12], headers=h).status_code == 202
        bad = [
            ([{**docs[12], "vector": x[12, :15].tolist()}], "dimension 15"),  # the first batch fixed 16
            ([docs[12], {k: v for k, v in docs[13].items() if k != "vector"}], "for every document"),
            ('[{"id": "n", "text": "t", "vector": [' + ", ".join(["NaN"] * 16) + "]}]", "NaN"),  # raw: not JSON
        ]
        for body, message in bad:
            if isinstance(body, str):
                r = httpx.post(url + "/documents", content=body, headers={**h, "Content-Type": "application/json"})
            else:
                r = httpx.post(url + "/documents", json=body, headers=h)
            assert r.status_code in (400, 422) and message in r.text, r.text
        srv.kill()  # acknowledged, never committed: the log must replay the vectors
        srv = ServerProcess(tmp_path / "root", api_key=KEY, args=["--commit-interval", "3600"]).start()
        assert httpx.post(url.replace(url.split("/v1")[0], srv.url) + "/commit", headers=srv.headers,
                          timeout=60).json()["documents"] == 12
        url = srv.url + "/v1/collections/vec"
        r = httpx.post(url + "/search", json={"query_vector": x[7].tolist(), "method": "dense", "k": 3})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["hits"][0]["id"] == "v7"
        r = httpx.post(url + "/search", json={"query_vectors": [x[3].tolist(), x[5].tolist()], "method": "dense",
                                              "k": 1, "include_text": False})
        assert [q["hits"][0]["id"] for q in r.json()["results"]] == ["v3", "v5"]
        r = httpx.post(url + "/search", json={"query_vector": x[3, :8].tolist(), "method": "dense"})
        assert r.status_code == 400 and "query_vectors must have shape (1, 16)" in r.text
        r = httpx.post(url + "/search", json={"query_vector": x[3].tolist(), "method": "bm25"})
        assert r.status_code == 422 and "needs query texts" in r.text
        doc = httpx.get(url + "/documents/v7").json()
        assert "vector" not in doc["metadata"]  # the vector is not stored as metadata
    finally:
        srv.stop()
