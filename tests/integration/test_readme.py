"""The README's Python example runs as written (in a temp folder, with the real default model)."""

import re
from pathlib import Path

from retrievo import Collection

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """It runs as written, prints what it found, and runs again in the same folder (the collection is reopened)."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert capsys.readouterr().out.strip() == "['d2']"
        namespace["coll"].close()
    coll = Collection.open(tmp_path / "my-collection", readonly=True)
    assert len(coll) == 1 and coll.get("d1").text == "Aspirin reduces fever and pain."
    res = namespace["res"]
    assert res.ids.shape == (1, 10) and res.counts[0] == 1 and res.ids[0, 0] == "d2"  # filtered to year >= 2020


def test_readme_search_request_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    first = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    block = re.search(r"### One search request.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(first, "README.md", "exec"), namespace)
    exec(compile(block, "README.md", "exec"), namespace)
    coll, req, res = namespace["coll"], namespace["req"], namespace["res"]
    assert res.row(0) == coll.search(["fever medicine"], k=10, method="hybrid", fusion={"method": "rrf"},
                                     index={"ef_search": 256}, prf=True).row(0)
    key = re.search(r"req\.resolve\(coll\.config\)\.key\(\)\s+# '([^']+)'", block).group(1)
    assert req.resolve(coll.config).key() == key
