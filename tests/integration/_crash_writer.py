"""Child process for the crash test: commits batches forever, printing each finished generation.

Batch i upserts documents b{i}-0..b{i}-(n-1), replaces the text of one document of batch i-1 and
deletes batch i-3, so the state after batch m is a known function of m.
"""

import sys

from retrievo import Collection, CollectionConfig


def batch_ops(i: int, n: int):
    docs = [{"id": f"b{i}-{j}", "text": f"batch {i} item {j} words shared text"} for j in range(n)]
    if i >= 1:
        docs.append({"id": f"b{i - 1}-0", "text": f"batch {i - 1} item 0 replaced in {i}"})
    deletes = [f"b{i - 3}-{j}" for j in range(n)] if i >= 3 else []
    return docs, deletes


def expected_state(m: int, n: int) -> dict[str, str]:
    """id -> text after batches 0..m have committed."""
    state: dict[str, str] = {}
    for i in range(m + 1):
        docs, deletes = batch_ops(i, n)
        for d in docs:
            state[d["id"]] = d["text"]
        for x in deletes:
            state.pop(x, None)
    return state


def main() -> None:
    path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    coll = Collection.open_or_create(path, CollectionConfig(dense=None, max_segments=4))
    i = start
    while True:
        docs, deletes = batch_ops(i, n)
        coll.upsert(docs)
        coll.delete(deletes)
        coll.commit()
        print(i, flush=True)
        i += 1


if __name__ == "__main__":
    main()
