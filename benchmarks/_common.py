"""Shared helpers for the benchmark scripts: machine facts, timing, and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CACHE = HERE / ".cache"
SHARED = HERE.parent.parent / "shared"


def dataset_dir(name: str) -> Path:
    """A BEIR folder: ../shared/data, ../shared/holdout/data, or the bundled SciFact."""
    for p in (SHARED / "data" / name, SHARED / "holdout" / "data" / name):
        if p.is_dir():
            return p
    if name == "scifact":
        from retrievo.eval.datasets import bundled_dataset_path

        return bundled_dataset_path("scifact")
    raise FileNotFoundError(f"dataset {name!r} not found under {SHARED}")


def versions(*packages: str) -> str:
    out = []
    for p in packages:
        try:
            out.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(f"{p} (not installed)")
    return ", ".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def cpu_flags() -> str:
    """The vector instruction sets of this CPU that change which code paths run (AVX2, AVX-512, bf16, AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "unknown"
    keep = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return ", ".join(keep) or "no AVX2"


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE).stdout.strip()
    except OSError:
        return "?"


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md, keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# retrievo — measured results\n\n"
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"wrote section {name!r} of {RESULTS}")


def header(title: str, packages: tuple[str, ...]) -> str:
    return (f"## {title}\n\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}; retrievo at {git_rev()}; "
            f"{versions('retrievo', *packages)}.\n")


def eval_collection(ds, config=None):
    """The collection ``retrievo eval`` keeps for ``ds`` and ``config`` (default BM25 + MiniLM), opened; built
    first when missing."""
    from retrievo.config import CollectionConfig
    from retrievo.eval.runner import ensure_collection

    return ensure_collection(ds, config or CollectionConfig(), show_progress=True)[0]


def eval_collection_copy(ds, tag: str, config=None) -> Path:
    """A fresh copy (``benchmarks/.cache/<tag>-<dataset>``) of the collection ``retrievo eval`` keeps for ``ds``
    and ``config`` (default BM25 + MiniLM; built first when missing), for checks that change a collection."""
    import shutil

    coll = eval_collection(ds, config)
    coll.close()
    work = CACHE / f"{tag}-{ds.name}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(coll.path, work)
    return work


def trained_once(out: Path, ds, tag: str, train, retrain: bool = False) -> dict:
    """A model trained into ``out`` by ``train(collection, ds, out)`` on a fresh copy of ``ds``'s eval collection
    (removed afterwards), unless ``out`` holds one already (``retrain``: train again); its ``retrievo_training.json``."""
    import json
    import shutil

    from retrievo import Collection

    if retrain or not (out / "retrievo_training.json").exists():
        coll = Collection.open(eval_collection_copy(ds, tag))
        try:
            train(coll, ds, out)
        finally:
            coll.close()
            shutil.rmtree(CACHE / f"{tag}-{ds.name}", ignore_errors=True)
    return json.loads((out / "retrievo_training.json").read_text())
