import numpy as np
import pytest

from retrievo.search.fusion import convex, fuse, rrf


def lst(keys, scores):
    return (np.array(keys), np.array(scores, dtype=np.float32), len(keys))


def test_rrf_hand_computed():
    a = lst([1, 2, 3], [9, 8, 7])
    b = lst([3, 1], [0.9, 0.1])
    out = rrf([a, b], [1.0, 1.0], k=60)
    assert out[1] == pytest.approx(1 / 61 + 1 / 62)
    assert out[2] == pytest.approx(1 / 62)
    assert out[3] == pytest.approx(1 / 63 + 1 / 61)


def test_convex_hand_computed():
    a = lst([1, 2, 3], [10.0, 6.0, 2.0])  # normalised 1, .5, 0
    b = lst([3, 1], [0.8, 0.4])  # normalised 1, 0
    out = convex([a, b], [0.7, 0.3])
    assert out[1] == pytest.approx(0.7 * 1 + 0.3 * 0)
    assert out[2] == pytest.approx(0.7 * 0.5)
    assert out[3] == pytest.approx(0.7 * 0 + 0.3 * 1)


def test_fuse_orders_and_truncates():
    a = lst([1, 2, 3], [10.0, 6.0, 2.0])
    b = lst([3, 1], [0.8, 0.4])
    keys, scores, n = fuse([a, b], [0.5, 0.5], k=2, method="convex")
    assert n == 2 and keys.tolist() == [1, 3]
    assert scores[0] >= scores[1]


def test_fuse_weight_count_checked():
    with pytest.raises(ValueError):
        fuse([lst([1], [1.0])], [0.5, 0.5], k=1)


def test_rrf_gives_tied_scores_one_rank_whatever_their_order():
    from retrievo.search.fusion import competition_ranks

    assert competition_ranks(np.array([5.0, 3.0, 3.0, 1.0, 1.0, 1.0, 0.5])).tolist() == [1, 2, 2, 4, 4, 4, 7]
    a = (np.array([10, 11, 12]), np.array([2.0, 1.0, 1.0]), 3)
    swapped = (np.array([10, 12, 11]), np.array([2.0, 1.0, 1.0]), 3)
    other = (np.array([12, 13]), np.array([0.9, 0.8]), 2)
    for lists in ([a, other], [swapped, other]):
        keys, scores, n = fuse(lists, [1.0, 1.0], 4, method="rrf")
        assert dict(zip(keys.tolist(), scores.tolist(), strict=True)) == pytest.approx(
            {12: 1 / 62 + 1 / 61, 10: 1 / 61, 11: 1 / 62, 13: 1 / 62})
        assert rrf(lists, [1.0, 1.0]) == pytest.approx({12: 1 / 62 + 1 / 61, 10: 1 / 61, 11: 1 / 62, 13: 1 / 62})
