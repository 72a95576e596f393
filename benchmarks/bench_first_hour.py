"""The README's two set-up commands timed as a newcomer runs them: a fresh clone of this checkout's last commit,
no virtual environment, an empty ``RETRIEVO_CACHE_DIR``, and each command exactly as the README's first bash
block writes it (read from the README, so the timing cannot drift from it). Issue 19 asks for each within 10
minutes on a 2-core machine, an AVX2-only one included; the CPU flags are printed and written with the times.

``--avx2-stand-in``, on an AVX-512 machine, comes as near an AVX2-only one as software allows: every process
reads ``/proc/cpuinfo`` without its ``avx512*``/``amx*`` flags (so retrievo's bf16 check says no and every
``auto`` choice takes the ONNX Runtime path), and PyTorch, MKL, faiss and numba are told to run AVX2 code. ONNX
Runtime chooses its kernels from CPUID with no switch, so its matrix products still run AVX-512 code: the
stand-in is an estimate, not the measurement.

    python benchmarks/bench_first_hour.py [--avx2-stand-in] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import HERE, cpu_flags, git_rev, header, write_section

README = HERE.parent / "README.md"

# the stand-in's sitecustomize: open("/proc/cpuinfo") gives a copy without the AVX-512 and AMX flags
HIDE_FLAGS = '''import builtins, io, os, re, tempfile
_open = io.open
_copy = None
def _cpuinfo():
    global _copy
    if _copy is None:
        with _open("/proc/cpuinfo") as f:
            text = re.sub(r" (avx512\\w*|amx\\w*)", "", f.read())
        fd, _copy = tempfile.mkstemp(prefix="cpuinfo-avx2-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return _copy
def _open_hiding(file, *a, **k):
    if isinstance(file, (str, os.PathLike)) and os.fspath(file) == "/proc/cpuinfo":
        file = _cpuinfo()
    return _open(file, *a, **k)
io.open = builtins.open = _open_hiding
'''
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "FAISS_OPT_LEVEL": "avx2",
            "NUMBA_CPU_NAME": "haswell"}


def setup_commands() -> list[str]:
    """The commands of the README's first bash block (comments and blank lines left out)."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S)
    if block is None:
        raise SystemExit(f"{README}: no bash block")
    cmds = [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(cmds) != 2:
        raise SystemExit(f"{README}: expected two set-up commands in the first bash block, found {len(cmds)}")
    return cmds


def run(cmd: str, cwd: Path, env: dict, log: Path, label: str) -> dict:
    """Run ``cmd`` in bash, its output to ``log``; a line every 30 s while it runs; wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(30):
                print(f"  {label}: {time.perf_counter() - t0:.0f} s", flush=True)

        threading.Thread(target=beat, daemon=True).start()
        rc = proc.wait()
        done.set()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": rc, "wall": wall, "cpu": cpu, "text": log.read_text(errors="replace")}


def minutes(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avx2-stand-in", action="store_true", help="hide AVX-512 (see above)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    install, tests = setup_commands()
    work = Path(tempfile.mkdtemp(prefix="retrievo-first-hour-"))
    clone = work / "retrievo"
    subprocess.run(["git", "clone", "-q", str(HERE.parent), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "RETRIEVO_CACHE_DIR")}
    venv_bin = os.environ.get("VIRTUAL_ENV", "\0") + "/bin"
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["RETRIEVO_CACHE_DIR"] = str(work / "cache")
    flags = cpu_flags()
    if args.avx2_stand_in:
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(HIDE_FLAGS)
        env.update(AVX2_ENV, PYTHONPATH=str(work / "site"))
        flags += " — AVX2 stand-in: avx512*/amx* hidden, ONNX Runtime still on its AVX-512 kernels"
    print(f"{git_rev()} cloned to {clone}; CPU flags: {flags}", flush=True)
    one = run(install, clone, env, work / "command1.log", "command 1")
    print(f"command 1: status {one['rc']}, {minutes(one['wall'])}", flush=True)
    two = run(". .venv/bin/activate && " + tests, clone, env, work / "command2.log", "command 2")
    print(f"command 2: status {two['rc']}, {minutes(two['wall'])}", flush=True)

    indexed = re.search(r"(\d+ documents indexed in [\d.]+ s)", one["text"])
    ndcg = dict(re.findall(r"\| scifact \| (\w+) \| 300 \| ([\d.]+) \|", one["text"]))
    summary = re.findall(r"(\d+ passed[^\n]*? in [\d.]+s)", two["text"])
    rows = [
        ("1", install, one, (indexed.group(1) if indexed else "no index line") + "; nDCG@10 "
         + ", ".join(f"{m} {v}" for m, v in ndcg.items())),
        ("2", tests, two, summary[-1] if summary else "no pytest summary"),
    ]
    title = "First run: the README's set-up commands on a fresh clone" + (" (AVX2 stand-in)" if args.avx2_stand_in
                                                                          else "")
    body = header(title, ("torch", "onnxruntime", "pytest-xdist")) + (
        f"\nCPU flags: {flags}. A fresh clone, no virtual environment, an empty `RETRIEVO_CACHE_DIR`; each command "
        "as the README writes it. Command: `python benchmarks/bench_first_hour.py"
        + (" --avx2-stand-in" if args.avx2_stand_in else "") + "`.\n\n"
        "| command | status | wall | CPU (user + sys) | result |\n|---|---|---|---|---|\n"
        + "\n".join(f"| {n} | {r['rc']} | {minutes(r['wall'])} | {r['cpu']:.0f} s | {what} |" for n, _, r, what in rows)
        + "\n")
    print(body)
    if one["rc"] or two["rc"]:
        raise SystemExit(f"a command failed: status {one['rc']} / {two['rc']}; its output: {work}/command*.log")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)])
    if not args.no_write:
        write_section("first-hour-stand-in" if args.avx2_stand_in else "first-hour", body)


if __name__ == "__main__":
    main()
