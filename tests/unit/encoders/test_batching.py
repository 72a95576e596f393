"""QueryBatcher: concurrent callers' queries go through the model together and each caller gets its own
vectors back (equal to an unbatched encode up to float rounding); errors reach every caller of a batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retrievo.encoders.batching import QueryBatcher


class Counting:
    """The real encoder, with the size of every batch it was given recorded."""

    def __init__(self, inner):
        self.inner, self.sizes, self.dim = inner, [], inner.dim

    def encode_queries(self, texts):
        self.sizes.append(len(texts))
        if any(t == "boom" for t in texts):
            raise ValueError("a text the model refuses")
        return self.inner.encode_queries(texts)


def test_concurrent_queries_share_batches_and_get_their_own_vectors(onnx_encoder, scifact_queries):
    counting = Counting(onnx_encoder)
    batcher = QueryBatcher(counting, max_batch=64)
    queries = scifact_queries[:48]
    want = onnx_encoder.encode_queries(queries)
    got: dict[int, np.ndarray] = {}
    start = threading.Barrier(12)

    def worker(i: int) -> None:
        start.wait()
        for j in range(i, len(queries), 12):
            got[j] = batcher.encode_queries([queries[j]])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.stack([got[j] for j in range(len(queries))]), want, atol=2e-5)
    assert sum(counting.sizes) == len(queries) and max(counting.sizes) > 1  # some calls were batched
    assert batcher.dim == onnx_encoder.dim  # everything else is the wrapped encoder's
    with pytest.raises(ValueError, match="refuses"):
        batcher.encode_queries(["boom"])
    assert batcher.encode_queries(["fine again"]).shape == (1, onnx_encoder.dim)
    batcher.close()
