"""Distributed ingest: Ray Data reads a corpus, a pool of encoder actors embeds it, shards store it by id hash.

``ingest(source, root, n_shards)``:

1. **read** — Ray Data reads the source, local or any URI pyarrow/fsspec opens (``s3://``, ``gs://``, …): a
   BEIR folder (its ``corpus.jsonl[.gz]``) or JSON Lines as text lines (so each record's metadata stays as
   written, not as an Arrow schema inferred across records), Parquet as columns;
2. **encode** — ``map_batches`` over an actor pool (``encoders`` actors, each with the dense model loaded
   once and the node's content-addressed embedding cache, so text already encoded — by an earlier run or by
   a single-node ``retrievo index`` — is read, never encoded again; with SPLADE, the pool fills the node's
   sparse cache that the shards read at commit);
3. **write** — the driver routes each encoded batch to the shard of each document id
   (:func:`~retrievo.distributed.sharded.shard_of`) with ``upsert``, so a re-run adds and updates without
   duplicating, then commits every shard. Progress shows on the driver.

Records are validated as in a single-node index (:class:`~retrievo.store.loaders.FieldMap`); a bad record
stops the ingest with its file and the record's start, before anything is committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.config import CollectionConfig
from retrievo.errors import DocumentError, NotFoundError, SourceFormatError
from retrievo.store.loaders import FieldMap, beir_corpus
from retrievo.types import Document

__all__ = ["IngestReport", "ingest"]

_READ_CPUS = 0.25  # reading and splitting lines is light; the encoders get the rest


@dataclass
class IngestReport:
    """What an ingest did: documents written per shard, vectors encoded or read from the cache, its time."""

    documents: int
    per_shard: list[int]
    encoded: int
    cached: int
    seconds: float
    generations: tuple[int, ...]
    encoders: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0


def _is_uri(source: str) -> bool:
    return "://" in source


def _resolve(source: str | Path) -> tuple[str, str]:
    """``(kind, path)``: ``"jsonl"`` or ``"parquet"``, and the file (or folder / URI) Ray Data reads."""
    src = str(source)
    if not _is_uri(src):
        path = Path(src)
        if not path.exists():
            raise NotFoundError(f"{path}: no such file or folder")
        if path.is_dir():
            corpus = beir_corpus(path)
            if corpus is not None:
                return "jsonl", str(corpus)
            if any(path.glob("*.parquet")):
                return "parquet", str(path)
            raise SourceFormatError(f"{path}: a BEIR folder needs corpus.jsonl or corpus.jsonl.gz (or *.parquet files)")
    name = src.lower().rstrip("/")
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json.gz")):
        return "jsonl", src
    if name.endswith(".parquet"):
        return "parquet", src
    raise SourceFormatError(f"{src}: ingest reads a BEIR folder, .jsonl[.gz] or .parquet (file or folder)")


class _Encoder:
    """A Ray Data actor: records → validated documents, their dense vectors (from the cache where it has them)
    and their shard."""

    def __init__(self, config: dict[str, Any], fields: dict[str, Any], n_shards: int, kind: str, where: str,
                 cache_dir: str | None = None) -> None:
        self.config = CollectionConfig.from_dict(config)
        self.cache_dir = cache_dir
        self.fields = FieldMap(**fields)
        self.n_shards, self.kind, self.where = n_shards, kind, where
        self._dense: Any = None  # loaded on first use
        self._cache: Any = None
        self._sparse: Any = None

    def _records(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.kind == "jsonl":
            out = []
            for line in batch["text"]:
                line = str(line)
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceFormatError(f"{self.where}: the record starting {line[:60]!r} is not valid JSON: "
                                            f"{exc.msg}") from None
                if not isinstance(rec, dict):
                    raise SourceFormatError(f"{self.where}: the record starting {line[:60]!r} is not a JSON object")
                out.append(rec)
            return out
        cols = list(batch)
        n = len(batch[cols[0]]) if cols else 0
        return [{c: _plain(batch[c][i]) for c in cols} for i in range(n)]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The batch encoded; a bad record becomes one row carrying the error (Ray keeps only the text of an
        exception raised here), which the driver raises as it was."""
        from retrievo.errors import RetrievoError

        try:
            return self._encode(batch)
        except RetrievoError as exc:
            out = {"doc": np.array([""], dtype=object), "shard": np.array([-1], dtype=np.int64),
                   "error": np.array([f"{type(exc).__name__}\t{exc}"], dtype=object)}
            if self.config.dense is not None:
                out["vector"] = np.zeros((1, self._dense_encoder()[0].dim), dtype=np.float32)
                out["encoded"] = np.array([False])
            return out

    def _dense_encoder(self) -> tuple[Any, Any]:
        from retrievo._paths import cache_root
        from retrievo.encoders.cache import EmbeddingCache
        from retrievo.encoders.dense import DenseEncoder

        if self._dense is None:
            self._dense = DenseEncoder(self.config.dense)
            self._cache = EmbeddingCache(Path(self.cache_dir or cache_root()) / "embeddings.sqlite")
        return self._dense, self._cache

    def _encode(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        from retrievo.distributed.sharded import shard_of

        docs = []
        for rec in self._records(batch):
            try:
                docs.append(self.fields.to_document(rec, self.where))
            except DocumentError as exc:
                raise DocumentError(f"{exc} (record id {rec.get(self.fields.id, rec.get('_id'))!r})") from None
        out: dict[str, np.ndarray] = {
            "doc": np.array([json.dumps(d.to_dict()) for d in docs], dtype=object),
            "shard": np.array([shard_of(d.id, self.n_shards) for d in docs], dtype=np.int64),
            "error": np.array([""] * len(docs), dtype=object),
        }
        cfg = self.config
        if cfg.dense is not None:
            from retrievo.encoders.cache import content_key, encode_with_cache

            dense, cache = self._dense_encoder()
            texts = [d.content(cfg.dense.fields) for d in docs]
            keys = list(dict.fromkeys(content_key(dense.fingerprint, t) for t in texts))
            known = len(cache.get_many(keys, dense.dim)) if keys else 0
            out["vector"] = encode_with_cache(dense, texts, cache)
            out["encoded"] = np.full(len(docs), False)
            out["encoded"][: len(keys) - known] = True  # a count, carried per row
        if cfg.sparse is not None:
            if self._sparse is None:
                from retrievo.signals.splade import SpladeSignal

                self._sparse = SpladeSignal(_Host(cfg))
            self._sparse.encoder.encode_documents([d.content(("title", "text")) for d in docs])  # fills the cache
        return out


@dataclass
class _Host:
    config: CollectionConfig
    path: str = "ingest"


def _plain(value: Any) -> Any:
    """A Parquet cell as plain Python (numpy scalars and arrays from Arrow)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def ingest(source: str | Path, root: str | Path, n_shards: int | None = None, config: CollectionConfig | None = None,
           encoders: int = 1, batch_size: int = 256, fields: FieldMap | None = None, ray_address: str | None = None,
           encoder_cpus: float = 1.0, cache_dir: str | Path | None = None, show_progress: bool = True) -> IngestReport:
    """Read ``source`` with Ray Data, encode it with ``encoders`` actors, and upsert it into the sharded
    collection at ``root`` (created with ``n_shards`` shards and ``config`` when it does not exist).

    Args:
        source: a BEIR folder, a ``.jsonl[.gz]`` file, or ``.parquet`` file(s) — local or a URI.
        root: the sharded collection's folder (shared by the nodes, or local on a one-node cluster).
        n_shards: shards of a new collection (an existing one keeps its own; a different number is an error).
        config: the config of a new collection (default :class:`CollectionConfig`).
        encoders: encoder actors in the pool.
        batch_size: records per encoded batch.
        fields: which source fields hold id, title and text.
        ray_address: the cluster to join (default: the initialised one, else a local one).
        encoder_cpus: CPUs each encoder actor reserves (lowered to fit the cluster, with a quarter CPU left for
            the readers, which would otherwise wait for the encoders' CPUs forever).
        cache_dir: the folder of the dense content cache on each node (default: retrievo's cache folder).
        show_progress: a progress bar of documents written.
    """
    import ray

    from retrievo.distributed.sharded import MANIFEST, ShardedCollection

    kind, path = _resolve(source)
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    root = Path(root)
    if (root / MANIFEST).exists():
        sc = ShardedCollection.open(root, writable=True)
        if n_shards is not None and n_shards != sc.n_shards:
            sc.close()
            raise SourceFormatError(f"{root}: holds {sc.n_shards} shards, not {n_shards}; re-sharding is not done by ingest")
        if config is not None and config.to_dict() != sc.config.to_dict():
            sc.close()
            raise SourceFormatError(f"{root}: its shards were built with another config than the one given")
    else:
        sc = ShardedCollection.create(root, n_shards or 4, config or CollectionConfig())
    try:
        return _run(sc, kind, path, encoders, batch_size, fields or FieldMap(), encoder_cpus,
                    None if cache_dir is None else str(cache_dir), show_progress)
    except Exception as exc:
        sc.rollback()  # nothing of a failed ingest is committed
        raise _retrievo_cause(exc) from None
    finally:
        sc.close()


def _retrievo_cause(exc: BaseException) -> BaseException:
    """The retrievo error (a bad record) inside Ray's wrappers of a failed task, else ``exc``."""
    from retrievo.errors import RetrievoError

    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RetrievoError):
            return e
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "cause", None)) if isinstance(x, BaseException))
    return exc


def _run(sc: Any, kind: str, path: str, encoders: int, batch_size: int, fields: FieldMap, encoder_cpus: float,
         cache_dir: str | None, show_progress: bool) -> IngestReport:
    import ray.data
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    if encoders * encoder_cpus + _READ_CPUS > cpus:  # the readers would wait for CPUs the encoders hold, forever
        encoder_cpus = max(0.05, (cpus - _READ_CPUS) / encoders)
    if kind == "jsonl":
        ds = ray.data.read_text(path, num_cpus=_READ_CPUS)
    else:
        ds = ray.data.read_parquet(path, num_cpus=_READ_CPUS)
    args = (sc.config.to_dict(), {"id": fields.id, "title": fields.title, "text": fields.text,
                                  "metadata": fields.metadata}, sc.n_shards, kind, path, cache_dir)
    ds = ds.map_batches(_Encoder, fn_constructor_args=args, batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=encoders), num_cpus=encoder_cpus)
    total = None
    if kind == "jsonl" and not _is_uri(path):
        from retrievo.store.loaders import open_text

        with open_text(Path(path)) as fh:
            total = sum(1 for line in fh if line.strip())
    bar = tqdm(total=total, desc="ingest", unit="doc", disable=not show_progress)
    written, encoded = 0, 0
    for batch in ds.iter_batches(batch_size=batch_size * 4, batch_format="numpy"):
        failed = [e for e in batch["error"] if e]
        if failed:
            import retrievo.errors as errors

            name, _, message = str(failed[0]).partition("\t")
            raise getattr(errors, name, errors.SourceFormatError)(message)
        docs = [Document.from_any(json.loads(s), where="ingest") for s in batch["doc"]]
        vectors = batch.get("vector")
        if "encoded" in batch:
            encoded += int(np.asarray(batch["encoded"]).sum())
        written += sc.upsert(docs, vectors=None if vectors is None else np.asarray(vectors, dtype=np.float32))
        bar.update(len(docs))
    bar.close()
    gens = sc.commit()
    per_shard = [s["documents"] for s in sc.info()["per_shard"]]
    return IngestReport(documents=written, per_shard=per_shard, encoded=encoded,
                        cached=written - encoded if sc.config.dense is not None else 0,
                        seconds=time.perf_counter() - t0, generations=gens, encoders=encoders)
