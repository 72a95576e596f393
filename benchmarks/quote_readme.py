"""Copy the current tables of RESULTS.md into the README's results section (between its markers).

Run after any benchmark script: python benchmarks/quote_readme.py
"""

from __future__ import annotations

import re

from _common import HERE, RESULTS

README = HERE.parent / "README.md"
SECTIONS = ("beir", "bm25-speed", "dense-speed", "encode-speed", "quantized", "ann", "filters", "sparse_encode",
            "sparse_encode_scifact", "sparse", "muvera", "multivector", "tools", "longdocs", "tree", "topics",
            "rerank-speed", "calibration", "robustness", "poisoning", "defence", "retrievability", "adapter", "learn", "query-encoder", "server", "ray",
            "first-hour", "first-hour-stand-in")


def main() -> None:
    text = RESULTS.read_text()
    parts = []
    for name in SECTIONS:
        m = re.search(rf"<!-- begin:{name} -->\n(.*?)<!-- end:{name} -->", text, re.S)
        if not m:
            continue
        body = m.group(1)
        title = re.search(r"^## (.*)$", body, re.M)
        tables, current = [], []
        for line in body.splitlines() + [""]:
            if line.startswith("|"):
                current.append(line)
            elif current:
                tables.append("\n".join(current))
                current = []
        long = [t for t in tables if t.count("\n") > 30]  # full sweeps stay in RESULTS.md only
        table = "\n\n".join(t for t in tables if t not in long)
        if long:
            table += "\n\n(The full sweep is in RESULTS.md.)"
        if not tables:  # a section of sentences only: its findings, without the measurement and command lines
            paras = [p.strip() for p in body.split("\n\n")]
            table = "\n\n".join(p for p in paras if p and not p.startswith(("##", "Measured", "Command")))
        parts.append(f"**{title.group(1) if title else name}**\n\n{table}\n")
    block = ("<!-- begin:results -->\nQuoted from [benchmarks/RESULTS.md](benchmarks/RESULTS.md) (machine, versions, "
             "dates and commands are there) by `benchmarks/quote_readme.py`.\n\n"
             "![nDCG@10 per dataset and method](benchmarks/beir.png)\n\n" + "\n".join(parts) + "<!-- end:results -->")
    readme = README.read_text()
    if "<!-- begin:results -->" in readme:
        readme = re.sub(r"<!-- begin:results -->.*?<!-- end:results -->", lambda _: block, readme, flags=re.S)
    else:
        readme = readme.replace("## Results\n", "## Results\n\n" + block + "\n", 1)
    README.write_text(readme)
    print(f"updated {README}")


if __name__ == "__main__":
    main()
