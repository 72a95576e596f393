"""TREC run files: ``qid Q0 docid rank score tag`` per line."""

from __future__ import annotations

from pathlib import Path

from retrievo.errors import NotFoundError, SourceFormatError

__all__ = ["read_run", "write_run"]


def write_run(path: str | Path, run: dict[str, dict[str, float]], tag: str = "retrievo") -> None:
    """Write a run dict, each query's documents by descending score (ties by doc id)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                fh.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """A TREC run file as ``{qid: {doc_id: score}}``.

    Raises:
        NotFoundError: no such file (the message says how to make one).
        SourceFormatError: a malformed line, named by file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such run file; write one with `retrievo eval DATASET --method METHOD "
                            f"--run-file {path.name}` or `retrievo batch-search COLLECTION TOPICS --run-file {path.name}`")
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise SourceFormatError(f"{path}:{lineno}: a TREC run line has 6 fields, got {len(parts)}")
            try:
                score = float(parts[4])
            except ValueError as exc:
                raise SourceFormatError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from exc
            run.setdefault(parts[0], {})[parts[2]] = score
    return run
