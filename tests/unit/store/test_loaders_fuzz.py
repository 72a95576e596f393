"""Property-based fuzzing of the JSONL and CSV loaders: any bytes either load or raise our own clear error.

Hypothesis generates arbitrary bytes, and mutations of well-formed files (truncations, stray quotes,
wrong types, BOMs, bad UTF-8), writes them to a file and loads it. Acceptable outcomes: documents that
pass validation, or a :class:`~retrievo.errors.RetrievoError` whose message names the file (and, for
record errors, the line). Anything else (a bare ValueError, UnicodeDecodeError, csv.Error, ...) fails.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrievo.errors import RetrievoError
from retrievo.store.loaders import load_documents
from retrievo.types import Document

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(["_id", "id", "title", "text", "metadata", "year", "$bad", ""]), json_values, max_size=6
)


def _load(tmp_path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        docs = load_documents(path)
    except RetrievoError as exc:
        msg = str(exc)
        assert str(path) in msg, f"error does not name the file: {msg}"
        if re.search(r"line|record", msg) is None and ":" not in msg.replace(str(path), ""):
            raise AssertionError(f"error does not say where: {msg}") from exc
        return
    for d in docs:
        assert isinstance(d, Document)
        d.validate()


@SETTINGS
@given(data=st.binary(max_size=400))
def test_jsonl_arbitrary_bytes(tmp_path, data):
    _load(tmp_path, "c.jsonl", data)


@SETTINGS
@given(rows=st.lists(records | json_values, max_size=6), cut=st.integers(0, 10**6), bom=st.booleans())
def test_jsonl_mutated_records(tmp_path, rows, cut, bom):
    text = "\n".join(json.dumps(r) for r in rows)
    data = text.encode()
    data = data[: cut % (len(data) + 1)] if cut % 3 == 0 else data
    _load(tmp_path, "c.jsonl", (b"\xef\xbb\xbf" if bom else b"") + data)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_csv_arbitrary_bytes(tmp_path, data):
    _load(tmp_path, "c.csv", data)


cells = st.lists(st.sampled_from(list('ab ,"\n\r\t\x00é') + ["id", "text", "title"]), max_size=8).map("".join)


@SETTINGS
@given(header=st.lists(st.sampled_from(["id", "text", "title", "year", "", "id"]), min_size=0, max_size=5),
       rows=st.lists(st.lists(cells, max_size=6), max_size=5), sep=st.sampled_from([",", "\t"]))
def test_csv_mutated(tmp_path, header, rows, sep):
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    _load(tmp_path, "c.tsv" if sep == "\t" else "c.csv", "\n".join(lines).encode())
