"""The commands that look at a collection as a whole rather than search it: its metadata values
(``facets``), browse its semantic tree (``tree``), topics from keywords (``topics``), retrievability (``retrievability``), and the defence — ``audit``
and the admission gate's ``quarantine``. ``retrievo.cli.main`` builds the parser and adds these through
:func:`add_structure_parsers`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_structure_parsers"]


def cmd_tree(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection, readonly=True)
    try:
        node = coll.browse_tree(args.node, documents=args.documents)
        if args.json:
            print(json.dumps(node, indent=2))
            return 0
        print(f"node {node['id']} (depth {node['depth']}, {node['size']} documents): {', '.join(node['summary'])}")

        def show(n: dict[str, Any], indent: int, levels: int) -> None:
            for c in n["children"]:
                print(f"{'  ' * indent}- node {c['id']} ({c['size']}{', leaf' if c['leaf'] else ''}): "
                      f"{', '.join(c['summary'][:6])}")
                if levels > 1 and not c["leaf"]:
                    show(coll.browse_tree(c["id"], documents=0), indent + 1, levels - 1)

        show(node, 1, args.levels)
        if node.get("documents"):
            print("  documents: " + ", ".join(node["documents"]))
    finally:
        coll.close()
    return 0


def cmd_facets(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection, readonly=True)
    try:
        out = coll.facets(args.field, args.filter, args.limit)
    finally:
        coll.close()
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if not out:
        print("no metadata values" + (" among the documents that pass the filter" if args.filter else ""))
    for field, f in out.items():
        span = f", {f['min']}–{f['max']}" if "min" in f else ""
        print(f"{field} ({f['documents']} documents{span})")
        for e in f["values"]:
            print(f"  {e['count']:>8}  {json.dumps(e['value'], ensure_ascii=False)}")
        if f["more"]:
            print(f"  … {f['more']} more values (--limit)")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from retrievo.store.collection import Collection
    from retrievo.structure.topics import fit_topics, load_topics

    topics = load_topics(args.topics)  # checked before the collection is opened
    coll = Collection.open(args.collection, readonly=True)
    try:
        model = fit_topics(coll, topics, max_docs=args.max_docs)
        assigned = model.assign(args.min_similarity)
    finally:
        coll.close()
    counts = {n: 0 for n in model.names}
    for t in assigned.values():
        if t is not None:
            counts[t] += 1
    out = {"topics": [{"name": n, "keywords": topics[n], "assigned": counts[n],
                       "documents": [{"id": d, "similarity": round(s, 6)} for d, s in model.documents(n, args.k)]}
                      for n in model.names],
           "unassigned": sum(t is None for t in assigned.values())}
    if args.assignments:
        with open(args.assignments, "w", encoding="utf-8") as fh:
            for i, (d, t) in enumerate(assigned.items()):
                sims = model.similarities[i]
                fh.write(json.dumps({"id": d, "topic": t, "similarity": round(float(sims.max()), 6)}) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for t in out["topics"]:
        print(f"{t['name']} ({', '.join(t['keywords'])}): {t['assigned']} documents assigned")
        for d in t["documents"]:
            print(f"  {d['similarity']:.4f}  {d['id']}")
    print(f"unassigned: {out['unassigned']}" + (f"; assignments written to {args.assignments}" if args.assignments else ""))
    return 0


def cmd_retrievability(args: argparse.Namespace) -> int:

    from retrievo.eval.retrievability import generate_queries, load_queries, lorenz_plot, retrievability
    from retrievo.store.collection import Collection

    coll = Collection.open(args.collection, readonly=True)
    try:
        if args.queries:
            queries = load_queries(args.queries, args.split)
            where = f"{len(queries)} queries from {args.queries}"
        else:
            queries = generate_queries(coll, args.n_queries, seed=args.seed)
            where = f"{len(queries)} queries drawn from the documents (seed {args.seed})"
        methods = args.methods.split(",") if args.methods else None
        rep = retrievability(coll, queries, methods, cutoff=args.cutoff, show_progress=not args.json)
    finally:
        coll.close()
    out = rep.summary()
    out["query_source"] = where
    if args.plot:
        out["plot"] = str(lorenz_plot(rep, args.plot))
    if args.blind_spots:
        Path(args.blind_spots).write_text("".join(f"{d}\n" for d in rep.blind_spots), encoding="utf-8")
        out["blind_spots_file"] = args.blind_spots
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"retrievability at top {rep.cutoff} over {where}, {len(rep.ids)} documents")
    for m, v in out["methods"].items():
        print(f"  {m:10s} Gini {v['gini']:.4f}   never retrieved {v['never_retrieved']:6d}   most {v['max']}")
    print(f"  blind spots (no method retrieves them): {out['blind_spots']}"
          + (f", listed in {args.blind_spots}" if args.blind_spots else ""))
    if args.plot:
        print(f"  Lorenz curves: {out['plot']}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from retrievo.eval.audit import audit
    from retrievo.eval.retrievability import load_queries
    from retrievo.store.collection import Collection

    probes = load_queries(args.probes, args.split) if args.probes else None
    coll = Collection.open(args.collection, readonly=True)
    try:
        rep = audit(coll, probes, max_fpr=args.max_fpr, n_probes=args.n_probes, seed=args.seed)
    finally:
        coll.close()
    out = rep.summary()
    out["suspects_list"] = [{"id": s.id, "suspicion": round(s.suspicion, 3), "reasons": s.reasons,
                             "signs": {k: round(v, 4) for k, v in s.signs.items()}} for s in rep.suspects[:args.top]]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"audited {rep.documents} documents with {rep.probes} probe queries: {len(rep.suspects)} suspects "
          f"({out['reference_fpr']:.2%} of the reference flagged; a new clean document is flagged with probability "
          f"at most {out['new_document_fpr_bound']:.2%}, the bound {rep.max_fpr:.1%} asked for)")
    for s in out["suspects_list"]:
        print(f"  {s['suspicion']:7.2f}  {s['id']}  ({', '.join(s['reasons'])})")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from retrievo.eval.audit import Quarantine
    from retrievo.store.collection import Collection

    if args.release or args.drop:
        coll = Collection.open(args.collection)
        try:
            if args.release:
                n = coll.release(args.release)
                gen = coll.commit()
                print(f"released {n} documents into {args.collection} (generation {gen})")
            if args.drop:
                print(f"dropped {coll.drop_quarantined(args.drop)} documents from the quarantine for good")
        finally:
            coll.close()
        return 0
    held = Quarantine.read(args.collection)
    if args.json:
        print(json.dumps(held, indent=2))
    else:
        for h in held:
            print(f"{h['suspicion']:7.2f}  {h['id']}  ({', '.join(h['reasons'])})")
        print(f"{len(held)} documents in quarantine")
    return 0


def add_structure_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommands of this module to the ``retrievo`` parser's subparsers."""
    p = sub.add_parser("audit", help="score every document for signs of planted passages and list the suspects "
                       "(changes nothing)", parents=[common])
    p.add_argument("collection")
    p.add_argument("probes", nargs="?", default=None, help="probe queries: a query log as a BEIR folder, .jsonl or "
                   "text file (default: queries drawn from the documents)")
    p.add_argument("--split", default="test")
    p.add_argument("--max-fpr", type=float, default=0.01, help="at most this share of documents is flagged")
    p.add_argument("--n-probes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=50, help="suspects to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("quarantine", help="documents the admission gate (index --screen) held back; --release "
                       "adds them, --drop forgets them", parents=[common])
    p.add_argument("collection")
    p.add_argument("--release", nargs="+", default=None, metavar="ID", help="add these to the collection")
    p.add_argument("--drop", nargs="+", default=None, metavar="ID", help="forget these for good")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("retrievability", help="how retrievable each document is under each method (Gini, "
                       "Lorenz curve, blind spots)", parents=[common])
    p.add_argument("collection")
    p.add_argument("queries", nargs="?", default=None, help="a BEIR folder, .jsonl of {_id, text} or a text file of "
                   "one query a line (default: queries drawn from the documents)")
    p.add_argument("--split", default="test", help="the BEIR split whose queries are used")
    p.add_argument("--n-queries", type=int, default=2000, help="queries to draw when none are given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cutoff", type=int, default=100, help="a document counts when ranked within this many")
    p.add_argument("--methods", default=None, help="comma-separated (default: bm25, dense, splade, hybrid as present)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the Lorenz curves here")
    p.add_argument("--blind-spots", default=None, metavar="FILE", help="write the ids no method retrieves here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrievability)

    p = sub.add_parser("facets", help="the most frequent values of each metadata field and their document counts "
                       "(what a filter on them returns)", parents=[common])
    p.add_argument("collection")
    p.add_argument("--field", action="append", default=None, help="a field to count (repeatable; default: all)")
    p.add_argument("--filter", default=None, help="count only documents that pass this filter (JSON)")
    p.add_argument("--limit", type=int, default=10, help="values listed per field")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_facets)

    p = sub.add_parser("topics", help="documents per topic, each topic given by a few keywords (Lbl2Vec); also a "
                       "classifier of every document", parents=[common])
    p.add_argument("collection")
    p.add_argument("topics", help="YAML or JSON: {topic: [keywords]}")
    p.add_argument("--k", type=int, default=10, help="documents to show per topic")
    p.add_argument("--max-docs", type=int, default=50, help="documents a topic vector is computed from")
    p.add_argument("--min-similarity", type=float, default=0.0, help="below it a document is left unassigned")
    p.add_argument("--assignments", default=None, metavar="FILE", help="write each document's topic as JSON Lines")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("tree", help="browse the semantic tree of a collection's dense vectors (method tree)",
                       parents=[common])
    p.add_argument("collection")
    p.add_argument("--node", type=int, default=0, help="the node to show (0: the root)")
    p.add_argument("--levels", type=int, default=1, help="levels of children to show below it")
    p.add_argument("--documents", type=int, default=20, help="a leaf's documents to list at most")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tree)
