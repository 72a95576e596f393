"""BEIR-format test collections: ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from retrievo.errors import NotFoundError, SourceFormatError
from retrievo.store.loaders import open_text

__all__ = ["BeirDataset", "bundled_dataset_path"]


def bundled_dataset_path(name: str = "scifact") -> Path:
    """The folder of a dataset that ships inside the package (SciFact)."""
    path = Path(__file__).resolve().parent.parent / "data" / name
    if not (path / "qrels").is_dir():
        raise NotFoundError(f"no bundled dataset {name!r} (looked in {path})")
    return path


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise NotFoundError(f"{folder}: missing {stem} (or {stem}.gz); is this a BEIR folder?")


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR folder. ``name`` is the folder name."""

    path: Path

    @classmethod
    def from_path(cls, path: str | Path) -> BeirDataset:
        p = Path(path)
        if not p.is_dir():
            raise NotFoundError(f"{p}: not a folder; expected a BEIR dataset folder")
        return cls(p.resolve())

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def corpus_path(self) -> Path:
        return _find(self.path, "corpus.jsonl")

    def splits(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "qrels").glob("*.tsv"))

    def qrels(self, split: str = "test") -> dict[str, dict[str, int]]:
        path = self.path / "qrels" / f"{split}.tsv"
        if not path.exists():
            raise NotFoundError(f"{self.path}: no qrels for split {split!r} (have: {self.splits()})")
        out: dict[str, dict[str, int]] = {}
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for lineno, row in enumerate(reader, start=1):
                if lineno == 1 and row and row[0] == "query-id":
                    continue
                if not row:
                    continue
                if len(row) != 3:
                    raise SourceFormatError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(row)}")
                try:
                    score = int(row[2])
                except ValueError as exc:
                    raise SourceFormatError(f"{path}:{lineno}: relevance {row[2]!r} is not an integer") from exc
                out.setdefault(row[0], {})[row[1]] = score
        return out

    def queries(self, split: str | None = "test") -> dict[str, str]:
        """Queries of ``split`` (those with judgements), in file order; ``None`` for all."""
        wanted = set(self.qrels(split)) if split else None
        path = _find(self.path, "queries.jsonl")
        out: dict[str, str] = {}
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    qid, text = str(rec["_id"]), rec["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise SourceFormatError(f"{path}:{lineno}: expected a JSON object with _id and text ({exc})") from exc
                if wanted is None or qid in wanted:
                    out[qid] = text
        return out
