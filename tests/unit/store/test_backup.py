"""Backups: the last commit copied to a folder that opens as the same collection, consistent under writes."""

from __future__ import annotations

import json
import threading

import pytest

from retrievo import Collection, CollectionConfig
from retrievo.cli.main import main
from retrievo.errors import CollectionExistsError, RetrievoError
from retrievo.store.backup import backup


def _docs(start: int, n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} about topic{i % 5}", "metadata": {"n": i}} for i in range(start, start + n)]


def test_a_backup_opens_as_the_same_collection(tmp_path):
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    coll.add(_docs(0, 30))
    coll.commit()
    coll.add(_docs(30, 10))
    coll.delete(["d3"])
    coll.commit()
    coll.add(_docs(40, 5))  # buffered, not committed: not in the backup
    out = coll.backup(tmp_path / "b")
    assert out["documents"] == 39 and out["generation"] == coll.generation and out["segments"] == 2
    copy = Collection.open(tmp_path / "b")
    assert copy.search(["topic3 document"], k=20).row(0) == coll.search(["topic3 document"], k=20).row(0)
    assert copy.get("d7").metadata == {"n": 7} and copy.count({"n": {"$gte": 30}}) == 10
    copy.add(_docs(100, 1))  # a backup is a collection of its own
    copy.commit()
    assert len(copy) == 40 and len(Collection.open(tmp_path / "c", readonly=True)) == 39
    copy.close()
    with pytest.raises(CollectionExistsError):
        coll.backup(tmp_path / "b")
    with pytest.raises(RetrievoError, match="not a collection"):
        backup(tmp_path / "nothing", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    coll.close()


def test_backups_during_commits_each_hold_one_commit(tmp_path):
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None, max_segments=3))
    stop = threading.Event()
    failed: list[BaseException] = []

    def write() -> None:
        i = 0
        try:
            while not stop.is_set() and i < 400:
                coll.add(_docs(i, 10))
                coll.commit()  # merges now and then: old segment folders are removed
                i += 10
        except BaseException as exc:  # the writer must not fail beside the backups (it once did: see _io.load_npy)
            failed.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for j in range(6):
            reader = Collection.open(tmp_path / "c", readonly=True)
            out = reader.backup(tmp_path / f"b{j}")
            reader.close()
            assert out["documents"] % 10 == 0  # whole commits only
            copy = Collection.open(tmp_path / f"b{j}", readonly=True)
            assert len(copy) == out["documents"] and len(copy.search(["document"], k=5).row(0)) == min(5, len(copy))
            copy.close()
    finally:
        stop.set()
        writer.join()
        coll.close()
    assert not failed, failed


def test_backup_command(tmp_path, capsys):
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    coll.add(_docs(0, 5))
    coll.commit()
    coll.close()
    assert main(["backup", str(tmp_path / "c"), str(tmp_path / "b"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 5
    assert main(["backup", str(tmp_path / "c"), str(tmp_path / "b")]) == 2  # exists: one line, nothing changed
    assert "exists" in capsys.readouterr().err
