"""The content caches are shared by processes: several opening a fresh cache file at the same moment (Ray shard
actors committing together, server workers) all get it — switching a new file to WAL is retried, not failed."""

from __future__ import annotations

import multiprocessing as mp


def _open_each(paths: list[str], ready, start, out) -> None:
    from pathlib import Path

    from retrievo.encoders.cache import EmbeddingCache

    ready.put(1)  # imported: the processes then open the same fresh files at the same moments
    start.wait()
    errors = []
    for path in paths:
        try:
            EmbeddingCache(Path(path)).close()
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(repr(exc))
    out.put(errors)


def test_processes_opening_fresh_caches_together_all_get_them(tmp_path):
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    paths = [str(tmp_path / f"t{i}" / "embeddings.sqlite") for i in range(30)]
    procs = [ctx.Process(target=_open_each, args=(paths, ready, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    start.set()
    errors = [e for _ in procs for e in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert errors == []
