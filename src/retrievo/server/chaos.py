"""Kill a real server with SIGKILL while clients write to it, and count what was lost.

:func:`crash_loop` is the proof behind the server's durability claim; the test suite runs it with 20
kills and ``benchmarks/bench_server.py`` reports its numbers. Each round starts writer threads that send
upserts (1-5 new documents) and deletes of acknowledged documents, kills the server after a random
pause, restarts it (which replays the write-ahead log) and checks that every acknowledged upsert is
there unless an acknowledged delete followed it, that every acknowledged delete is gone, and that a
search works. A request that died with the server was never acknowledged, so its outcome may go
either way and is not counted.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from retrievo.server.process import ServerProcess

__all__ = ["CrashReport", "crash_loop"]


@dataclass
class CrashReport:
    kills: int = 0
    restarts_ok: int = 0
    acknowledged_upserts: int = 0
    acknowledged_deletes: int = 0
    lost_upserts: int = 0
    resurrected_deletes: int = 0
    searches_ok: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.restarts_ok == self.kills and self.searches_ok == self.kills


class _Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[str] = set()  # acknowledged upserts not deleted since
        self.deleted: set[str] = set()  # acknowledged deletes not re-added since
        self.n_up = 0
        self.n_del = 0


def _writer(url: str, headers: dict, prefix: str, ledger: _Ledger, stop: threading.Event,
            rng: random.Random) -> None:
    with httpx.Client(headers=headers, timeout=30) as c:
        i = 0
        while not stop.is_set():
            with ledger.lock:
                victim = rng.choice(sorted(ledger.live)) if ledger.live and rng.random() < 0.15 else None
                if victim is not None:
                    ledger.live.discard(victim)  # unknown until the delete is acknowledged
            if victim is not None:
                try:
                    r = c.post(url + "/delete", json={"ids": [victim]})
                except httpx.HTTPError:
                    return
                if r.status_code == 202:
                    with ledger.lock:
                        ledger.deleted.add(victim)
                        ledger.n_del += 1
                continue
            docs = [{"id": f"{prefix}-{i}-{j}", "text": f"crashword {prefix} number {i} part {j}",
                     "metadata": {"n": i}} for j in range(rng.randint(1, 5))]
            i += 1
            try:
                r = c.post(url + "/documents", json=docs)
            except httpx.HTTPError:
                return  # died with the server: never acknowledged
            if r.status_code == 202:
                with ledger.lock:
                    ledger.live.update(d["id"] for d in docs)
                    ledger.n_up += len(docs)


def crash_loop(root: str | Path, kills: int = 20, seed: int = 0, writers: int = 2,
               pause: tuple[float, float] = (0.2, 1.0), commit_interval: float = 0.05) -> CrashReport:
    """Run ``kills`` rounds of write-then-SIGKILL against a fresh lexical collection under ``root``."""
    rng = random.Random(seed)
    rep = CrashReport()
    t0 = time.perf_counter()
    srv = ServerProcess(root, api_key="chaos-key", args=["--commit-interval", str(commit_interval)]).start()
    r = httpx.post(srv.url + "/v1/collections", json={"name": "chaos", "dense": False}, headers=srv.headers)
    if r.status_code != 201:
        srv.stop()
        raise RuntimeError(f"could not create the collection: {r.text}")
    url = srv.url + "/v1/collections/chaos"
    ledger = _Ledger()
    try:
        for k in range(kills):
            stop = threading.Event()
            threads = [threading.Thread(target=_writer, args=(url, srv.headers, f"r{k}w{w}", ledger, stop,
                                                              random.Random(rng.random())))
                       for w in range(writers)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(*pause))
            srv.kill()
            rep.kills += 1
            stop.set()
            for t in threads:
                t.join()
            srv.start()  # replays the write-ahead log before it answers
            rep.restarts_ok += 1
            with httpx.Client(timeout=60) as c:
                live, deleted = sorted(ledger.live), sorted(ledger.deleted)
                found: set[str] = set()
                for s in range(0, len(live), 500):
                    resp = c.post(url + "/lookup", json={"ids": live[s:s + 500]}).json()
                    found.update(d["id"] for d in resp["documents"])
                lost = set(live) - found
                back: set[str] = set()
                for s in range(0, len(deleted), 500):
                    resp = c.post(url + "/lookup", json={"ids": deleted[s:s + 500]}).json()
                    back.update(d["id"] for d in resp["documents"])
                rep.lost_upserts += len(lost)
                rep.resurrected_deletes += len(back)
                if lost or back:
                    rep.problems.append(f"kill {k}: lost {sorted(lost)[:5]}, deletes undone {sorted(back)[:5]}")
                resp = c.post(url + "/search", json={"query": "crashword", "k": 5})
                if resp.status_code == 200 and bool(resp.json()["results"][0]["hits"]) == bool(live):
                    rep.searches_ok += 1
                else:
                    rep.problems.append(f"kill {k}: search answered {resp.status_code} {resp.text[:200]}")
    finally:
        srv.stop()
    rep.acknowledged_upserts = ledger.n_up
    rep.acknowledged_deletes = ledger.n_del
    rep.seconds = time.perf_counter() - t0
    return rep
