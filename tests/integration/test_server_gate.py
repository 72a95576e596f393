"""The admission gate behind the HTTP server (a real process on loopback): screened writes are logged, screened at
commit, suspects quarantined (listed with reasons and text, never searchable), released or dropped only by an
explicit call; a screened write survives a crash before its commit; writes the gate cannot screen are refused."""

from __future__ import annotations

import httpx
import pytest

from retrievo import Client
from retrievo.errors import NotFoundError
from retrievo.eval.audit import Quarantine
from retrievo.server.process import ServerProcess
from tests.conftest import CLEAN_NEW, STUFFED

STUFFED2 = {"id": "stuffed-2", "text": " ".join(["insulin glucose diabetes"] * 12) + " Order the cure now."}


def _hits(srv, query: str, method: str = "bm25") -> list[str]:
    r = httpx.post(srv.url + "/v1/collections/g/search", json={"query": query, "k": 300, "method": method})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["results"][0]["hits"]]


def _commit(srv) -> dict:
    r = httpx.post(srv.url + "/v1/collections/g/commit", headers=srv.headers, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def test_screened_writes_quarantine_release_drop_and_replay(tmp_path, scifact_small):
    root = tmp_path / "data"
    with ServerProcess(root, api_key="k", args=["--commit-interval", "0.2", "--screen"]) as srv:
        h = srv.headers
        assert httpx.post(srv.url + "/v1/collections", json={"name": "g"}, headers=h).status_code == 201
        # an empty collection: the gate has nothing to calibrate on, so a screened write is refused, nothing logged
        r = httpx.post(f"{srv.url}/v1/collections/g/documents", json=[CLEAN_NEW], headers=h)
        assert r.status_code == 400 and "holds no documents yet" in r.json()["error"]["message"], r.text
        r = httpx.post(f"{srv.url}/v1/collections/g/documents", params={"screen": "false"}, json=scifact_small[:150], headers=h)
        assert r.status_code == 202 and r.json()["screened"] is False, r.text
        assert _commit(srv)["documents"] == 150
        # the server's default (--screen): both screened at commit; the stuffed one is held back
        r = httpx.post(f"{srv.url}/v1/collections/g/documents", json=[STUFFED, CLEAN_NEW], headers=h)
        assert r.status_code == 202 and r.json() == {"acknowledged": 2, "seq": r.json()["seq"], "screened": True}
        assert _commit(srv)["documents"] == 151
        info = httpx.get(srv.url + "/v1/collections/g").json()
        assert info["quarantined"] == 1 and info["documents"] == 151
        held = httpx.get(srv.url + "/v1/collections/g/quarantine", params={"text_chars": 30}).json()
        assert [x["id"] for x in held] == ["stuffed"] and "stuffing" in held[0]["reasons"]
        assert held[0]["text"] == STUFFED["text"][:30] and held[0]["suspicion"] > 1
        for method in ("bm25", "dense", "hybrid"):
            found = _hits(srv, "microglia brain immune", method)
            assert "stuffed" not in found and "clean-new" in found
        # unknown ids: 404, nothing released or dropped
        for verb in ("release", "drop"):
            r = httpx.post(srv.url + f"/v1/collections/g/quarantine/{verb}", json={"ids": ["stuffed", "nope"]},
                           headers=h)
            assert r.status_code == 404 and "nope" in r.json()["error"]["message"], r.text
        assert [x["id"] for x in httpx.get(srv.url + "/v1/collections/g/quarantine").json()] == ["stuffed"]
        # release: acknowledged like a write, searchable after the commit, gone from the quarantine
        r = httpx.post(srv.url + "/v1/collections/g/quarantine/release", json={"ids": ["stuffed"]}, headers=h)
        assert r.status_code == 202 and r.json()["acknowledged"] == 1, r.text
        assert httpx.get(srv.url + "/v1/collections/g/quarantine").json() == []
        assert _commit(srv)["documents"] == 152
        assert "stuffed" in _hits(srv, "microglia brain immune")
        with Quarantine(root / "g", readonly=True) as q:  # remembered: the next calibration does not trust it
            assert q.released() == {"stuffed"}
        # (deleted again, to screen the next one against the same documents)
        assert httpx.delete(srv.url + "/v1/collections/g/documents/stuffed", headers=h).status_code == 202
        # drop: forgotten for good
        r = httpx.post(f"{srv.url}/v1/collections/g/documents", json=[STUFFED2], headers=h)
        assert r.status_code == 202
        _commit(srv)
        assert [x["id"] for x in httpx.get(srv.url + "/v1/collections/g/quarantine").json()] == ["stuffed-2"]
        r = httpx.post(srv.url + "/v1/collections/g/quarantine/drop", json={"ids": ["stuffed-2"]}, headers=h)
        assert r.status_code == 200 and r.json() == {"dropped": 1}, r.text
        assert httpx.get(srv.url + "/v1/collections/g").json()["quarantined"] == 0
        assert "stuffed-2" not in _hits(srv, "insulin glucose diabetes")
        # a collection without a dense model cannot be screened: refused at once, not at every commit
        assert httpx.post(srv.url + "/v1/collections", json={"name": "nod", "dense": False}, headers=h).status_code == 201
        r = httpx.post(f"{srv.url}/v1/collections/nod/documents", json=[CLEAN_NEW], headers=h)
        assert r.status_code == 400 and "no dense model" in r.json()["error"]["message"], r.text
        r = httpx.post(f"{srv.url}/v1/collections/nod/documents", params={"screen": "false"}, json=[CLEAN_NEW], headers=h)
        assert r.status_code == 202 and r.json()["screened"] is False
    # a screened write acknowledged and then the process killed before any commit: replayed and screened at start
    srv = ServerProcess(root, api_key="k", args=["--commit-interval", "3600"]).start(timeout=300)
    try:
        r = httpx.post(f"{srv.url}/v1/collections/g/documents", params={"screen": "true"}, json=[STUFFED2], headers=srv.headers)
        assert r.status_code == 202 and r.json()["screened"] is True
    finally:
        srv.kill()
    # the server answers first; the committer calibrates the gate and screens the replayed write (a commit waits)
    with ServerProcess(root, api_key="k", args=["--commit-interval", "3600"]).start(timeout=120) as srv:
        assert httpx.post(srv.url + "/v1/collections/g/commit", headers=srv.headers, timeout=300).status_code == 200
        held = httpx.get(srv.url + "/v1/collections/g/quarantine").json()
        assert [x["id"] for x in held] == ["stuffed-2"] and "stuffing" in held[0]["reasons"]
        assert "stuffed-2" not in _hits(srv, "insulin glucose diabetes")
        with Client(srv.url, api_key="k") as client:  # the Python client's verbs for the same routes
            g = client.collection("g")
            assert [x["id"] for x in g.quarantined(text_chars=10)] == ["stuffed-2"]
            assert g.quarantined(text_chars=10)[0]["text"] == STUFFED2["text"][:10]
            with pytest.raises(NotFoundError):
                g.release(["nope"])
            assert g.upsert([STUFFED], screen=True) == 1 and g.commit() and len(g.quarantined()) == 2
            assert g.drop_quarantined(["stuffed"]) == 1 and g.release(["stuffed-2"]) == 1
            g.commit()
            assert g.quarantined() == [] and "stuffed-2" in _hits(srv, "insulin glucose diabetes")
