"""Every shell example of the README runs as written and exits 0, in a temporary folder with small data.

The folder is laid out as the README assumes: ``../shared/data/scifact`` is a small SciFact (the first documents
plus those judged for 40 train and 30 test queries), ``corpus.jsonl``, ``corpus/``, ``topics.tsv``, ``tools.json``,
``topics.yaml`` and the judged folders the examples name exist, and the collections they name are made by the
examples before them (``COLLECTION`` and ``my-collection`` from the small corpus first). ``retrievo serve`` is
started, answers ``/v1/health``, and is stopped. The set-up block (install, quickstart, the test command) is what
``.ci/run`` itself runs, so it is not repeated here. Marked ``readme`` (minutes of model work): CI runs it as a step
of its own, ``python -m pytest -q -m readme``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SCIFACT

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.readme


def shell_examples() -> list[tuple[int, str]]:
    """``(line, command)`` of every command in the README's bash blocks after the set-up block (continuations
    joined, comments dropped)."""
    text = README.read_text()
    out = []
    blocks = list(re.finditer(r"```bash\n(.*?)```", text, re.S))
    for m in blocks[1:]:
        first = text[: m.start()].count("\n") + 2
        pending = ""
        for i, raw in enumerate(m.group(1).splitlines()):
            line = raw.split("  #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            out.append((first + i, pending + line.strip()))
            pending = ""
    return out


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _small_scifact(folder: Path) -> list[dict]:
    with gzip.open(SCIFACT / "queries.jsonl.gz", "rt") as fh:
        queries = {q["_id"]: q for q in map(json.loads, fh)}
    qrels: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "test"):
        lines = (SCIFACT / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        qrels[split] = [tuple(line.split("\t")[:2]) for line in lines]
    keep_q = {"train": sorted({q for q, _ in qrels["train"]})[:40], "test": sorted({q for q, _ in qrels["test"]})[:30]}
    wanted = {d for s in qrels for q, d in qrels[s] if q in keep_q[s]}
    docs = []
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as fh:
        for i, d in enumerate(map(json.loads, fh)):
            if i < 150 or d["_id"] in wanted:
                docs.append(d)
    _jsonl(folder / "corpus.jsonl", docs)
    _jsonl(folder / "queries.jsonl", [queries[q] for s in keep_q for q in keep_q[s]])
    (folder / "qrels").mkdir(exist_ok=True)
    for s in keep_q:
        rows = [f"{q}\t{d}\t1" for q, d in qrels[s] if q in keep_q[s]]
        (folder / "qrels" / f"{s}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return docs


def _workspace(root: Path) -> tuple[Path, dict[str, str]]:
    work = root / "work"
    work.mkdir()
    sci = root / "shared" / "data" / "scifact"  # ../shared/data/scifact from the working folder
    docs = _small_scifact(sci)
    for name in ("judged", "judged-beir-folder", "corpus"):
        (work / name).mkdir()
        for f in ("corpus.jsonl", "queries.jsonl"):
            (work / name / f).write_text((sci / f).read_text())
        (work / name / "qrels").mkdir()
        for s in ("train", "test"):
            (work / name / "qrels" / f"{s}.tsv").write_text((sci / "qrels" / f"{s}.tsv").read_text())
    _jsonl(work / "corpus.jsonl", [{"id": d["_id"], "title": d["title"], "text": d["text"],
                                    "metadata": {"year": 2015 + i % 10}} for i, d in enumerate(docs)])
    (work / "topics.tsv").write_text("t1\tfever medicine\nt2\tcancer cells and tumour growth\n")
    (work / "topics.yaml").write_text("cancer: [cancer, tumour, oncology]\nheart: [cardiac, heart, artery]\n")
    tools = [("get_weather", "Current weather for a city.", {"city": "the city name"}),
             ("convert_currency", "Convert an amount from one currency to another.",
              {"amount": "how much", "from_currency": "ISO code", "to_currency": "ISO code"}),
             ("send_email", "Send an email to a recipient.", {"to": "address", "body": "the message"}),
             ("search_flights", "Find flights between two airports on a date.", {"origin": "IATA code",
                                                                                   "destination": "IATA code"})]
    (work / "tools.json").write_text(json.dumps([
        {"type": "function", "function": {"name": n, "description": d, "parameters": {
            "type": "object", "properties": {k: {"type": "string", "description": v} for k, v in p.items()},
            "required": list(p)}}} for n, d, p in tools]))
    log = work / "my-query-log"
    _jsonl(log / "corpus.jsonl", [{"_id": n, "text": d} for n, d, _ in tools])
    _jsonl(log / "queries.jsonl", [{"_id": f"l{i}", "text": t} for i, t in enumerate(
        ["is it raining in Paris", "how many dollars is 20 euros", "email my boss the report", "flights to Tokyo"])])
    (log / "qrels").mkdir()
    (log / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"l{i}\t{n}\t1\n" for i, (n, _, _) in enumerate(tools)))
    env = {**os.environ, "RETRIEVO_API_KEY": "readme-key"}
    return work, env


def _run(cmd: str, work: Path, env: dict[str, str], line: int) -> None:
    args = shlex.split(cmd)
    assert args[0] == "retrievo", f"README line {line}: not a retrievo command: {cmd}"
    full = [sys.executable, "-m", "retrievo", *args[1:]]
    if args[1] == "serve":
        from retrievo.server.process import free_port

        port = free_port()
        full = [a if a != "8000" else str(port) for a in full]
        proc = subprocess.Popen(full, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"README line {line}: {cmd} exited: {proc.stderr.read().decode()[-2000:]}"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            raise AssertionError(f"README line {line}: {cmd} did not answer /v1/health")
        finally:
            proc.terminate()
            proc.wait(30)
    done = subprocess.run(full, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"README line {line}: {cmd}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"


def test_every_readme_shell_example_runs(tmp_path):
    work, env = _workspace(tmp_path)
    examples = shell_examples()
    assert len(examples) > 30
    _run("retrievo index corpus/ --collection COLLECTION", work, env, 0)  # the collection the examples call COLLECTION
    for line, cmd in examples:
        if cmd.startswith("export "):
            key, _, value = cmd[len("export "):].partition("=")
            env[key] = value
            continue
        _run(cmd, work, env, line)
