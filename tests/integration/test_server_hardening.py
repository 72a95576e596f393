"""The server under hostile and busy traffic (a real server process on loopback for each case):

- what would break a later read is refused at the door with 400 (deep metadata, invalid Unicode, huge
  integers), and so is what breaks a filter (NaN operands, filters nested past the limit), while large
  filters work; every error is a JSON body and the connection stays usable;
- an unexpected error answers 500 and keeps the connection (Starlette's last-resort handler used to close
  it, so the client's next request on it failed);
- returned text and highlighting are bounded, and a search past the time budget answers 503;
- a collection that another process writes is served read-only and reported; the server starts anyway, the
  other collections take writes, and reads never take a collection's write lock; no path leaves the server;
- too many uncommitted writes answer 429 with Retry-After; a full disk answers 503 and fails the health check.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading

import httpx
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.server.process import ServerProcess

KEY = "hardening-key"
H = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def lexical(root, name, docs):
    coll = Collection.create(root / name, CollectionConfig(dense=None))
    coll.add(docs)
    coll.commit()
    coll.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, scifact_small):
    root = tmp_path_factory.mktemp("hard")
    docs = [{**d, "metadata": {"tags": [f"t{i % 500}", "all"], "n": i}} for i, d in enumerate(scifact_small[:200])]
    lexical(root, "sci", docs)
    srv = ServerProcess(root, api_key=KEY, args=["--commit-interval", "0.2"]).start()
    yield srv, root
    srv.stop()


def test_what_would_break_a_read_is_refused_at_the_door(served):
    srv, _ = served
    u = srv.url + "/v1/collections/sci"
    with httpx.Client(headers=H, timeout=60) as c:
        bad = [
            ([{"id": "deep", "text": "t", "metadata": nested(500)}], "nested deeper than 16"),
            ('[{"id": "sur", "text": "bad \\ud800 text"}]', "not valid Unicode"),
            ('[{"id": "\\udfff", "text": "t"}]', "field 'id' is not valid Unicode"),
            ([{"id": "big", "text": "t", "metadata": {"n": 2**63 + 1}}], "outside ±2^53"),
        ]
        for body, message in bad:
            r = (c.post(u + "/documents", content=body) if isinstance(body, str) else c.post(u + "/documents", json=body))
            assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
        deep = '[{"id": "deeper", "text": "t", "metadata": ' + '{"x": ' * 2000 + "1" + "}" * 2000 + "}]"
        r = c.post(u + "/documents", content=deep)
        assert r.status_code in (400, 422) and r.json()["error"]["message"], r.text  # never a 500
        r = c.post(u + "/delete", content='{"ids": ["ok", "\\ud800"]}')
        assert r.status_code in (400, 422) and "nicode" in r.text, r.text
        assert c.post(u + "/commit").status_code == 200
        assert c.get(u).json()["documents"] == 200  # nothing of it was logged
        hits = c.post(u + "/search", json={"query": "cells", "k": 5}).json()["results"][0]["hits"]
        assert len(hits) == 5 and all(h["metadata"] for h in hits)


def test_filters_are_bounded_and_large_ones_work(served):
    srv, _ = served
    u = srv.url + "/v1/collections/sci/search"
    with httpx.Client(timeout=60) as c:
        r = c.post(u, content='{"query": "cells", "filter": {"n": {"$gt": NaN}}}', headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422), r.text
        r = c.post(u, json={"query": "cells", "filter": {"n": {"$gt": 2**64}}})
        assert r.status_code == 400 and "outside ±2^53" in r.text
        flt: dict = {"n": {"$gte": 0}}
        for _ in range(100):
            flt = {"$and": [flt]}
        r = c.post(u, json={"query": "cells", "filter": flt})
        assert r.status_code == 400 and "nested deeper than 32" in r.json()["error"]["message"], r.text
        r = c.post(u, content='{"query": "cells", "filter": ' + '{"$not": ' * 5000 + '{"n": 1}' + "}" * 5001,
                   headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422) and r.json()["error"]["message"], r.text  # a clean 4xx, not a 500
        r = c.post(u, json={"query": "cells", "filter": {"n": {"$in": list(range(10_001))}}})
        assert r.status_code == 400 and "more than 10000" in r.text
        tags = [f"t{i}" for i in range(2, 498)] + [f"x{i}" for i in range(1500)]  # 1,996 values
        r = c.post(u, json={"query": "common OR cells OR the", "k": 1000, "filter": {"tags": {"$in": tags}},
                            "include_text": False})
        assert r.status_code == 200, r.text
        ids = {h["id"] for h in r.json()["results"][0]["hits"]}
        every = c.post(u, json={"query": "common OR cells OR the", "k": 1000, "include_text": False}).json()
        want = {h["id"] for h in every["results"][0]["hits"]}
        meta = {h["id"]: h for h in c.post(srv.url + "/v1/collections/sci/lookup", json={"ids": sorted(want)}).json()["documents"]}
        assert ids == {i for i in want if meta[i]["metadata"]["tags"][0] in set(tags)}


@contextlib.contextmanager
def in_thread(app):
    """``app`` served by uvicorn on loopback in a thread; yields a keep-alive connection to it."""
    import uvicorn

    from retrievo.server.process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        yield conn
        conn.close()
    finally:
        server.should_exit = True
        thread.join(30)


def ask(conn, method, path, body=None, headers=None, **kw):
    conn.request(method, path, body=body, headers=headers or {}, **kw)
    r = conn.getresponse()
    return r.status, json.loads(r.read()), dict(r.getheaders())


def test_an_unexpected_error_keeps_the_connection(tmp_path, scifact_small):
    """A route made to fail in the real app (served by uvicorn on loopback): 500 with a JSON body, and the
    same connection answers the next request."""
    from retrievo.server import ServerSettings, create_app

    lexical(tmp_path, "sci", scifact_small[:20])
    app = create_app(tmp_path, ServerSettings(api_key=KEY))

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with in_thread(app) as conn:
        status, body, _ = ask(conn, "GET", "/v1/boom")
        assert status == 500 and body["error"]["type"] == "InternalError"
        sock = conn.sock
        status, body, _ = ask(conn, "GET", "/v1/health")
        assert status == 200 and body["status"] == "ok"
        assert conn.sock is sock and sock is not None  # the same connection, not a new one


def test_searches_answered_in_front_of_the_framework(tmp_path, scifact_small, monkeypatch):
    """A valid search is answered before FastAPI's stack (no read key, no CORS to add); everything else a
    search can meet is answered as the route answers it, on the same connection: a chunked body, a body the
    model refuses, an error of the search, an unexpected error. With CORS or a read key the route serves."""
    from retrievo.search.searcher import Searcher
    from retrievo.server import ServerSettings, create_app

    lexical(tmp_path, "sci", scifact_small[:50])
    app = create_app(tmp_path, ServerSettings(api_key=KEY))
    assert app.fast_search is not None
    path = "/v1/collections/sci/search"
    plain = json.dumps({"query": "microglia cells", "k": 3, "include_text": False, "highlight": False})
    with in_thread(app) as conn:
        status, first, headers = ask(conn, "POST", path, plain, {"Content-Type": "application/json"})
        assert status == 200 and len(first["results"][0]["hits"]) == 3 and headers["content-type"] == "application/json"
        sock = conn.sock
        status, chunked, _ = ask(conn, "POST", path, iter([plain[:10].encode(), plain[10:].encode()]),
                                 {"Content-Type": "application/json"}, encode_chunked=True)
        assert status == 200 and chunked["results"] == first["results"]  # no declared length: the route
        status, body, _ = ask(conn, "POST", path, plain)  # no JSON content type: what the route says
        assert status == 422 and "valid dictionary" in body["error"]["message"]
        json_type = {"Content-Type": "application/json"}
        status, body, _ = ask(conn, "POST", path, json.dumps({"query": "x", "k": 0}), json_type)
        assert status == 422 and body["error"]["type"] == "ValidationError" and "k" in body["error"]["message"]
        status, body, _ = ask(conn, "POST", path, json.dumps({"query": "x", "method": "dense"}), json_type)
        assert status == 400 and body["error"]["type"] == "InvalidInputError"  # the search refused it
        assert str(tmp_path) not in body["error"]["message"]
        status, body, _ = ask(conn, "POST", "/v1/collections/absent/search", plain, json_type)
        assert status == 404 and body["error"]["type"] == "NotFoundError"

        def boom(*args, **kwargs):
            raise RuntimeError("a bug in the search")

        with monkeypatch.context() as m:
            m.setattr(Searcher, "search", boom)
            status, body, _ = ask(conn, "POST", path, plain, json_type)
        assert status == 500 and body["error"]["type"] == "InternalError" and "a bug" not in body["error"]["message"]
        status, again, _ = ask(conn, "POST", path, plain, json_type)
        assert status == 200 and again["results"] == first["results"] and conn.sock is sock
        assert ask(conn, "GET", "/v1/stats")[1]["requests"] >= 7  # front-path answers are counted too

    for settings in (ServerSettings(api_key=KEY, cors_origins=["http://ok.example"]),
                     ServerSettings(api_key=KEY, read_auth=True)):
        app = create_app(tmp_path, settings)
        assert app.fast_search is None
        with in_thread(app) as conn:
            status, body, headers = ask(conn, "POST", path, plain, {"Origin": "http://ok.example", **H})
            assert status == 200 and body["results"] == first["results"]
            assert (headers.get("access-control-allow-origin") == "http://ok.example") == bool(settings.cors_origins)
            if settings.read_auth:
                assert ask(conn, "POST", path, plain, {"Content-Type": "application/json"})[0] == 401


def test_returned_text_is_bounded_and_searches_have_a_time_budget(tmp_path, scifact_small):
    big = {"id": "big", "title": "giant", "text": ("microglia " * 20) + "x" * 2_000_000 + " microglia" * 50_000}
    lexical(tmp_path, "sci", [big, *scifact_small[:30]])
    (tmp_path / "settings.json").write_text(json.dumps({"max_text_chars": 5000, "max_spans": 7,
                                                        "max_response_chars": 6000}))
    srv = ServerProcess(tmp_path, api_key=KEY, args=["--config", str(tmp_path / "settings.json")]).start()
    try:
        r = httpx.post(srv.url + "/v1/collections/sci/search", json={"query": "microglia", "k": 3}, timeout=60)
        assert r.status_code == 200, r.text
        hits = r.json()["results"][0]["hits"]
        first = hits[0]
        assert first["id"] == "big" and first["text_truncated"] is True and len(first["text"]) == 5000
        assert len(first["highlights"]["text"]) == 7
        assert sum(len(h.get("text") or "") + len(h.get("title") or "") for h in hits) <= 6000
    finally:
        srv.stop()
    (tmp_path / "settings.json").write_text(json.dumps({"search_timeout": 1e-9}))
    srv = ServerProcess(tmp_path, api_key=KEY, args=["--config", str(tmp_path / "settings.json")]).start()
    try:
        r = httpx.post(srv.url + "/v1/collections/sci/search", json={"query": "microglia", "k": 3}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["type"] == "SearchTimeout" and "budget" in r.text
    finally:
        srv.stop()


def test_a_collection_written_elsewhere_is_served_read_only(tmp_path, scifact_small):
    lexical(tmp_path, "busy", scifact_small[:30])
    lexical(tmp_path, "free", scifact_small[30:60])
    cli_job = Collection.open(tmp_path / "busy")
    cli_job.lock_for_writing()  # as a running `retrievo index` holds it
    srv = ServerProcess(tmp_path, api_key=KEY).start()  # starts anyway
    try:
        with httpx.Client(headers=H, timeout=60) as c:
            listed = {s["name"]: s for s in c.get(srv.url + "/v1/collections").json()}
            assert set(listed) == {"busy", "free"} and listed["busy"]["locked"] and not listed["free"]["locked"]
            assert str(tmp_path) not in json.dumps(listed)
            r = c.post(srv.url + "/v1/collections/busy/search", json={"query": "cells"})
            assert r.status_code == 200 and r.json()["results"][0]["hits"]
            r = c.post(srv.url + "/v1/collections/busy/documents", json=[{"id": "n", "text": "new"}])
            assert r.status_code == 409 and "another process" in r.json()["error"]["message"]
            assert str(tmp_path) not in r.text
            assert c.post(srv.url + "/v1/collections/free/documents", json=[{"id": "n", "text": "new"}]).status_code == 202
            cli_job.add([{"id": "from-cli", "text": "zyzzyva written by the other process"}])
            cli_job.commit()  # the reader sees the other process's commit
            hits = c.post(srv.url + "/v1/collections/busy/search", json={"query": "zyzzyva"}).json()["results"][0]["hits"]
            assert [h["id"] for h in hits] == ["from-cli"]
            cli_job.close()  # the job ends: writes are taken again
            assert c.post(srv.url + "/v1/collections/busy/documents", json=[{"id": "n", "text": "new"}]).status_code == 202
            # a collection that appears after start-up is read without taking its lock
            lexical(tmp_path, "later", scifact_small[60:70])
            assert c.get(srv.url + "/v1/collections/later").json()["documents"] == 10
            assert c.post(srv.url + "/v1/collections/later/search", json={"query": "cells"}).status_code == 200
            other = Collection.open(tmp_path / "later")
            other.lock_for_writing()  # free: the server's reads did not take it
            other.close()
            r = c.post(srv.url + "/v1/collections/free/search", json={"query": "x", "min_probability": 0.5})
            assert r.status_code == 400 and "no calibration" in r.text and str(tmp_path) not in r.text
    finally:
        srv.stop()


def test_back_pressure_and_a_full_disk(tmp_path, scifact_small):
    lexical(tmp_path, "sci", scifact_small[:20])
    (tmp_path / "settings.json").write_text(json.dumps({"max_pending": 5, "commit_interval": 3600}))
    srv = ServerProcess(tmp_path, api_key=KEY, args=["--config", str(tmp_path / "settings.json")]).start()
    u = srv.url + "/v1/collections/sci"
    try:
        with httpx.Client(headers=H, timeout=60) as c:
            assert c.post(u + "/documents", json=[{"id": f"p{i}", "text": "t"} for i in range(3)]).status_code == 202
            r = c.post(u + "/documents", json=[{"id": f"q{i}", "text": "t"} for i in range(3)])
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
            assert c.post(u + "/commit").status_code == 200
            assert c.post(u + "/documents", json=[{"id": f"q{i}", "text": "t"} for i in range(3)]).status_code == 202
            assert c.post(u + "/commit").json()["documents"] == 26
    finally:
        srv.stop()
    srv = ServerProcess(tmp_path, api_key=KEY, args=["--commit-interval", "3600"], file_size_limit=3 * 2**20).start()
    try:
        with httpx.Client(headers=H, timeout=60) as c:
            statuses = []
            for i in range(40):  # 400 kB a request: the log outgrows the 3 MB limit
                r = c.post(u.replace(u.split("/v1")[0], srv.url) + "/documents",
                           json=[{"id": f"big{i}", "text": "lorem ipsum " * 33_000}])
                statuses.append(r.status_code)
                if r.status_code != 202:
                    break
            assert statuses[0] == 202 and statuses[-1] == 503, statuses
            assert "cannot log writes" in r.json()["error"]["message"]
            health = c.get(srv.url + "/v1/health")
            assert health.status_code == 503 and "disk" in health.json()["error"]["message"]
            assert c.post(srv.url + "/v1/collections/sci/search", json={"query": "cells"}).status_code == 200
    finally:
        srv.kill()


def test_a_taken_port_is_said_at_once_and_a_chosen_one_is_replaced(tmp_path):
    """The server takes its port before anything slow starts (Ray, replaying logs), so a taken port is a clear
    error at once; ServerProcess replaces a port it chose that another process took first (Ray's workers take
    ephemeral ports), and says why a start failed."""
    import socket
    import subprocess
    import sys

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "retrievo", "serve", str(tmp_path / "root"), "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr and not (tmp_path / "root").exists()  # nothing started or made
        with pytest.raises(RuntimeError, match=f"status 2 before it was ready:\n.*cannot listen on 127.0.0.1:{port}"):
            ServerProcess(tmp_path / "root", port=port, log=tmp_path / "server.log").start()  # read back from it
        srv = ServerProcess(tmp_path / "root")
        srv.port = port  # as if another process took the port this object chose
        with srv:
            assert srv.port != port and httpx.get(srv.url + "/v1/health").status_code == 200
