"""Segment data by layout: slicing and concatenation by hand, the checks on what a signal hands over, and a
round trip through the files of a segment."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo.errors import InvalidInputError
from retrievo.store.segments import Layout, Segment, SegmentData, write_segment

CSR = Layout("csr", ("ptr", "terms", "counts"))
ROWS = Layout("rows", ("vec", "length"))


def part(n_rows, ptr, terms, counts, vec, length, meta=None):
    d = SegmentData(n_rows)
    d.put([CSR, ROWS], {"ptr": np.array(ptr, np.int64), "terms": np.array(terms, np.int32),
                        "counts": np.array(counts, np.int32), "vec": np.array(vec, np.float32),
                        "length": np.array(length, np.int32)}, meta or {"dim": 2})
    return d


def test_take_and_concat_by_hand():
    a = part(3, [0, 2, 2, 3], [5, 7, 1], [1, 2, 3], [[1, 0], [0, 1], [1, 1]], [3, 0, 3])
    b = part(2, [0, 1, 3], [9, 2, 4], [4, 5, 6], [[2, 2], [3, 3]], [4, 11])
    t = a.take(np.array([2, 0]), [CSR, ROWS])  # rows 2 then 0
    assert t.n_rows == 2 and t.ptr.tolist() == [0, 1, 3] and t.terms.tolist() == [1, 5, 7]
    assert t.counts.tolist() == [3, 1, 2] and t.vec.tolist() == [[1, 1], [1, 0]] and t.length.tolist() == [3, 3]
    assert t.terms.dtype == np.int32 and t.ptr.dtype == np.int64 and t.meta == {"dim": 2}
    c = SegmentData.concat([t, b], [CSR, ROWS])
    assert c.n_rows == 4 and c.ptr.tolist() == [0, 1, 3, 4, 6] and c.terms.tolist() == [1, 5, 7, 9, 2, 4]
    assert c.vec.tolist() == [[1, 1], [1, 0], [2, 2], [3, 3]] and c.length.tolist() == [3, 3, 4, 11]
    empty = a.take(np.array([], dtype=np.int64), [CSR, ROWS])
    assert empty.n_rows == 0 and empty.ptr.tolist() == [0] and len(empty.terms) == 0
    no_vec = SegmentData(2, {"ptr": np.array([0, 0, 0]), "terms": np.zeros(0, np.int32), "counts": np.zeros(0, np.int32)})
    assert "vec" not in SegmentData.concat([c, no_vec], [CSR, ROWS]).arrays  # only what every part has


def test_what_a_signal_hands_over_is_checked():
    d = SegmentData(2)
    with pytest.raises(InvalidInputError, match="'counts'.*missing"):
        d.put([CSR], {"ptr": np.array([0, 1, 2]), "terms": np.array([1, 2])}, {})
    with pytest.raises(InvalidInputError, match="'ptr' has 2 entries, expected 3"):
        d.put([CSR], {"ptr": np.array([0, 1]), "terms": np.array([1]), "counts": np.array([1])}, {})
    with pytest.raises(InvalidInputError, match="must hold the 2 entries"):
        d.put([CSR], {"ptr": np.array([0, 1, 2]), "terms": np.array([1]), "counts": np.array([1, 1])}, {})
    with pytest.raises(InvalidInputError, match="one entry per row"):
        d.put([ROWS], {"vec": np.zeros((2, 3)), "length": np.zeros(3)}, {})
    with pytest.raises(InvalidInputError, match="Layout"):
        Layout("columns", ("x",))
    assert d.arrays == {}
    with pytest.raises(AttributeError, match="no array 'dense'"):
        _ = d.dense


def test_a_segment_round_trips_through_its_files(tmp_path):
    a = part(3, [0, 2, 2, 3], [5, 7, 1], [1, 2, 3], [[1, 0], [0, 1], [1, 1]], [3, 0, 3], {"dim": 2, "x": "y"})
    write_segment(tmp_path, 4, a)
    seg = Segment(tmp_path, 4, [CSR, ROWS])
    assert seg.n_rows == 3 and seg.data.meta == {"dim": 2, "x": "y"}
    for name, arr in a.arrays.items():
        np.testing.assert_array_equal(seg.data.get(name), arr)
        assert seg.data.get(name).dtype == arr.dtype
    assert set(Segment(tmp_path, 4, [ROWS]).data.arrays) == {"vec", "length"}  # only the layouts asked for
