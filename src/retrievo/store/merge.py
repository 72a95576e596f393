"""Segment merges: which segments to merge after a commit (the policy) and the merge itself.

A merge copies the live rows of some segments, in order, into one new immutable segment (every signal's arrays by
their layouts, the stored documents, the metadata columns), builds the signals' derived structures beside it,
and then swaps the segment list in one SQLite transaction; a crash before that transaction leaves the old
segments in place and the new folder as garbage, a crash after it leaves the old folders as garbage.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievo.config import CollectionConfig
from retrievo.store.segments import Layout, Segment, SegmentData, write_segment
from retrievo.store.sqlite import DocStore

__all__ = ["merge_segments", "segments_to_merge"]


def segments_to_merge(store: DocStore, config: CollectionConfig) -> list[int]:
    """Segments to merge now: those with more than ``max_deleted_fraction`` of their rows deleted, and — when
    there are more than ``max_segments`` — the smallest ones, down to about half that many."""
    segs = store.segments()
    live = dict(store.conn.execute("SELECT seg, COUNT(*) FROM docs GROUP BY seg").fetchall())
    pick = {s for s, n in segs if n and 1 - live.get(s, 0) / n > config.max_deleted_fraction}
    if len(segs) > config.max_segments:
        by_size = sorted(segs, key=lambda sn: live.get(sn[0], 0))
        pick |= {s for s, _ in by_size[: len(segs) - config.max_segments // 2 + 1]}
    return sorted(pick)


def merge_segments(root: Path, store: DocStore, segs: list[int], layouts: Sequence[Layout],
                   write_derived: Callable[[Path, SegmentData], None]) -> None:
    """Merge the live rows of ``segs`` into one new segment under ``root / "segments"`` and publish it (one
    transaction: the old segments dropped, the rows moved, the generation advanced)."""
    rows = store.conn.execute(
        f"SELECT seg, row, id, metadata FROM docs WHERE seg IN ({','.join('?' * len(segs))}) ORDER BY seg, row", segs
    ).fetchall()
    new_seg = int(store.get_meta("next_segment", "1") or 1)
    seg_dir = None
    if rows:
        by_seg: dict[int, list[int]] = {}
        for s, r, _, _ in rows:
            by_seg.setdefault(s, []).append(r)
        parts = [Segment(root / "segments", s, layouts).data.take(np.array(by_seg[s]), layouts) for s in sorted(by_seg)]
        merged = SegmentData.concat(parts, layouts)
        seg_dir = write_segment(root / "segments", new_seg, merged, [json.loads(meta) for _, _, _, meta in rows])
        write_derived(seg_dir, merged)
    try:
        store.begin()
        store.drop_segments(segs)
        if rows:
            store.add_segment(new_seg, len(rows))
            store.move_rows([(new_seg, i, doc_id) for i, (_, _, doc_id, _) in enumerate(rows)])
            store.set_meta("next_segment", str(new_seg + 1))
        store.set_meta("generation", str(store.generation() + 1))
        store.commit()
    except BaseException:
        store.rollback()
        if seg_dir is not None:
            shutil.rmtree(seg_dir, ignore_errors=True)
        raise
