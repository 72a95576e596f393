"""``retrievo serve --workers 2``: one worker writes each collection, the other logs writes for it; every
acknowledged document is committed and seen by both, from any connection."""

from __future__ import annotations

import httpx

from retrievo import Collection, CollectionConfig
from retrievo.server.process import ServerProcess

KEY = "workers-key"


def test_two_workers_take_writes_and_agree(tmp_path, scifact_small):
    coll = Collection.create(tmp_path / "sci", CollectionConfig(dense=None))
    coll.add(scifact_small[:50])
    coll.commit()
    coll.close()
    srv = ServerProcess(tmp_path, api_key=KEY, args=["--workers", "2", "--commit-interval", "0.3"]).start()
    h = {"Authorization": f"Bearer {KEY}"}
    u = srv.url + "/v1/collections/sci"
    try:
        statuses = []
        for i in range(40):  # a new connection each: the two workers share them
            r = httpx.post(u + "/documents", json=[{"id": f"w{i}", "text": f"zyzzyva worker document {i}"}],
                           headers=h, timeout=60)
            statuses.append(r.status_code)
        assert statuses == [202] * 40
        for _ in range(4):  # /commit from either worker waits for the writer's commit
            assert httpx.post(u + "/commit", headers=h, timeout=60).json()["documents"] == 90
        for _ in range(6):  # and either worker's reader sees it all
            hits = httpx.post(u + "/search", json={"query": "zyzzyva", "k": 100, "include_text": False},
                              timeout=60).json()["results"][0]["hits"]
            assert sorted(h_["id"] for h_ in hits) == sorted(f"w{i}" for i in range(40))
            listed = httpx.get(srv.url + "/v1/collections", timeout=60).json()
            assert listed[0]["locked"] is None  # a sibling worker writing is not a lock to report
        add = httpx.post(u + "/documents?if_absent=true", json=[{"id": "w3", "text": "again"}], headers=h, timeout=60)
        assert add.status_code == 400 and "already exist" in add.text
    finally:
        srv.stop()
    assert len(Collection.open(tmp_path / "sci", readonly=True)) == 90
