"""Two-click reproduction: run every setting of beir.yaml, check it against its expected scores, and
regenerate the BEIR table of RESULTS.md (in the spirit of Pyserini's 2CR pages).

Run: python benchmarks/run_beir.py [--only scifact] [--tolerance 0.002]
Each setting's ``command`` is run as written (``{shared}`` is replaced by the path of ../shared), must
print the JSON object of ``retrievo eval --json``, and is marked OK when every expected score is met
within the tolerance. Holdout datasets are reported, never used to choose settings.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time

import yaml

from _common import CACHE, HERE, SHARED, header, write_section
from retrievo.eval.compare import compare_runs
from retrievo.eval.datasets import BeirDataset
from retrievo.eval.runs import read_run

RUNS = CACHE / "runs"


def plot(results: list[tuple[str, str, float]], path) -> None:
    """Grouped bars of nDCG@10: one group per dataset, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(d for d, _, _ in results))
    methods = list(dict.fromkeys(m for _, m, _ in results))
    value = {(d, m): v for d, m, v in results}
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, m in enumerate(methods):
        xs = [j + i * width for j, d in enumerate(datasets) if (d, m) in value]
        ys = [value[(d, m)] for d in datasets if (d, m) in value]
        bars = ax.bar(xs, ys, width, label=m)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(datasets))], datasets)
    ax.set_ylabel("nDCG@10 (test)")
    ax.set_ylim(0, 1.1)
    ax.set_title("retrievo on BEIR collections (benchmarks/beir.yaml)")
    ax.legend(ncol=len(methods), fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="run only settings of this dataset")
    ap.add_argument("--tolerance", type=float, default=0.002)
    args = ap.parse_args()
    spec = yaml.safe_load((HERE / "beir.yaml").read_text())
    rows = ["| dataset | split | method | nDCG@10 | R@100 | MRR@10 | expected nDCG@10 | status | seconds |",
            "|---|---|---|---|---|---|---|---|---|"]
    failures = 0
    results: list[tuple[str, str, float]] = []
    for s in spec["settings"]:
        if args.only and s["dataset"] != args.only:
            continue
        cmd = s["command"].replace("{shared}", str(SHARED))
        run_path = RUNS / f"{s['dataset']}-{s['method']}.trec"
        argv = shlex.split(cmd) + ["--run-file", str(run_path)]  # an output location only
        if argv[0] == "retrievo":
            argv = [sys.executable, "-m", "retrievo", *argv[1:]]
        print(f"$ {cmd}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            rows.append(f"| {s['dataset']} | {s['split']} | {s['method']} | – | – | – | – | FAILED (exit {proc.returncode}) | {secs:.0f} |")
            failures += 1
            continue
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append((s["dataset"] + (" (holdout)" if s.get("holdout") else ""), s["method"], got["ndcg@10"]))
        exp = s.get("expected") or {}
        ok = all(abs(got[m] - v) <= args.tolerance for m, v in exp.items())
        status = "OK" if ok and exp else ("no expectation" if not exp else "MISMATCH")
        failures += status == "MISMATCH"
        tag = " (holdout)" if s.get("holdout") else ""
        rows.append(
            f"| {s['dataset']}{tag} | {s['split']} | {s['method']} | {got['ndcg@10']:.4f} | {got['recall@100']:.4f} | "
            f"{got['mrr@10']:.4f} | {exp.get('ndcg@10', '–')} | {status} | {secs:.0f} |"
        )
        print(rows[-1], flush=True)
    crow = ["| dataset | A | B | nDCG@10 A | nDCG@10 B | B−A | p (paired t) | p (randomisation) | B>A / B<A / = |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in spec.get("comparisons", []):
        if args.only and c["dataset"] != args.only:
            continue
        ra, rb = RUNS / f"{c['dataset']}-{c['a']}.trec", RUNS / f"{c['dataset']}-{c['b']}.trec"
        data = next(s["command"].split()[2] for s in spec["settings"] if s["dataset"] == c["dataset"])
        res = compare_runs(read_run(ra), read_run(rb), BeirDataset.from_path(data.replace("{shared}", str(SHARED))).qrels("test"))
        m = next(r for r in res if r.measure == "ndcg@10")
        crow.append(f"| {c['dataset']} | {c['a']} | {c['b']} | {m.a:.4f} | {m.b:.4f} | {m.diff:+.4f} | {m.p_ttest:.2g} | "
                    f"{m.p_randomization:.2g} | {m.wins} / {m.losses} / {m.ties} |")
        print(crow[-1], flush=True)
    if not args.only:
        plot(results, HERE / "beir.png")
    cmds = "\n".join(f"- {s['dataset']} / {s['method']}: `{s['command']}`" for s in spec["settings"])
    body = header("Effectiveness on BEIR collections (beir.yaml)", ("sentence-transformers", "onnxruntime")) + (
        "\nEvery row is produced by the command listed below it in `benchmarks/beir.yaml`; `python benchmarks/run_beir.py`"
        " re-runs them all and rewrites this table. Seconds include indexing when the collection was not cached yet."
        " Settings were chosen on SciFact/ToolLens only; nfcorpus and limit-small are holdout sets, reported without"
        " tuning.\n\n![nDCG@10 per dataset and method](beir.png)\n\n" + "\n".join(rows) + "\n\nPaired significance of nDCG@10 over the test queries (the same as `retrievo "
        "compare DATASET A.trec B.trec`; randomisation test with 10,000 trials):\n\n" + "\n".join(crow)
        + "\n\nCommands:\n" + cmds + "\n")
    if not args.only:
        write_section("beir", body)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
