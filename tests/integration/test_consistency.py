"""A reader sees one generation for everything it reads, while a writer commits and merges beside it.

The filter's hit count is asserted exactly on every search: filters used to read row positions from the
live SQLite table and map them through the reader's older segment offsets, and returned too few hits
whenever a commit or merge had moved rows since the reader's last refresh.
"""

from __future__ import annotations

import threading
import time

from retrievo import Collection, CollectionConfig

N_KEEP = 120


def _docs(scifact_small, tag, start, n):
    return [{"id": f"{tag}{i}", "title": d["title"], "text": "common " + d["text"], "metadata": {"tag": tag, "n": i}}
            for i, d in zip(range(start, start + n), scifact_small[start:start + n], strict=True)]


def test_filtered_counts_stay_exact_while_a_writer_commits_and_merges(tmp_path, scifact_small):
    cfg = CollectionConfig(dense=None, max_segments=3, max_deleted_fraction=0.2)
    writer = Collection.create(tmp_path / "c", cfg)
    keep = _docs(scifact_small, "keep", 0, N_KEEP)
    writer.add(keep)
    writer.commit()
    reader = Collection.open(tmp_path / "c", readonly=True)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        i = 0
        try:
            while not stop.is_set():
                # the same "keep" documents again (their rows move to a new segment; merges follow),
                # and churn documents with another tag coming and going
                writer.upsert(keep[(i * 17) % N_KEEP:][:17])
                writer.upsert(_docs(scifact_small, "churn", 150 + i % 40, 10))
                writer.delete([f"churn{150 + (i + 20) % 40 + j}" for j in range(5)])
                writer.commit()
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    counts, generations = [], set()
    deadline = time.monotonic() + 120
    try:
        while writer.generation < 60 and time.monotonic() < deadline and not failures:
            reader.refresh()
            res = reader.search("common", k=1000, filter={"tag": "keep"})
            counts.append(int(res.counts[0]))
            generations.add(res.generation)
            assert {d for d, _ in res.row(0)} == {d["id"] for d in keep}
            lo = reader.search("common", k=1000, filter={"$and": [{"tag": "keep"}, {"n": {"$lt": 30}}]})
            assert lo.counts[0] == 30
    finally:
        stop.set()
        thread.join()
        reader.close()
        writer.close()
    assert not failures, failures
    assert set(counts) == {N_KEEP}
    assert len(generations) > 20 and len(counts) > 200  # the writer committed and merged while the reader searched


def test_a_search_returns_the_stored_fields_of_the_generation_it_searched(tmp_path, scifact_small):
    writer = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    writer.add([{"id": "a", "title": "old title", "text": "zyzzyva first version", "metadata": {"v": 1}},
                {"id": "b", "text": "zyzzyva other document"}])
    writer.commit()
    reader = Collection.open(tmp_path / "c", readonly=True)
    res = reader.search("zyzzyva", k=5)  # generation 1
    snap = reader.snapshot()
    writer.upsert([{"id": "a", "title": "new title", "text": "zyzzyva second version", "metadata": {"v": 2}}])
    writer.delete(["b"])
    writer.commit()
    writer.compact()  # the old segment is merged away and its folder removed
    docs = {d.id: d for d in reader.documents_at(res.rows[0][:res.counts[0]].tolist(), snap)}
    assert docs["a"].text == "zyzzyva first version" and docs["a"].metadata == {"v": 1} and "b" in docs
    assert reader.get("a").text == "zyzzyva second version"  # by id: the latest committed version
    reader.refresh()
    assert [d.text for d in reader.documents_at(reader.search("zyzzyva").rows[0][:1].tolist())] == ["zyzzyva second version"]
    reader.close()
    writer.close()
