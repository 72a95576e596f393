"""Evaluate a retrieval method on a BEIR dataset: index (or reuse) a collection, run queries, measure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievo._io import write_json
from retrievo._paths import cache_root
from retrievo.config import CollectionConfig, DenseIndexConfig, FusionConfig, PRFConfig, SparseConfig
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.measures import evaluate
from retrievo.eval.runs import write_run
from retrievo.request import Overrides, SearchRequest
from retrievo.signals.registry import parse_method, signal_class, signal_names
from retrievo.store.collection import Collection
from retrievo.store.loaders import load_documents

__all__ = ["EvalResult", "default_collection_dir", "ensure_collection", "run_eval"]


@dataclass
class EvalResult:
    method: str
    dataset: str
    queries: int
    measures: dict[str, float]
    run: dict[str, dict[str, float]] = field(repr=False)
    run_file: Path | None = None
    collection: Path | None = None
    seconds_index: float = 0.0
    seconds_search: float = 0.0
    index: str | None = None
    index_bytes_in_ram: int | None = None
    sparse_mode: str | None = None
    prf: bool = False
    correct_typos: bool = False
    adapter: bool = False
    query_map: bool = False
    min_probability: float | None = None
    rerank: str | None = None
    rerank_depth: int | None = None
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``retrievo eval --json``: exactly these keys (plus ``index`` and
        ``index_bytes_in_ram`` when a dense index was chosen explicitly, and ``sparse_mode`` when a SPLADE
        search mode was, ``prf`` when pseudo-relevance feedback was on, ``correct_typos`` when typo correction
        was, ``adapter`` when the query adapter was, ``query_map`` when the query map was, ``min_probability`` when a calibrated cut-off was,
        ``rerank`` and ``rerank_depth`` when a reranker was)."""
        out = {**{k: round(v, 4) for k, v in self.measures.items()}, "method": self.method,
               "dataset": self.dataset, "queries": self.queries}
        if self.index is not None:
            out["index"] = self.index
            out["index_bytes_in_ram"] = self.index_bytes_in_ram
        if self.sparse_mode is not None:
            out["sparse_mode"] = self.sparse_mode
        if self.prf:
            out["prf"] = True
        if self.correct_typos:
            out["correct_typos"] = True
        if self.adapter:
            out["adapter"] = True
        if self.query_map:
            out["query_map"] = True
        if self.min_probability is not None:
            out["min_probability"] = self.min_probability
        if self.rerank:
            out["rerank"] = self.rerank
            out["rerank_depth"] = self.rerank_depth
        return out


PROGRESS_CHUNK = 64  # queries per search when a slow setting shows its progress


def _search_run(coll: Collection, queries: dict[str, str], qids: list[str], request: SearchRequest,
                resolved: SearchRequest, show_progress: bool) -> dict[str, dict[str, float]]:
    """The run of ``request`` over ``queries``: one batch, or — for the slow settings (a reranker, exact late
    interaction) with ``show_progress`` — batches of :data:`PROGRESS_CHUNK` queries on one snapshot under a
    progress bar (each query is searched on its own: the run is the same)."""
    slow = bool(resolved.rerank) or ("multivector" in resolved.signals and not resolved.options.get("fde"))
    if not (show_progress and slow and len(qids) > PROGRESS_CHUNK):
        return coll.searcher.search([queries[q] for q in qids], request, query_ids=qids).to_run()
    from tqdm.auto import tqdm

    snapshot = coll.snapshot()
    run: dict[str, dict[str, float]] = {}
    with tqdm(total=len(qids), desc="search", unit="query") as bar:
        for s in range(0, len(qids), PROGRESS_CHUNK):
            part = qids[s:s + PROGRESS_CHUNK]
            run.update(coll.searcher.search([queries[q] for q in part], request, query_ids=part,
                                            snapshot=snapshot).to_run())
            bar.update(len(part))
    return run


def default_collection_dir(dataset: BeirDataset, config: CollectionConfig) -> Path:
    """Where ``eval`` keeps the collection of a dataset and config, so later runs reuse it."""
    # only what changes the stored data keys the folder; fusion and index are search-time settings; a signal's
    # settings with its defaults filled in, so a changed default is a new folder
    from retrievo.signals.registry import signal_class, signal_names

    for name in [n for n in config.signals if n in signal_names()]:
        config = signal_class(name).complete(config)
    stored = {k: v for k, v in config.to_dict().items() if k not in ("fusion", "index")}
    if stored.get("sparse") is None:  # keeps the folders of collections made before SPLADE existed
        stored.pop("sparse", None)
    dense = config.dense
    if dense is not None and os.path.isdir(dense.model):  # a model folder can be retrained in place: key by content
        from retrievo.encoders.dense import model_fingerprint

        stored["dense_fingerprint"] = model_fingerprint(dense)
    key = hashlib.sha256((str(dataset.path) + json.dumps(stored, sort_keys=True)).encode()).hexdigest()[:12]
    return cache_root() / "eval" / f"{dataset.name}-{key}"


def _source_stamp(dataset: BeirDataset) -> dict[str, Any]:
    p = dataset.corpus_path
    st = p.stat()
    return {"corpus": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ensure_collection(
    dataset: BeirDataset, config: CollectionConfig, collection_dir: Path | None = None, show_progress: bool = True
) -> tuple[Collection, float]:
    """Open the dataset's collection if it is complete and current, else (re)build it; returns it and build seconds."""
    path = collection_dir or default_collection_dir(dataset, config)
    stamp_path = path / "eval-source.json"
    stamp = _source_stamp(dataset)
    if stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        return Collection.open(path), 0.0
    if (path / "manifest.json").exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    coll = Collection.create(path, config)
    coll.add(load_documents(dataset.path))
    coll.commit(show_progress=show_progress)
    seconds = time.perf_counter() - t0
    write_json(stamp_path, stamp)  # written last: a build cut short is rebuilt
    return coll, seconds


def run_eval(
    dataset_dir: str | Path,
    method: str = "bm25",
    split: str = "test",
    config: CollectionConfig | None = None,
    fusion: FusionConfig | None = None,
    collection_dir: str | Path | None = None,
    run_file: str | Path | None = None,
    depth: int = 1000,
    show_progress: bool = True,
    index: DenseIndexConfig | None = None,
    sparse: dict[str, Any] | None = None,
    prf: PRFConfig | None = None,
    correct_typos: bool = False,
    request: SearchRequest | None = None,
) -> EvalResult:
    """Index (or reuse) ``dataset_dir``, search every query of ``split`` with a search setting, and measure.

    Args:
        dataset_dir: a BEIR folder.
        method: a search method: ``bm25``, ``dense``, ``splade``, ``hybrid``, signals joined by ``+``
            (``bm25+dense+splade``), or a plugin's signal.
        config: the collection config (default: BM25 + MiniLM); each signal the method does not use is turned
            off, and each it uses is turned on (SPLADE with ``SparseConfig()``).
        fusion: hybrid fusion override.
        collection_dir: where to keep the collection (default: a cache folder keyed by dataset and config).
        run_file: where to write the TREC run (default: next to the collection).
        depth: results per query in the run (BEIR uses 1000); the request's ``k``.
        index: the dense index to search with (reported in the result); default: the collection's.
        sparse: SPLADE search settings (``mode``, ``query_cut``, ``heap_factor``); default: the config's.
        prf: pseudo-relevance feedback (RM3 for BM25, Rocchio for dense); default: off.
        correct_typos: BM25 query terms outside the vocabulary corrected (one edit); default: off.
        request: the whole search setting (then ``method``, ``fusion``, ``index``, ``sparse``, ``prf`` and
            ``correct_typos`` are ignored), e.g. built from ``retrievo eval``'s flags.
    """
    if request is None:
        request = SearchRequest(method=method, fusion=fusion, index=index, sparse=sparse, prf=prf,
                                correct_typos=correct_typos)
    request = request.replace(k=depth)
    signals = parse_method(request.method)
    dataset = BeirDataset.from_path(dataset_dir)
    config = config or CollectionConfig()
    for name in signal_names():
        config = signal_class(name).configure(config, name in signals)
    qrels = dataset.qrels(split)
    queries = dataset.queries(split)
    coll, t_index = ensure_collection(dataset, config, Path(collection_dir) if collection_dir else None, show_progress)
    try:
        resolved = coll.searcher.resolve(request)
        qids = list(queries)
        t0 = time.perf_counter()
        run = _search_run(coll, queries, qids, request, resolved, show_progress)
        t_search = time.perf_counter() - t0
        measures = evaluate(run, qrels)
        run_path = Path(run_file) if run_file else coll.path / "runs" / f"{dataset.name}-{split}-{resolved.label()}.trec"
        write_run(run_path, run, tag=f"retrievo-{request.method}")
        res = EvalResult(request.method, dataset.name, len(qrels), measures, run, run_path, coll.path, t_index, t_search)
        if request.index is not None:
            res.index = resolved.index.kind
            res.index_bytes_in_ram = (int(coll.signals["dense"].index(coll.snapshot(), resolved.index).nbytes)
                                      if "dense" in signals else 0)
        if isinstance(request.sparse, Overrides) and "mode" in request.sparse or isinstance(request.sparse, SparseConfig):
            res.sparse_mode = resolved.sparse.mode
        res.prf = request.prf is not None
        res.correct_typos = request.correct_typos
        res.adapter = request.adapter
        res.query_map = request.query_map
        res.min_probability = request.min_probability
        if request.rerank:
            res.rerank, res.rerank_depth = request.rerank, request.rerank_depth
        res.key = resolved.key()
        return res
    finally:
        coll.close()
