"""Dynamic batching of query encodes: the queries of concurrent searches go through the model together.

A server answering many searches at once would otherwise run one forward pass per request, each on a
batch of one, all competing for the same cores. :class:`QueryBatcher` puts every call's texts on a queue
served by one thread, which takes whatever is waiting (up to ``max_batch`` texts) and encodes it in one
call: a lone query is encoded at once (no added wait), and under load the batches grow by themselves
while the previous one is being encoded — the "continuous batching" of inference servers. Vectors of
the same text agree with an unbatched encode to float rounding (the padding of a batch changes the
order of some additions).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

import numpy as np

__all__ = ["QueryBatcher"]


class QueryBatcher:
    """Wraps a dense encoder: :meth:`encode_queries` is batched across threads, everything else is the
    wrapped encoder's (documents, ``dim``, ``fingerprint``…).

    Args:
        encoder: an object with ``encode_queries(texts) -> (n, dim) array``.
        max_batch: texts encoded in one call at most.
    """

    def __init__(self, encoder: Any, max_batch: int = 64) -> None:
        self.encoder = encoder
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[list[str], Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="retrievo-query-batcher", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["encoder"], name)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts or len(texts) >= self.max_batch:
            return self.encoder.encode_queries(texts)
        fut: Future = Future()
        self._queue.put((texts, fut))
        return fut.result()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, n = [item], len(item[0])
            while n < self.max_batch:  # what else is waiting right now (no timer: a lone query goes at once)
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                n += len(nxt[0])
            try:
                vecs = self.encoder.encode_queries([t for texts, _ in batch for t in texts])
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            i = 0
            for texts, fut in batch:
                fut.set_result(vecs[i:i + len(texts)])
                i += len(texts)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
