"""Scale-out on Ray: sharded collections searched as one, and distributed ingest (``pip install 'retrievo[ray]'``).

- :class:`~retrievo.distributed.sharded.ShardedCollection` — shards as Ray actors, searched with the same
  :class:`~retrievo.request.SearchRequest` as one collection, BM25 under global statistics;
- :func:`~retrievo.distributed.ingest.ingest` — Ray Data reads a corpus, an actor pool encodes it, and the
  documents are written into shards by a stable hash of their id.

Ray is imported only when a sharded collection is opened, so the rest of retrievo never needs it.
"""

from retrievo.distributed.ingest import IngestReport, ingest
from retrievo.distributed.sharded import MANIFEST, ShardedCollection, shard_of

__all__ = ["MANIFEST", "IngestReport", "ShardedCollection", "ingest", "shard_of"]
