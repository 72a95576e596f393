"""A real server takes a stream of acknowledged upserts and deletes and is SIGKILLed at random points.

After every restart: the collection opens, every acknowledged upsert is there (unless an acknowledged
delete came after it), every acknowledged delete is gone, and searches work. The commit interval is
short so kills land during appends, during commits and between them.
"""

from __future__ import annotations

import random
import threading
import time

import httpx

from retrievo.server.process import ServerProcess

KILLS = 20


def _writer(url: str, headers: dict, prefix: str, acked_up: dict, acked_del: set, stop: threading.Event,
            rng: random.Random) -> None:
    with httpx.Client(headers=headers, timeout=10) as c:
        i = 0
        while not stop.is_set():
            if acked_up and rng.random() < 0.15:
                victim = rng.choice(sorted(acked_up))
                try:
                    r = c.post(url + "/delete", json={"ids": [victim]})
                except httpx.HTTPError:  # unacknowledged: it may or may not have been logged
                    acked_up.pop(victim, None)
                    return
                if r.status_code == 202:
                    acked_del.add(victim)
                    acked_up.pop(victim, None)
                continue
            docs = [{"id": f"{prefix}-{i}-{j}", "text": f"crashword {prefix} number {i} part {j}",
                     "metadata": {"n": i}} for j in range(rng.randint(1, 5))]
            i += 1
            try:
                r = c.post(url + "/documents", json=docs)
            except httpx.HTTPError:
                return  # the server died mid-request: not acknowledged
            assert r.status_code == 202, r.text
            for d in docs:
                acked_up[d["id"]] = d["text"]
                acked_del.discard(d["id"])


def test_acknowledged_writes_survive_sigkill(tmp_path):
    rng = random.Random(1234)
    srv = ServerProcess(tmp_path, api_key="k", args=["--commit-interval", "0.05"])
    srv.start()
    assert httpx.post(srv.url + "/v1/collections", json={"name": "c", "dense": False},
                      headers=srv.headers).status_code == 201
    url = srv.url + "/v1/collections/c"
    acked_up: dict[str, str] = {}
    acked_del: set[str] = set()
    lost_total = 0
    for kill in range(KILLS):
        stop = threading.Event()
        writers = [threading.Thread(target=_writer, args=(url, srv.headers, f"k{kill}w{w}", acked_up, acked_del,
                                                          stop, random.Random(rng.random())))
                   for w in range(2)]
        for t in writers:
            t.start()
        time.sleep(rng.uniform(0.2, 1.0))
        srv.kill()
        stop.set()
        for t in writers:
            t.join()
        srv.start()  # replays the write-ahead log before it answers
        ids = sorted(acked_up)
        found = []
        with httpx.Client(timeout=30) as c:
            for s in range(0, len(ids), 500):
                r = c.post(url + "/lookup", json={"ids": ids[s:s + 500]})
                assert r.status_code == 200, r.text
                found += [d["id"] for d in r.json()["documents"]]
            lost = set(ids) - set(found)
            lost_total += len(lost)
            assert not lost, f"kill {kill}: {len(lost)} acknowledged documents lost, e.g. {sorted(lost)[:5]}"
            gone = c.post(url + "/lookup", json={"ids": sorted(acked_del)[:1000]}).json()["documents"]
            assert not gone, f"kill {kill}: acknowledged deletes came back: {[d['id'] for d in gone][:5]}"
            r = c.post(url + "/search", json={"query": "crashword", "k": 5})
            assert r.status_code == 200 and (len(r.json()["results"][0]["hits"]) > 0) == bool(acked_up)
    srv.stop()
    assert lost_total == 0
    assert len(acked_up) > 100, "the writers must have had a real stream of acknowledged upserts"
