"""The ``retrievo`` command line: index, search, batch-search, info, backup, plan, delete, eval, compare, serve,
quickstart (and the commands of cli/learn.py — learning from judgements — and of cli/structure.py).

Errors raised on purpose (:class:`~retrievo.errors.RetrievoError`) are printed as one line on stderr with
exit status 2; nothing is changed by a command that fails that way.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from retrievo._version import __version__
from retrievo.cli.learn import add_learn_parsers
from retrievo.cli.options import add_search_args, request_from_args
from retrievo.cli.structure import add_structure_parsers
from retrievo.errors import InvalidInputError, RetrievoError
from retrievo.signals.registry import METHODS  # the built-in methods (the registry imports no engine code)

__all__ = ["METHODS", "main", "build_parser"]


def _add_collection_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("collection settings (used when a collection is created)")
    g.add_argument("--model", default=None, help="dense model: sentence-transformers name or folder (default all-MiniLM-L6-v2)")
    g.add_argument("--no-dense", action="store_true", help="lexical-only collection (no dense model)")
    g.add_argument("--backend", choices=["auto", "bf16", "onnx", "torch"], default=None, help="dense encoder backend (default auto)")
    g.add_argument("--query-model", default=None, help="encode queries with this static query encoder folder "
                   "(`retrievo distill-queries`); documents keep the dense model's vectors")
    g.add_argument("--splade", action="store_true", help="also store SPLADE vectors (default model: splade-tiny)")
    g.add_argument("--splade-model", default=None, help="SPLADE model name or folder (implies --splade)")
    g.add_argument("--doc-top-n", type=int, default=None, help="keep each document's n largest SPLADE weights")
    g.add_argument("--multivector", action="store_true", help="also store token vectors for late interaction "
                   "(MaxSim) and their MUVERA encodings (default: the bundled MiniLM's tokens)")
    g.add_argument("--multivector-model", default=None, help="token vector model: any sentence-transformers model "
                   "or a ColBERT/PyLate checkpoint, name or folder (implies --multivector)")
    g.add_argument("--k1", type=float, default=None, help="BM25 k1 (default 0.9)")
    g.add_argument("--b", type=float, default=None, help="BM25 b (default 0.4)")
    g.add_argument("--bm25-variant", choices=["lucene", "bm25l", "bm25+"], default=None,
                   help="BM25 formula: Lucene's (default), BM25L or BM25+ (Lv and Zhai 2011)")
    g.add_argument("--bm25-delta", type=float, default=None, help="BM25L / BM25+ lower bound (default 0.5 / 1.0)")
    g.add_argument("--signal", action="append", default=[], metavar="NAME[=JSON]",
                   help="also compute a plugin signal (with its settings as a JSON object); repeatable")


def _config_from_args(args: argparse.Namespace):
    from retrievo.config import BM25Config, CollectionConfig, DenseConfig

    bm25 = BM25Config(**{k: v for k, v in (("k1", args.k1), ("b", args.b), ("variant", args.bm25_variant),
                                           ("delta", args.bm25_delta)) if v is not None})
    dense = None
    if not getattr(args, "no_dense", False):
        kw = {}
        if args.model:
            kw["model"] = args.model
        if args.backend:
            kw["backend"] = args.backend
        if getattr(args, "query_model", None):
            kw["query_model"] = args.query_model
        dense = DenseConfig(**kw)
    sparse = None
    if getattr(args, "splade", False) or getattr(args, "splade_model", None) or getattr(args, "doc_top_n", None):
        from retrievo.config import SparseConfig

        kw = {"model": args.splade_model} if args.splade_model else {}
        sparse = SparseConfig(**kw, doc_top_n=args.doc_top_n)
    signals: dict[str, Any] = {}
    for spec in getattr(args, "signal", None) or []:
        name, _, raw = spec.partition("=")
        try:
            settings = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise RetrievoError(f"--signal {spec}: the settings are not valid JSON: {exc}") from exc
        signals[name] = settings
    if getattr(args, "multivector", False) or getattr(args, "multivector_model", None):
        mv = dict(signals.get("multivector", {}))
        if args.multivector_model:
            mv["model"] = args.multivector_model
        signals["multivector"] = mv
    return CollectionConfig(bm25=bm25, dense=dense, sparse=sparse, signals=signals)


def cmd_index(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection
    from retrievo.store.loaders import FieldMap, load_documents

    config = _config_from_args(args)
    log = None
    if args.expand_from and not args.tools:
        raise InvalidInputError("--expand-from expands tool documents; pass --tools with a tool spec file")
    if args.tools:  # validate everything before touching the collection
        from retrievo.structure.tools import load_tools, tools_config

        docs = load_tools(args.source)
        if "bm25f" not in config.signals:
            config = config.replace(signals={**config.signals, "bm25f": tools_config()})
        if args.expand_from:
            from retrievo.eval.datasets import BeirDataset

            ds = BeirDataset.from_path(args.expand_from)
            log = (ds.queries(args.expand_split), ds.qrels(args.expand_split))
            known = {d.id for d in docs}
            named = {t for rel in log[1].values() for t in rel}
            if not named & known:
                raise InvalidInputError(f"{args.expand_from}: the {args.expand_split!r} judgements name none of the "
                                        f"{len(known)} tools of {args.source} (ids such as {sorted(known)[:3]})")
            if config.dense is not None and args.expand_dense:
                config = config.replace(dense=config.dense.replace(fields=("title", "text", "x_queries")))
    else:
        fields = FieldMap(id=args.id_field, title=args.title_field, text=args.text_field)
        docs = load_documents(args.source, fields)
    if args.screen and not (Path(args.collection) / "manifest.json").exists():
        raise InvalidInputError(f"--screen: {args.collection} does not exist; the gate is calibrated on the documents "
                                "a collection already holds, so index a trusted set first")
    coll = Collection.open_or_create(args.collection, config)
    gate = None
    try:
        if args.screen:
            if len(coll) == 0:
                raise InvalidInputError("--screen: the gate is calibrated on the documents a collection already "
                                        "holds; index a trusted set first")
            from retrievo.eval.audit import Gate
            from retrievo.eval.retrievability import load_queries

            gate = Gate(coll, load_queries(args.probes, "test") if args.probes else None, max_fpr=args.max_fpr)
        if log is not None:
            from retrievo.structure.tools import expand_tools

            dense = coll.signals.get("dense")
            docs = expand_tools(docs, log[0], log[1], encoder=None if dense is None else dense.encoder,
                                cache=None if dense is None else dense.embedding_cache(),
                                tokenize=coll.analyzer.tokenize)
        held: list[dict[str, Any]] = []
        try:
            if gate is not None:
                outcome = gate.add(docs, upsert=args.upsert)
                held = outcome["quarantined"]
            elif args.upsert:
                coll.upsert(docs)
            else:
                coll.add(docs)
        except InvalidInputError as exc:  # the library's advice names a method; here it is a flag
            raise InvalidInputError(str(exc).replace("use upsert to replace documents",
                                                     "pass --upsert to replace them")) from None
        gen = coll.commit(show_progress=not args.quiet)
        print(f"indexed {len(docs) - len(held)} documents from {args.source} into {args.collection} "
              f"(now {len(coll)} documents, generation {gen})")
        if held:
            print(f"quarantined {len(held)} suspects (not searchable; `retrievo quarantine {args.collection}` lists "
                  "them, --release ID adds one):")
            for h in held[:20]:
                print(f"  {h['id']}: suspicion {h['suspicion']} ({', '.join(h['reasons'])})")
    finally:
        if gate is not None:
            gate.close()
        coll.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    req = request_from_args(args)
    coll = Collection.open(args.collection, readonly=True)
    try:
        res = coll.searcher.search(args.query, req)
        rows = res.row(0)
        docs = coll.get_many([d for d, _ in rows])
        if args.json:
            out = [
                {"id": d, "score": s, "title": doc.title if doc else "", "metadata": dict(doc.metadata) if doc else {}}
                for (d, s), doc in zip(rows, docs, strict=True)
            ]
            if res.probabilities is not None:
                for j, hit in enumerate(out):
                    hit["probability"] = round(float(res.probabilities[0, j]), 6)
            if res.explanations is not None:
                for hit, e in zip(out, res.explanations[0], strict=True):
                    hit["explain"] = e
            print(json.dumps({"query": args.query, "method": req.method, "results": out}, ensure_ascii=False))
        else:
            for rank, ((d, s), doc) in enumerate(zip(rows, docs, strict=True), start=1):
                title = (doc.title or doc.text[:80]) if doc else ""
                prob = "" if res.probabilities is None else f"  p={res.probabilities[0, rank - 1]:.2f}"
                print(f"{rank:>3}  {s:9.4f}{prob}  {d}  {title}")
                if res.explanations is not None:
                    print("     " + " · ".join(f"{name} —" if at is None else f"{name} #{at['rank']} {at['score']:.4f}"
                                               for name, at in res.explanations[0][rank - 1].items()))
            if not rows:
                print("no results")
            from retrievo.signals.registry import collection_methods

            others = [m for m in collection_methods(coll.signals) if m != req.method]
            if getattr(args, "opt_method", None) is None and others:  # the default was used: say so, and the others
                print(f"(method {req.method}, the default; this collection also has {', '.join(others)}: --method)",
                      file=sys.stderr)
    finally:
        coll.close()
    return 0


def cmd_batch_search(args: argparse.Namespace) -> int:
    from retrievo.eval.retrievability import load_queries
    from retrievo.eval.runs import write_run
    from retrievo.store.collection import Collection

    req = request_from_args(args)
    topics = load_queries(args.topics, args.split)  # checked before the collection is opened
    if not topics:
        raise InvalidInputError(f"{args.topics}: no queries")
    coll = Collection.open(args.collection, readonly=True)
    try:
        qids = list(topics)
        res = coll.searcher.search([topics[q] for q in qids], req, query_ids=qids)
    finally:
        coll.close()
    write_run(args.run_file, res.to_run(), tag=args.tag or res.method)
    print(f"searched {len(qids)} queries ({res.method}, k {req.k}) in {args.collection}; wrote {args.run_file}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection, readonly=True)
    try:
        info = coll.info()
    finally:
        coll.close()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key in ("path", "documents", "generation", "vocabulary", "dense_model", "dense_dim",
                    "bm25_postings_bytes_in_ram", "dense_bytes_on_disk_mmap", "dense_index_bytes_in_ram",
                    "bytes_on_disk"):
            print(f"{key:28s} {info[key]}")
        print(f"{'dense_index':28s} " + ", ".join(f"{k}={v}" for k, v in info["dense_index"].items()))
        print(f"{'segments':28s} " + ", ".join(f"#{s['segment']}: {s['live']}/{s['rows']} live" for s in info["segments"]))
        print(f"{'metadata fields':28s} " + (", ".join(f"{k} ({'/'.join(v)})" for k, v in info["fields"].items()) or "none"))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from retrievo.store.backup import backup

    out = backup(args.collection, args.dest)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"backed up generation {out['generation']} of {args.collection} ({out['documents']} documents, "
              f"{out['segments']} segments, {out['bytes'] / 1e6:.1f} MB) to {out['path']}; it opens as a collection")
    return 0


def _parse_bytes(text: str) -> int:
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abgikm")
    unit = t[len(num):]
    if unit not in units or not num:
        from retrievo.errors import InvalidInputError

        raise InvalidInputError(f"--memory-budget: cannot read {text!r}; use e.g. 500MB, 2GiB or 1000000")
    return int(float(num) * units[unit])


def cmd_plan(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection, readonly=not args.apply)
    try:
        plan = coll.plan_index(_parse_bytes(args.memory_budget), apply=args.apply)
    finally:
        coll.close()
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    print(f"{plan['documents']} documents, budget {plan['budget_bytes']:,} bytes; "
          f"recall@10 measured on {plan['calibration_vectors']} stored vectors")
    print(f"{'index':8s} {'bytes in RAM':>16s} {'recall@10':>10s}  fits")
    for c in plan["candidates"]:
        print(f"{c['index']:8s} {c['bytes_in_ram']:16,d} {c['expected_recall@10']:10.4f}  {'yes' if c['fits'] else 'no'}")
    chosen = plan["chosen"]
    print(f"chosen: {chosen['index']}" + (" (applied to the collection)" if plan["applied"] else "")
          if chosen else "no index fits this budget")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection)
    try:
        n = coll.delete(args.ids)
        gen = coll.commit()
        print(f"deleted {n} of {len(args.ids)} ids (generation {gen})")
    finally:
        coll.close()
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["dataset", "method", "queries", "ndcg@10", "recall@100", "mrr@10"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


def cmd_eval(args: argparse.Namespace) -> int:
    from retrievo.eval.runner import run_eval

    res = run_eval(
        args.dataset, request=request_from_args(args), split=args.split, config=_config_from_args(args),
        collection_dir=args.collection, run_file=args.run_file, depth=args.depth,
        show_progress=True,  # progress goes to stderr; stdout stays JSON
    )
    if args.json:
        print(json.dumps(res.to_json()))
    else:
        _print_table([res.to_json()])
        print(f"run file: {res.run_file}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from retrievo.eval.compare import compare_runs
    from retrievo.eval.datasets import BeirDataset
    from retrievo.eval.runs import read_run

    qrels = BeirDataset.from_path(args.dataset).qrels(args.split)
    res = compare_runs(read_run(args.run_a), read_run(args.run_b), qrels, trials=args.trials)
    if args.json:
        print(json.dumps([r.__dict__ for r in res]))
        return 0
    print(f"A = {args.run_a}\nB = {args.run_b}\n{len(qrels)} queries; paired tests on per-query values\n")
    print(f"{'measure':12s} {'A':>8s} {'B':>8s} {'B-A':>8s} {'p(t)':>8s} {'p(rand)':>8s}  B>A/B<A/=")
    for r in res:
        star = " *" if r.p_randomization < 0.05 else ""
        print(f"{r.measure:12s} {r.a:8.4f} {r.b:8.4f} {r.diff:+8.4f} {r.p_ttest:8.4f} {r.p_randomization:8.4f}  "
              f"{r.wins}/{r.losses}/{r.ties}{star}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from retrievo.eval.datasets import BeirDataset, bundled_dataset_path
    from retrievo.eval.runner import ensure_collection, run_eval

    data = bundled_dataset_path("scifact")
    config = _config_from_args(args)
    print(f"retrievo {__version__} quickstart: SciFact (BEIR, 5,183 abstracts) bundled at {data}")
    what = ["BM25"] + (["dense MiniLM embeddings"] if config.dense is not None else []) + (
        ["SPLADE vectors"] if config.sparse is not None else []) + (
        ["token vectors"] if "multivector" in config.signals else [])
    slow = "; encoding is the slow part, done once and cached" if len(what) > 1 else ""
    print(f"1/3 indexing ({' + '.join(what)}{slow}) ...")
    coll, secs = ensure_collection(BeirDataset.from_path(data), config, show_progress=True)
    print(f"    {len(coll)} documents indexed in {secs:.1f} s" if secs else f"    reusing {coll.path}")
    print("2/3 a few searches:")
    methods = ["bm25"] + (["dense", "hybrid"] if config.dense is not None else [])
    for q in ("Vitamin D deficiency is associated with multiple sclerosis.",
              "Microglia are the resident immune cells of the brain."):
        for m in methods:
            res = coll.search(q, k=3, method=m)
            print(f"    [{m}] {q}")
            for d, s in res.row(0):
                title = coll.get(d).title
                print(f"        {s:7.3f}  {d:>10s}  {textwrap.shorten(title, 80)}")
    coll.close()
    print("3/3 evaluation on the test split (300 queries):")
    rows = [run_eval(data, method=m, config=config, show_progress=False).to_json() for m in methods]
    _print_table(rows)
    return 0


def _listen(host: str, port: int) -> Any:
    """A socket bound to ``host:port`` for the server to listen on; a clear error when the port is taken."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RetrievoError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host, --port)") from exc
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import secrets
    from pathlib import Path

    import uvicorn

    from retrievo.server import ServerSettings, create_app

    root = Path(args.path)
    if args.ray is not None and args.workers != 1:
        raise RetrievoError("--ray serves from one process (the shards are Ray actors); leave out --workers")
    if args.ray is None and (root / "manifest.json").exists():
        raise RetrievoError(f"{root} is a collection; serve the folder that holds collections (here {root.parent})")
    fields: dict[str, Any] = {}
    if args.config:
        try:
            fields = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RetrievoError(f"--config {args.config}: {exc}") from exc
        if not isinstance(fields, dict):
            raise RetrievoError(f"--config {args.config}: expected a JSON object of server settings")
    if args.read_auth:
        fields["read_auth"] = True
    if args.commit_interval is not None:
        fields["commit_interval"] = args.commit_interval
    if args.cors_origin:
        fields["cors_origins"] = args.cors_origin
    if args.screen:
        fields["screen"] = True
    if args.screen_max_fpr is not None:
        fields["screen_max_fpr"] = args.screen_max_fpr
    key = os.environ.get("RETRIEVO_API_KEY") or fields.get("api_key")
    if not key:
        key = secrets.token_urlsafe(24)
        print(f"retrievo serve: no API key configured (RETRIEVO_API_KEY or the config file's api_key); "
              f"writes need this generated one: {key}", file=sys.stderr, flush=True)
    fields["api_key"] = key
    try:
        settings = ServerSettings(**fields)
    except ValueError as exc:
        raise RetrievoError(f"server settings: {exc}") from exc
    if args.workers < 1:
        raise RetrievoError(f"--workers must be at least 1, got {args.workers}")
    from retrievo.plugins import ENV_VAR, plugin_modules
    from retrievo.server.app import ROOT_ENV, SETTINGS_ENV
    from retrievo.store.collection import SERVER_ID_ENV

    # the worker processes read these (a lock held by a sibling worker is told apart by the server id)
    os.environ[SERVER_ID_ENV] = secrets.token_hex(8)
    os.environ[ROOT_ENV] = str(root)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    os.environ[ENV_VAR] = ",".join(plugin_modules(sys.argv[1:]))
    if args.workers > 1:  # the cores are shared out: each worker's encoders and BLAS get their part
        from retrievo.encoders.base import THREADS_ENV

        share = str(max(1, (os.cpu_count() or 1) // args.workers))
        os.environ.setdefault(THREADS_ENV, share)
        os.environ.setdefault("OMP_NUM_THREADS", share)
    # one process: the port is taken before anything slow starts (Ray and its worker processes, replaying
    # write-ahead logs), as uvicorn binds only after the app's start-up and a Ray worker could take the port meanwhile
    sock = _listen(args.host, args.port) if args.workers == 1 else None
    print(f"retrievo {__version__} serving {root.resolve()} on http://{args.host}:{args.port}/ "
          f"(API at /v1, spec at /openapi.json; {args.workers} worker process{'es' if args.workers > 1 else ''})",
          file=sys.stderr, flush=True)
    if args.workers > 1:  # one writer per collection among them; the others log writes for it and serve reads
        uvicorn.run("retrievo.server.app:app_from_env", factory=True, workers=args.workers, host=args.host,
                    port=args.port, log_level=args.log_level, access_log=False)
        return 0
    registry = None
    if args.ray is not None:
        from retrievo.server.sharded import ShardedRegistry

        registry = ShardedRegistry(root, ray_address=args.ray or None, screen_max_fpr=settings.screen_max_fpr)
    server = uvicorn.Server(uvicorn.Config(create_app(root, settings, registry=registry), host=args.host,
                                           port=args.port, log_level=args.log_level, access_log=False))
    server.run(sockets=[sock])
    return 0 if server.started else 3  # uvicorn's status for a failed start-up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrievo", description="Embedding-based retrieval engine.")
    parser.add_argument("--version", action="version", version=f"retrievo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # every command takes --plugin (imported before this parser is built, so plugin options are flags)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module first (it registers signals, stages or options); repeatable; "
                             "also RETRIEVO_PLUGINS=mod1,mod2")

    p = sub.add_parser("index", help="add documents from a BEIR folder, .jsonl, .csv or .parquet to a collection", parents=[common])
    p.add_argument("source")
    p.add_argument("--collection", required=True, help="collection folder (created if missing)")
    p.add_argument("--upsert", action="store_true", help="replace documents whose ids exist instead of failing")
    p.add_argument("--id-field", default="id")
    p.add_argument("--title-field", default="title")
    p.add_argument("--text-field", default="text")
    p.add_argument("--tools", action="store_true", help="SOURCE is a tool catalogue: a JSON list (or JSON Lines) of "
                   "OpenAI / JSON-Schema function specs, indexed with field-weighted BM25 (method bm25f)")
    p.add_argument("--expand-from", default=None, metavar="DATASET", help="--tools: expand each tool with the queries "
                   "of this BEIR folder whose judgements name it, pseudo-queries and similar queries (Tool-DE)")
    p.add_argument("--expand-split", default="train", help="--expand-from: the split to read (never your test split)")
    p.add_argument("--screen", action="store_true", help="admission gate: documents that look planted (retrievo "
                   "audit's signs) are quarantined instead of added")
    p.add_argument("--probes", default=None, help="--screen: probe queries (a query log: BEIR folder, .jsonl or text)")
    p.add_argument("--max-fpr", type=float, default=0.01, help="--screen: share of ordinary documents held back at most")
    p.add_argument("--expand-dense", action=argparse.BooleanOptionalAction, default=True,
                   help="--expand-from on a new collection: the dense text also holds the tool's training queries")
    p.add_argument("--quiet", action="store_true")
    _add_collection_config_args(p)
    p.set_defaults(func=cmd_index)

    add_structure_parsers(sub, common)

    p = sub.add_parser("search", help="search a collection", parents=[common])
    p.add_argument("collection")
    p.add_argument("query")
    p.add_argument("--json", action="store_true")
    add_search_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("batch-search", help="search every query of a topics file and write a TREC run file "
                       "(as Pyserini's SimpleSearcher batch runs)", parents=[common])
    p.add_argument("collection")
    p.add_argument("topics", help="a BEIR folder (its --split queries), .jsonl of {_id, text}, .tsv of id<TAB>text, "
                   "or a text file of one query a line")
    p.add_argument("--run-file", required=True, help="the TREC run file to write")
    p.add_argument("--split", default="test")
    p.add_argument("--tag", default=None, help="the run's tag (default: the method)")
    add_search_args(p)
    p.set_defaults(func=cmd_batch_search)

    add_learn_parsers(sub, common)

    p = sub.add_parser("info", help="describe a collection", parents=[common])
    p.add_argument("collection")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("backup", help="copy a collection's last commit to a new folder (safe while it is written)",
                       parents=[common])
    p.add_argument("collection")
    p.add_argument("dest", help="a new folder; it opens as a collection (restore = use or move it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("plan", help="choose the dense index that fits a memory budget, with its expected recall", parents=[common])
    p.add_argument("collection")
    p.add_argument("--memory-budget", required=True, help="RAM for the dense index, e.g. 500MB or 2GiB")
    p.add_argument("--apply", action="store_true", help="make the choice the collection's default index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("delete", help="delete documents by id", parents=[common])
    p.add_argument("collection")
    p.add_argument("ids", nargs="+")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("eval", help="evaluate a search setting on a BEIR folder", parents=[common])
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--collection", default=None, help="collection folder (default: a cache folder)")
    p.add_argument("--run-file", default=None, help="where to write the TREC run")
    p.add_argument("--depth", type=int, default=1000, help="results per query in the run")
    p.add_argument("--json", action="store_true")
    _add_collection_config_args(p)
    add_search_args(p, exclude=("k",))
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="compare two TREC runs with paired significance tests", parents=[common])
    p.add_argument("dataset", help="BEIR folder holding the qrels")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--split", default="test")
    p.add_argument("--trials", type=int, default=10000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("serve", help="serve the collections in a folder over HTTP (API, OpenAPI spec, search page)", parents=[common])
    p.add_argument("path", help="folder holding the collections (created if missing); with --ray, the folder of a "
                   "sharded collection")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="serve the sharded collection in PATH from the Ray cluster at ADDRESS ('auto': the running "
                   "one; '': start a local one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--config", default=None, help="JSON file of server settings (api_key, limits, ...)")
    p.add_argument("--read-auth", action="store_true", help="require the API key on read routes too")
    p.add_argument("--commit-interval", type=float, default=None, help="seconds between background commits")
    p.add_argument("--cors-origin", action="append", default=None, help="allow this origin (repeatable); off by default")
    p.add_argument("--screen", action="store_true", help="admission gate on every write (a request's ?screen=false "
                   "opts out): documents that look planted are quarantined, not added")
    p.add_argument("--screen-max-fpr", type=float, default=None, help="--screen: share of ordinary documents held "
                   "back at most (default 0.01)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes serving the same collections (one of them writes each collection)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("quickstart", help="index the bundled SciFact, search it and evaluate", parents=[common])
    _add_collection_config_args(p)
    p.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    from retrievo.plugins import load_plugins, plugin_modules

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        load_plugins(plugin_modules(argv))
    except RetrievoError as exc:
        print(f"retrievo: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RetrievoError as exc:
        print(f"retrievo: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
