"""SIGKILL a real indexing process at random points; the collection must hold exactly its last commit."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from retrievo import Collection

sys.path.insert(0, str(Path(__file__).parent))
from _crash_writer import expected_state  # noqa: E402

WRITER = Path(__file__).parent / "_crash_writer.py"
N = 25


def test_sigkill_at_random_points_keeps_last_commit(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "coll"
    last_done = -1
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(last_done + 1), str(N)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # let it commit at least one batch sometimes, and kill mid-commit other times
        first = proc.stdout.readline()
        assert first.strip(), proc.stderr.read()
        reported = int(first)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        kills += 1
        for line in out.split():
            reported = int(line)
        coll = Collection.open(path)
        got = {d.id: d.text for d in coll.iter_documents()}
        # the commit after the last printed one may have finished before the kill
        candidates = [m for m in (reported, reported + 1) if expected_state(m, N) == got]
        assert candidates, f"state after kill {kills} matches no commit (last reported {reported})"
        last_done = candidates[-1]
        assert coll.generation >= last_done + 1
        # searches work and see only committed text
        res = coll.search("replaced", k=5)
        assert all(i in got for i, _ in res.row(0))
        coll.close()
    assert kills == 12 and last_done >= 12
