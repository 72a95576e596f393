"""A real server process takes a stream of acknowledged writes and is SIGKILLed at random points 20 times.

After every restart the collection opens, every acknowledged upsert is there (unless an acknowledged
delete followed it), no acknowledged delete came back, and searches work (see retrievo.server.chaos).
"""

from __future__ import annotations

from retrievo.server.chaos import crash_loop


def test_acknowledged_writes_survive_20_sigkills(tmp_path):
    rep = crash_loop(tmp_path, kills=20, seed=1234)
    assert rep.problems == []
    assert rep.kills == rep.restarts_ok == rep.searches_ok == 20
    assert rep.lost_upserts == 0 and rep.resurrected_deletes == 0
    assert rep.acknowledged_upserts > 100 and rep.acknowledged_deletes > 5, "a real stream of writes"
