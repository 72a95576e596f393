import gzip
import json

import pytest

from retrievo.errors import DocumentError, DuplicateIdError, NotFoundError, SourceFormatError
from retrievo.store.loaders import FieldMap, load_documents


def test_jsonl_gz_with_metadata(tmp_path):
    p = tmp_path / "docs.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(json.dumps({"_id": "1", "title": "T", "text": "hello", "year": 2020}) + "\n\n")
        fh.write(json.dumps({"id": 2, "text": "world", "metadata": {"lang": "en"}}) + "\n")
    docs = load_documents(p)
    assert [d.id for d in docs] == ["1", "2"]
    assert docs[0].metadata == {"year": 2020} and docs[1].metadata == {"lang": "en"}


def test_malformed_jsonl_line_named(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": \n')
    with pytest.raises(SourceFormatError, match=r"docs\.jsonl:2: not valid JSON"):
        load_documents(p)


def test_jsonl_non_object_and_missing_text(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('[1, 2]\n')
    with pytest.raises(SourceFormatError, match=r"a\.jsonl:1: expected a JSON object"):
        load_documents(p)
    p.write_text('{"id": "1", "body": "x"}\n')
    with pytest.raises(DocumentError, match=r"a\.jsonl:1: missing text field 'text'"):
        load_documents(p)


def test_csv_without_id_column(tmp_path):
    p = tmp_path / "docs.csv"
    p.write_text("name,text\nx,hello\n")
    with pytest.raises(SourceFormatError, match=r"docs\.csv:1: header has no id column 'id'"):
        load_documents(p)


def test_csv_row_with_empty_id_and_field_map(tmp_path):
    p = tmp_path / "docs.csv"
    p.write_text("key,body,topic\na,hello,x\n,world,y\n")
    fm = FieldMap(id="key", text="body")
    with pytest.raises(DocumentError, match=r"docs\.csv:3: empty id"):
        load_documents(p, fm)
    p.write_text("key,body,topic\na,hello,x\nb,world,y\n")
    docs = load_documents(p, fm)
    assert docs[1].id == "b" and docs[1].text == "world" and docs[1].metadata == {"topic": "y"}


def test_duplicate_ids_in_source(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "1", "text": "a"}\n{"id": "2", "text": "b"}\n{"id": "1", "text": "c"}\n')
    with pytest.raises(DuplicateIdError, match="records 1 and 3"):
        load_documents(p)


def test_empty_text_named(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "1", "text": ""}\n')
    with pytest.raises(DocumentError, match=r"d\.jsonl:1 \(id '1'\): field 'text' is empty"):
        load_documents(p)


def test_parquet_roundtrip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t = pa.table({"id": ["a", "b"], "title": ["A", ""], "text": ["x y", "z"], "n": [1, 2]})
    pq.write_table(t, tmp_path / "d.parquet")
    docs = load_documents(tmp_path / "d.parquet")
    assert [d.id for d in docs] == ["a", "b"] and docs[1].metadata == {"n": 2}


def test_unknown_source(tmp_path):
    with pytest.raises(NotFoundError):
        load_documents(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(SourceFormatError, match="unknown source type"):
        load_documents(tmp_path / "x.txt")


def test_csv_numeric_columns_are_typed(tmp_path):
    """A column of integers becomes int, of decimals float (empty cells left out); codes with leading zeros and
    mixed columns stay text — so a numeric filter works on a CSV corpus as on JSON Lines."""
    from retrievo import Collection, CollectionConfig

    p = tmp_path / "docs.csv"
    p.write_text("id,text,year,score,zip,mixed\n"
                 "a,first,2019,0.5,007,12\n"
                 "b,second,2021,,010,n/a\n"
                 "c,third,2022,1e-3,123,7\n")
    docs = load_documents(p)
    meta = {d.id: d.metadata for d in docs}
    assert meta["a"] == {"year": 2019, "score": 0.5, "zip": "007", "mixed": "12"}
    assert meta["b"] == {"year": 2021, "zip": "010", "mixed": "n/a"}  # the empty float cell is left out
    assert meta["c"]["score"] == pytest.approx(1e-3) and isinstance(meta["c"]["year"], int)
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    coll.add(docs)
    coll.commit()
    hits = coll.search(["first second third"], k=10, filter={"year": {"$gte": 2020}}).row(0)
    assert sorted(d for d, _ in hits) == ["b", "c"]
    coll.close()
