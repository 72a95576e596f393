"""The commands that learn from relevance judgements or a new model: ``calibrate`` (probability of relevance),
``adapt`` (query adapter), ``train`` (fine-tune the dense model), ``train-reranker``, ``reindex`` (another dense
model), ``distill-queries`` (a static query encoder) and ``map-queries`` (query drift compensation).
``retrievo.cli.main`` builds the parser and adds these through :func:`add_learn_parsers`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from retrievo.cli.options import add_search_args, request_from_args
from retrievo.errors import InvalidInputError

__all__ = ["add_learn_parsers"]


def _add_judged_args(p: argparse.ArgumentParser) -> None:
    """The arguments of the commands that learn from relevance judgements (calibrate, adapt)."""
    p.add_argument("collection")
    p.add_argument("dataset", help="a BEIR folder whose queries and qrels judge this collection's documents")
    p.add_argument("--split", default="train", help="the judged split to learn from (not the one you report)")
    p.add_argument("--json", action="store_true")


def _learn_from_judgements(args: argparse.Namespace, learn):
    """``learn(collection, queries, qrels)`` with the ``--split`` of the BEIR folder ``args.dataset`` on the
    collection ``args.collection`` (opened writable: what is learnt is saved in it)."""
    from retrievo.eval.datasets import BeirDataset
    from retrievo.store.collection import Collection

    ds = BeirDataset.from_path(args.dataset)
    coll = Collection.open(args.collection)
    try:
        return coll, learn(coll, ds.queries(args.split), ds.qrels(args.split))
    finally:
        coll.close()


def cmd_calibrate(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    coll, cal = _learn_from_judgements(args, lambda c, q, r: c.searcher.calibrate(q, r, req, depth=args.depth))
    out = {"method": cal.method, "key": cal.key, "queries": cal.n_queries, "results": cal.n_results,
           "positive_rate": round(cal.positive_rate, 4),
           "file": str(coll.searcher.calibration_path(req.replace(k=args.depth)))}
    print(json.dumps(out) if args.json else
          f"calibrated {cal.key} on {cal.n_queries} judged queries of {args.split} "
          f"({cal.n_results} results, {cal.positive_rate:.1%} relevant) -> {out['file']}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    _, ad = _learn_from_judgements(args, lambda c, q, r: c.fit_query_adapter(
        q, r, negatives=args.negatives, epochs=args.epochs, show_progress=not args.json))
    info = ad.info.__dict__
    print(json.dumps(info) if args.json else
          f"query adapter learnt on {info['n_train']} judged queries of {args.split}: validation top-1 "
          f"{info['val_hit_before']:.3f} -> {info['val_hit_after']:.3f} (epoch {info['best_epoch']}); "
          f"search with --adapter")
    return 0


def _training_sources(args: argparse.Namespace) -> list[Any]:
    """``--source FOLDER[:WEIGHT]``: the ``--split`` of more BEIR folders, each with its own BM25 collection to
    mine negatives in (the one ``retrievo eval`` keeps: built once, lexical, nothing encoded)."""
    from retrievo.config import CollectionConfig
    from retrievo.eval.datasets import BeirDataset
    from retrievo.eval.runner import ensure_collection
    from retrievo.training.mixing import TrainingSource

    out = []
    for spec in args.source or []:
        folder, weight = spec, "1"
        head, sep, tail = spec.rpartition(":")
        if sep and not Path(spec).exists():  # FOLDER:WEIGHT (a folder whose name holds ':' is taken whole)
            folder, weight = head, tail
        try:
            w = float(weight)
        except ValueError:
            raise InvalidInputError(f"--source {spec!r}: the weight after ':' must be a number") from None
        ds = BeirDataset.from_path(folder)
        queries, qrels = ds.queries(args.split), ds.qrels(args.split)
        coll = ensure_collection(ds, CollectionConfig(dense=None), show_progress=not args.json)[0]
        out.append(TrainingSource(coll, queries, qrels, weight=w, name=ds.name))
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from retrievo.training.dense import train_dense

    sources = _training_sources(args)
    try:
        _, info = _learn_from_judgements(args, lambda c, q, r: train_dense(
            c, q, r, args.output, base_model=args.base_model, method=args.mine_method, depth=args.depth,
            negatives=args.negatives, max_positives=args.max_positives, max_rows=args.max_rows or None,
            epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, max_length=args.max_length, val_queries=args.val_queries,
            time_budget=args.time_budget * 60 if args.time_budget else None, seed=args.seed, overwrite=args.overwrite,
            show_progress=not args.json, sources=sources, weight=args.weight,
            learn_weights=args.learn_weights))
    finally:
        for src in sources:
            src.collection.close()
    out = {k: v for k, v in info.to_json().items() if k != "losses"}
    print(json.dumps(out) if args.json else
          f"dense model fine-tuned on {out['rows']} rows of {out['train_queries']} judged queries of {args.split} in "
          f"{out['seconds']:.0f} s ({out['steps']} steps{', stopped by the time budget' if out['stopped_by_budget'] else ''}); "
          f"held-out nDCG@10: {out['val_ndcg_before']:.4f} -> {out['val_ndcg_best']:.4f} -> {out['output']} "
          f"(index with --model {out['output']})"
          + "".join(f"\n  source {m['name']}: weight {m['weight']:.4g}"
                    + (f" (given {m['given_weight']:.4g}, influence on held-out nDCG@10 {m['reward']:+.4f})"
                       if "reward" in m else "") + f", {m['rows']} rows" for m in out["sources"]))
    return 0


def _add_training_args(p: argparse.ArgumentParser, negatives: int, lr: float, epochs: float) -> None:
    p.add_argument("--output", required=True, help="folder for the trained model (must not exist or be empty)")
    p.add_argument("--mine-method", default=None, help="first stage that mines negatives (default hybrid, or bm25 without dense vectors)")
    p.add_argument("--depth", type=int, default=30, help="negatives are drawn from this many first-stage results")
    p.add_argument("--negatives", type=int, default=negatives, help="hard negatives per query")
    p.add_argument("--max-positives", type=int, default=4, help="relevant documents per query at most")
    p.add_argument("--epochs", type=float, default=epochs)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--max-length", type=int, default=256, help="word pieces per text (per pair for a reranker)")
    p.add_argument("--val-queries", type=int, default=40, help="judged queries held out to choose the best checkpoint")
    p.add_argument("--time-budget", type=float, default=30.0, help="minutes; training stops there (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace the output folder")


def cmd_train_reranker(args: argparse.Namespace) -> int:
    from retrievo.training.reranker import train_reranker

    _, info = _learn_from_judgements(args, lambda c, q, r: train_reranker(
        c, q, r, args.output, base_model=args.base_model, method=args.mine_method, depth=args.depth,
        negatives=args.negatives, max_positives=args.max_positives, max_pairs=args.max_pairs or None,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
        val_queries=args.val_queries, time_budget=args.time_budget * 60 if args.time_budget else None,
        seed=args.seed, overwrite=args.overwrite, show_progress=not args.json))
    out = {k: v for k, v in info.to_json().items() if k != "losses"}
    print(json.dumps(out) if args.json else
          f"reranker trained on {out['pairs']} pairs of {out['train_queries']} judged queries of {args.split} in "
          f"{out['seconds']:.0f} s ({out['steps']} steps{', stopped by the time budget' if out['stopped_by_budget'] else ''}); "
          f"held-out nDCG@10 of reranking the {out['method']} top {out['depth']}: first stage "
          f"{out['val_ndcg_first_stage']:.4f}, untrained {out['val_ndcg_before']:.4f}, trained {out['val_ndcg_best']:.4f} "
          f"-> {out['output']} (search with --rerank {out['output']})")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil

    from retrievo.errors import CollectionExistsError
    from retrievo.store.collection import Collection

    out = Path(args.output)
    if out.exists():
        raise CollectionExistsError(f"reindex: {out} exists; name a new folder")
    src = Collection.open(args.collection, readonly=True)
    tmp = out.parent / f".{out.name}.reindexing"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if src.config.dense is None:
            raise InvalidInputError(f"reindex: {src.path} has no dense model to replace")
        config = src.config.replace(dense=dataclasses.replace(src.config.dense, model=args.model))
        dst = Collection.create(tmp, config)
        try:
            batch, n = [], 0
            for doc in src.iter_documents():  # the documents as committed, metadata included
                batch.append(doc)
                if len(batch) == args.batch:
                    dst.add(batch)
                    dst.commit(show_progress=not args.quiet)
                    n, batch = n + len(batch), []
            if batch:
                dst.add(batch)
                n += len(batch)
            gen = dst.commit(show_progress=not args.quiet)
        finally:
            dst.close()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        src.close()
    print(f"re-indexed {n} documents of {args.collection} with {args.model} into {out} (generation {gen}); "
          "calibrators and adapters were fitted to the old model's scores and are not copied")
    return 0


def cmd_distill_queries(args: argparse.Namespace) -> int:
    from retrievo.encoders.static import distill_static
    from retrievo.store.collection import Collection

    queries: list[str] = []
    if args.queries:
        from retrievo.eval.datasets import BeirDataset

        queries = list(BeirDataset.from_path(args.queries).queries(args.split).values())
    coll = Collection.open(args.collection, readonly=True)
    try:
        meta = distill_static(coll, args.output, queries=queries, max_texts=args.max_texts, seed=args.seed,
                              overwrite=args.overwrite, show_progress=not args.json)
    finally:
        coll.close()
    print(json.dumps(meta) if args.json else
          f"static query encoder distilled from {meta['teacher']} in {meta['seconds']:.0f} s, aligned on {meta['texts']} "
          f"texts (held-out cosine with the model {meta['heldout_cosine_before']:.3f} -> {meta['heldout_cosine']:.3f}) "
          f"-> {args.output} (use it with --query-model {args.output})")
    return 0


def cmd_map_queries(args: argparse.Namespace) -> int:
    from retrievo.eval.retrievability import load_queries
    from retrievo.store.collection import Collection

    queries = None if args.queries is None else list(load_queries(args.queries, args.split).values())
    coll = Collection.open(args.collection)
    try:
        qm = coll.searcher.fit_query_map(args.model, sample=args.sample, ridge=args.ridge, seed=args.seed,
                                         show_progress=not args.json, queries=queries)
    finally:
        coll.close()
    out = {"model": qm.model, **qm.info}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"query map from {qm.model} fitted on {out['documents']} documents (held-out R2 {out['heldout_r2']:.3f}, "
          f"cosine {out['heldout_cosine']:.3f})" + ("" if queries is not None else "; search with --query-map"))
    if queries is not None:
        print(f"then on the scores of {out['queries']} queries: held-out queries' top documents scored within "
              f"{out['heldout_top_rmse']:.4f} of the new model's (documents-only map: "
              f"{out['heldout_top_rmse_documents_map']:.4f}, root mean square); search with --query-map")
    return 0


def add_learn_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommands of this module to the ``retrievo`` parser's subparsers."""
    p = sub.add_parser("calibrate", help="fit a search setting's probability of relevance on judged queries "
                       "(BEIR qrels); searches with the same settings can then cut by --min-probability",
                       parents=[common])
    _add_judged_args(p)
    p.add_argument("--depth", type=int, default=20, help="results per query to fit on")
    add_search_args(p, exclude=("k", "min_probability"))
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("adapt", help="learn a query adapter for the dense signal from judged queries (no re-indexing)", parents=[common])
    _add_judged_args(p)
    p.add_argument("--negatives", type=int, default=30, help="hard negatives per query")
    p.add_argument("--epochs", type=int, default=30)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("train", help="fine-tune the collection's dense model on judged queries; index with "
                       "--model FOLDER", parents=[common])
    _add_judged_args(p)
    p.add_argument("--base-model", default=None, help="model to fine-tune (default: the collection's dense model)")
    p.add_argument("--max-rows", type=int, default=2000, help="(query, relevant document) rows at most (whole queries "
                   "sampled to fit; 0: all)")
    p.add_argument("--source", action="append", default=None, metavar="FOLDER[:WEIGHT]",
                   help="more judged queries: the --split of another BEIR folder, mixed in by WEIGHT (default 1; "
                   "repeatable)")
    p.add_argument("--weight", type=float, default=1.0, help="with --source: the mixing weight of DATASET's queries")
    p.add_argument("--learn-weights", action="store_true", help="with --source: scale each weight by the source's "
                   "influence on the held-out queries (a query adapter fitted to it alone; Inf-DDS-style)")
    _add_training_args(p, negatives=3, lr=2e-5, epochs=2.0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-reranker", help="train a cross-encoder reranker on judged queries (from the bundled "
                       "MiniLM backbone by default); rerank with it by --rerank FOLDER", parents=[common])
    _add_judged_args(p)
    p.add_argument("--base-model", default=None, help="backbone: a transformer folder or hub name (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--max-pairs", type=int, default=8000, help="pairs at most (whole queries sampled to fit; 0: all)")
    _add_training_args(p, negatives=7, lr=3e-5, epochs=1.0)
    p.set_defaults(func=cmd_train_reranker)

    p = sub.add_parser("reindex", help="copy a collection into a new folder with another dense model (e.g. one "
                       "`retrievo train` wrote); texts already encoded by that model come from the cache", parents=[common])
    p.add_argument("collection")
    p.add_argument("--model", required=True, help="the new dense model (name or folder)")
    p.add_argument("--output", required=True, help="the new collection's folder (must not exist)")
    p.add_argument("--batch", type=int, default=20000, help="documents per commit")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("distill-queries", help="distil a static query encoder (sub-millisecond queries) from the "
                       "collection's dense model; use it with --query-model", parents=[common])
    p.add_argument("collection")
    p.add_argument("--output", required=True, help="folder for the query encoder")
    p.add_argument("--queries", default=None, help="a BEIR folder whose queries (of --split) are aligned on too")
    p.add_argument("--split", default="train")
    p.add_argument("--max-texts", type=int, default=20000, help="texts to align on at most")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_distill_queries)

    p = sub.add_parser("map-queries", help="after a model change: map the new model's queries into the stored "
                       "vectors' space (no re-indexing); search with --query-map", parents=[common])
    p.add_argument("collection")
    p.add_argument("--model", required=True, help="the new dense model (name or folder)")
    p.add_argument("--sample", type=int, default=4000, help="documents encoded by the new model to fit the map on")
    p.add_argument("--ridge", type=float, default=None, help="ridge strength (default: chosen by held-out fit)")
    p.add_argument("--queries", default=None, help="queries whose new-model scores the map keeps (a query log: BEIR "
                   "folder, .jsonl, .tsv or text; no judgements needed) — much closer to re-indexing than documents "
                   "alone")
    p.add_argument("--split", default="train", help="the BEIR split whose queries are used (default train)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_map_queries)
