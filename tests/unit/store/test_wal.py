from __future__ import annotations

import pytest

from retrievo.store.wal import WriteAheadLog


def test_append_read_truncate_and_reopen(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal.sqlite")
    s1 = wal.append("upsert", [{"id": "a", "text": "x"}])
    s2 = wal.append("delete", ["a"])
    s3 = wal.append("upsert", [{"id": "b", "text": "é"}])
    assert s1 < s2 < s3 and wal.last_seq() == s3 and len(wal) == 3
    assert [op for _, op, _ in wal.read()] == ["upsert", "delete", "upsert"]
    assert list(wal.read(after=s1, upto=s2)) == [(s2, "delete", ["a"])]
    wal.truncate(s2)
    wal.close()
    wal = WriteAheadLog(tmp_path / "wal.sqlite")  # what was logged survives a reopen
    assert list(wal.read()) == [(s3, "upsert", [{"id": "b", "text": "é"}])]
    wal.truncate(s3)
    assert len(wal) == 0 and wal.last_seq() == s3  # sequence numbers never go back
    assert wal.append("delete", ["z"]) > s3
    with pytest.raises(ValueError, match="unknown WAL operation"):
        wal.append("drop", [])
