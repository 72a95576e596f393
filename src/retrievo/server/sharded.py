"""A sharded collection behind the ordinary HTTP API (``retrievo serve --ray ADDRESS ROOT``).

:class:`ShardedRegistry` stands where the server's :class:`~retrievo.server.service.Registry` stands, holding one
collection: the :class:`~retrievo.distributed.ShardedCollection` in ``ROOT`` (named by the folder), its shards
served by Ray actors on the cluster at ``ADDRESS``. Searches, document reads, info and the search page work as on
any collection. Writes are routed by id to the shards and committed before they are acknowledged (the shards'
commits are their durability: a sharded collection has no server-side write-ahead log), so nothing acknowledged
is lost; each write request therefore costs one commit per shard it touches — batch writes, or ingest with
:func:`retrievo.distributed.ingest`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from retrievo.errors import DuplicateIdError, InvalidInputError, NotFoundError

__all__ = ["ShardedRegistry", "ShardedService"]


class ShardedService:
    """One sharded collection as the server's routes use a collection service."""

    error: str | None = None
    disk_error: str | None = None
    locked: str | None = None
    pending = 0

    def __init__(self, name: str, collection: Any, screen_max_fpr: float = 0.01) -> None:
        self.name = name
        self.collection = collection
        self.screen_max_fpr = screen_max_fpr  # each shard's gate: the bound on ordinary documents held back
        self.path = Path(collection.path)
        self._write = threading.Lock()  # one routed write (and its commit) at a time

    @property
    def reader(self) -> Any:
        return self.collection

    def view(self) -> Any:
        return self.collection

    def sibling_writes(self) -> bool:
        return False

    def upsert(self, docs: Iterable[Any], if_absent: bool = False, screen: bool = False) -> tuple[int, int]:
        from retrievo.store.collection import Collection

        batch = Collection.validate_documents(docs, "documents")
        with self._write:
            if if_absent:
                have = [d.id for d, found in zip(batch, self.collection.get_many([d.id for d in batch]), strict=True)
                        if found is not None]
                if have:
                    raise DuplicateIdError(f"documents: {len(have)} id(s) already exist, e.g. {have[:3]}")
            try:
                n = self.collection.upsert(batch, screen=screen, max_fpr=self.screen_max_fpr)
            except BaseException:  # a shard refused: what the others buffered is not written either
                self.collection.rollback()
                raise
            return n, self.collection_commit()

    def patch(self, doc_id: str, metadata: dict[str, Any]) -> tuple[int, int]:
        with self._write:
            n = self.collection.update_metadata({doc_id: metadata})
            return n, self.collection_commit()

    def delete(self, ids: list[str]) -> tuple[int, int]:
        with self._write:
            n = self.collection.delete(ids)
            return n, self.collection_commit()

    def release(self, ids: list[str]) -> tuple[int, int]:
        with self._write:
            n = self.collection.release(ids)
            return n, self.collection_commit()

    def drop_quarantined(self, ids: list[str]) -> int:
        with self._write:
            return self.collection.drop_quarantined(ids)

    def collection_commit(self) -> int:
        return sum(self.collection.commit())

    def commit(self, timeout: float = 60.0) -> int:
        with self._write:
            return self.collection_commit()

    def close(self) -> None:
        self.collection.close()


class ShardedRegistry:
    """The one sharded collection a ``retrievo serve --ray`` process serves, by its folder's name."""

    def __init__(self, root: str | Path, ray_address: str | None = None, writable: bool = True,
                 screen_max_fpr: float = 0.01) -> None:
        from retrievo.distributed import ShardedCollection

        self.root = Path(root).resolve()
        coll = ShardedCollection.open(self.root, ray_address=ray_address, writable=writable)
        self.service = ShardedService(self.root.name, coll, screen_max_fpr)

    def names(self) -> list[str]:
        return [self.service.name]

    def get(self, name: str, writable: bool = False) -> ShardedService:
        if name != self.service.name:
            raise NotFoundError(f"no collection named {name!r} (this server serves the sharded collection "
                                f"{self.service.name!r})")
        return self.service

    def create(self, name: str, config: Any) -> ShardedService:
        raise InvalidInputError("this server serves one sharded collection; it does not create collections")

    def open_all(self) -> None:
        return None

    def services(self) -> list[ShardedService]:
        return [self.service]

    def close(self) -> None:
        self.service.close()
