"""Metadata columns: each segment's document metadata as typed columns, for filters that read one generation.

At commit (and merge) the writer turns the metadata of a new segment's rows into columns, field by field:

- ``num`` — float64 per row, the value when it is a number, else NaN (integers are limited to ±2^53 at
  the door, so float64 holds them exactly);
- ``str`` — int32 per row, the value's position in the field's sorted dictionary of strings, else -1;
- ``bool`` — int8 per row: 1 true, 0 false, -1 not a boolean;
- list values — ``el_ptr`` (int64, n + 1) over the elements of each row's list, and the elements' own
  ``el_num`` / ``el_str`` / ``el_bool`` as above (nested lists and objects never match a filter).

They are written into the segment's ``meta/`` folder (``fields.json`` names each field's arrays and
holds its string dictionary; the arrays are ``.npy``, memory-mapped when the segment is opened, so a
snapshot keeps them after a merge removes the folder) and never change, like the rest of the segment. A filter is then evaluated on the columns of the
segments of one snapshot (see :func:`retrievo.indexes.filters.evaluate`) — never on the live SQLite
table, whose rows move on while a reader still searches an older generation — and costs a few vectorised
comparisons per segment instead of a JSON parse per row.

Written by hand: no columnar library among the dependencies (pyarrow is one, but its compute functions
return Arrow arrays and lack the list-membership semantics below), and the whole layout is a few numpy
arrays per field.
"""

from __future__ import annotations

import json
import os
import shutil
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import fsync_dir, load_npy, write_synced
from retrievo.store.sqlite import value_kind

__all__ = ["FieldColumn", "SegmentColumns", "build_columns", "write_columns"]

FOLDER = "meta"
FORMAT = 1
_ARRAYS = ("num", "str", "bool", "el_ptr", "el_num", "el_str", "el_bool")


class FieldColumn:
    """One field's columns in one segment (arrays may be memory-mapped; ``None`` when no row needs them)."""

    def __init__(self, n_rows: int, kinds: set[str], strings: list[str], arrays: Mapping[str, np.ndarray]) -> None:
        self.n_rows = n_rows
        self.kinds = kinds
        self.strings = strings
        self._codes: dict[str, int] | None = None
        self.num = arrays.get("num")
        self.str = arrays.get("str")
        self.bool = arrays.get("bool")
        self.el_ptr = arrays.get("el_ptr")
        self.el_num = arrays.get("el_num")
        self.el_str = arrays.get("el_str")
        self.el_bool = arrays.get("el_bool")

    def code(self, s: str) -> int:
        """The dictionary code of string ``s`` (-2 when no row holds it)."""
        if self._codes is None:
            self._codes = {v: i for i, v in enumerate(self.strings)}
        return self._codes.get(s, -2)

    def str_bounds(self, value: str) -> tuple[int, int]:
        """Codes ``< lo`` are strings below ``value``, codes ``>= hi`` above it (the dictionary is sorted)."""
        return bisect_left(self.strings, value), bisect_right(self.strings, value)

    def list_any(self, element_mask: np.ndarray) -> np.ndarray:
        """Rows whose list has an element where ``element_mask`` holds."""
        out = np.zeros(self.n_rows, dtype=bool)
        if self.el_ptr is None or not len(element_mask):
            return out
        counts = np.diff(self.el_ptr)
        rows = np.repeat(np.arange(self.n_rows), counts)
        out[rows[element_mask]] = True
        return out


class SegmentColumns:
    """The metadata columns of one segment. Every array is opened (memory-mapped) when the segment is, so a
    snapshot keeps reading them after a merge has removed the segment's folder."""

    def __init__(self, n_rows: int, spec: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.n_rows = n_rows
        self.fields = {name: FieldColumn(n_rows, set(f["kinds"]), f["strings"],
                                         {a: arrays[f"f{f['i']}_{a}"] for a in f["arrays"]})
                       for name, f in spec.items()}

    @classmethod
    def open(cls, seg_dir: Path, n_rows: int) -> SegmentColumns | None:
        """The columns kept in ``seg_dir`` (``None`` for a segment written before they existed)."""
        folder = seg_dir / FOLDER
        try:
            spec = json.loads((folder / "fields.json").read_text())["fields"]
        except FileNotFoundError:
            return None
        arrays = {f"f{f['i']}_{a}": load_npy(folder / f"f{f['i']}_{a}.npy", mmap_mode="r", allow_pickle=False)
                  for f in spec.values() for a in f["arrays"]}
        return cls(n_rows, spec, arrays)

    @classmethod
    def from_values(cls, values: Sequence[Mapping[str, Any]]) -> SegmentColumns:
        """Columns held in memory, built from the rows' metadata."""
        spec, arrays = build_columns(values)
        return cls(len(values), spec, arrays)

    def field(self, name: str) -> FieldColumn | None:
        """The columns of field ``name`` (``None`` when no row of this segment has it)."""
        return self.fields.get(name)


def build_columns(values: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The columns of rows with metadata ``values``: ``(spec, arrays)``; ``arrays`` named ``f<i>_<column>``."""
    n = len(values)
    names = sorted({k for m in values for k in m})
    spec: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        kinds: set[str] = set()
        strings: set[str] = set()
        for m in values:
            if name not in m:
                continue
            v = m[name]
            kinds.add(value_kind(v))
            if isinstance(v, str):
                strings.add(v)
            elif isinstance(v, list | tuple):
                strings.update(e for e in v if isinstance(e, str))
        dictionary = sorted(strings)
        code = {s: j for j, s in enumerate(dictionary)}
        cols: dict[str, np.ndarray] = {}
        if "number" in kinds:
            num = np.full(n, np.nan, dtype=np.float64)
            for r, m in enumerate(values):
                v = m.get(name)
                if value_kind(v) == "number":
                    num[r] = float(v)
            cols["num"] = num
        if "string" in kinds:
            cols["str"] = np.array([code[v] if isinstance(v := m.get(name), str) else -1 for m in values], dtype=np.int32)
        if "bool" in kinds:
            cols["bool"] = np.array([int(v) if isinstance(v := m.get(name), bool) else -1 for m in values], dtype=np.int8)
        if "list" in kinds:
            ptr = np.zeros(n + 1, dtype=np.int64)
            els: list[Any] = []
            for r, m in enumerate(values):
                v = m.get(name)
                if isinstance(v, list | tuple):
                    els.extend(v)
                ptr[r + 1] = len(els)
            cols["el_ptr"] = ptr
            cols["el_num"] = np.array([float(e) if value_kind(e) == "number" else np.nan for e in els], dtype=np.float64)
            cols["el_str"] = np.array([code[e] if isinstance(e, str) else -1 for e in els], dtype=np.int32)
            cols["el_bool"] = np.array([int(e) if isinstance(e, bool) else -1 for e in els], dtype=np.int8)
        spec[name] = {"i": i, "kinds": sorted(kinds), "arrays": sorted(cols), "strings": dictionary}
        for a, arr in cols.items():
            arrays[f"f{i}_{a}"] = arr
    return spec, arrays


def write_columns(seg_dir: Path, values: Sequence[Mapping[str, Any]]) -> None:
    """Write the metadata columns of a segment's rows into ``seg_dir/meta`` (a temporary folder, fsynced,
    then renamed: a crash leaves no columns, and they are built again)."""
    spec, arrays = build_columns(values)
    final, tmp = seg_dir / FOLDER, seg_dir / (FOLDER + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, arr in arrays.items():
        write_synced(tmp / f"{name}.npy", lambda fh, a=arr: np.save(fh, a, allow_pickle=False))
    body = json.dumps({"format": FORMAT, "n_rows": len(values), "fields": spec}).encode()
    write_synced(tmp / "fields.json", lambda fh: fh.write(body))
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(seg_dir)
