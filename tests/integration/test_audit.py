"""The audit (signs of planted passages, calibrated on trusted documents) and the admission gate (suspects
quarantined, never searchable, released by an explicit call) on a small real collection."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from retrievo import Collection, CollectionConfig, DenseConfig
from retrievo.errors import InvalidInputError, NotFoundError
from retrievo.eval.audit import Gate, Quarantine, audit
from tests.conftest import CLEAN_NEW, STUFFED


@pytest.fixture()
def coll(tmp_path, scifact_small, onnx_encoder):
    c = Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=onnx_encoder)
    c.add(scifact_small[:150])
    c.commit()
    yield c
    c.close()


def test_audit_flags_a_stuffed_passage_and_changes_nothing(coll, scifact_small, scifact_queries):
    clean_ids = [d["_id"] for d in scifact_small[:150]]
    coll.add([STUFFED, CLEAN_NEW])
    coll.commit()
    gen, n = coll.generation, len(coll)
    rep = audit(coll, scifact_queries[:40], max_fpr=0.02, reference=clean_ids)
    flagged = {s.id: s for s in rep.suspects}
    assert "stuffed" in flagged and "stuffing" in flagged["stuffed"].reasons
    assert "clean-new" not in flagged
    assert rep.reference_flagged <= 0.02 * len(clean_ids)  # the bound holds on the documents it was set on
    assert rep.summary()["new_document_fpr_bound"] <= 0.02  # and for new ones like them (75 to check: 1 / 76)
    assert rep.summary()["reference_fpr"] <= 0.02
    assert coll.generation == gen and len(coll) == n  # nothing changed
    with pytest.raises(InvalidInputError, match="max_fpr"):
        audit(coll, max_fpr=0)


def test_gate_quarantines_and_releases(coll, scifact_queries, tmp_path):
    gate = Gate(coll, scifact_queries[:40], max_fpr=0.02)
    out = gate.add([STUFFED, CLEAN_NEW])
    coll.commit()
    assert out["added"] == 1 and [q["id"] for q in out["quarantined"]] == ["stuffed"]
    assert "stuffing" in out["quarantined"][0]["reasons"]
    assert "clean-new" in coll and "stuffed" not in coll
    for method in ("bm25", "dense", "hybrid"):
        res = coll.search("microglia brain immune", k=200, method=method)
        assert "stuffed" not in set(res.ids[0])  # quarantined: never in results
    gate.close()
    q = Quarantine(coll.path)  # durable: another handle sees it, with its reasons
    assert [h["id"] for h in q.list()] == ["stuffed"] and q.list()[0]["reasons"]
    q.close()
    gate = Gate(coll)
    with pytest.raises(NotFoundError):
        gate.release(["nope"])
    assert gate.release(["stuffed"]) == 1
    coll.commit()
    assert "stuffed" in coll and len(gate.quarantine) == 0
    assert "stuffed" in set(coll.search("microglia brain immune", k=5).ids[0])
    # the released suspect is scored but never part of the reference the next calibration sets thresholds on
    assert gate.quarantine.released() == {"stuffed"}
    report = gate.calibrate()
    assert report.documents == len(coll) and report.reference == len(coll) - 1
    assert "stuffed" in {s.id for s in report.suspects}
    again = gate.add([{**STUFFED, "id": "stuffed-2"}])
    assert [q["id"] for q in again["quarantined"]] == ["stuffed-2"]
    gate.close()


def test_cli_audit_and_screen(coll, tmp_path):
    coll.close()
    out = subprocess.run([sys.executable, "-m", "retrievo", "audit", str(coll.path), "--n-probes", "200", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["documents"] == 150 and rep["reference_fpr"] <= 0.01
    # split conformal on 75 + 75 documents: 1 % cannot be promised; the bound reached, 1 / 76, is said
    assert rep["new_document_fpr_bound"] == round(1 / 76, 4)
    src = tmp_path / "new.jsonl"
    src.write_text(json.dumps(STUFFED) + "\n" + json.dumps(CLEAN_NEW) + "\n")
    proc = subprocess.run([sys.executable, "-m", "retrievo", "index", str(src), "--collection", str(coll.path),
                           "--screen", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "quarantined 1 suspects" in proc.stdout and "stuffed" in proc.stdout
    listed = subprocess.run([sys.executable, "-m", "retrievo", "quarantine", str(coll.path), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert [h["id"] for h in json.loads(listed.stdout)] == ["stuffed"]
    dropped = subprocess.run([sys.executable, "-m", "retrievo", "quarantine", str(coll.path), "--drop", "stuffed"],
                             capture_output=True, text=True, timeout=120)
    assert dropped.returncode == 0 and "dropped 1" in dropped.stdout, dropped.stderr
    assert Quarantine.read(coll.path) == []
    bad = subprocess.run([sys.executable, "-m", "retrievo", "index", str(src), "--collection", str(tmp_path / "none"),
                          "--screen"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "index a trusted set first" in bad.stderr and not (tmp_path / "none").exists()


def test_add_with_screen(coll, scifact_queries):
    n = coll.add([STUFFED, CLEAN_NEW], screen=True)
    coll.commit()
    assert n == 1 and "clean-new" in coll and "stuffed" not in coll
    held = coll.quarantined()
    assert [h["id"] for h in held] == ["stuffed"] and "stuffing" in held[0]["reasons"]
    assert coll.quarantine_count() == 1 and coll.quarantined(text_chars=9)[0]["text"] == STUFFED["text"][:9]
    assert "stuffed" not in set(coll.search("microglia brain immune", k=200).ids[0])
    with pytest.raises(Exception, match="already exist"):
        coll.add([CLEAN_NEW], screen=True)  # as without the gate: nothing buffered, nothing held
    assert [h["id"] for h in coll.quarantined()] == ["stuffed"]
    assert coll.release(["stuffed"]) == 1
    coll.commit()
    assert "stuffed" in coll and coll.quarantined() == []


def test_a_release_leaves_the_quarantine_only_with_its_commit(coll):
    coll.add([STUFFED], screen=True)
    coll.commit()
    assert coll.release(["stuffed"]) == 1
    coll.rollback()  # the release never committed: the document is still held, not lost
    assert [h["id"] for h in coll.quarantined()] == ["stuffed"] and "stuffed" not in coll
    coll.release(["stuffed"])
    coll.close()  # nor when the process ends before the commit
    again = Collection.open(coll.path)
    try:
        assert [h["id"] for h in again.quarantined()] == ["stuffed"]
        with pytest.raises(NotFoundError, match="nope"):
            again.drop_quarantined(["stuffed", "nope"])
        assert len(again.quarantined()) == 1  # nothing dropped
        assert again.drop_quarantined(["stuffed"]) == 1 and again.quarantined() == [] and "stuffed" not in again
    finally:
        again.close()


def test_the_gate_recalibrates_only_when_the_collection_moved(coll, scifact_small):
    changes = coll.changes
    coll.add([CLEAN_NEW], screen=True)
    coll.commit()
    gate = coll._gate
    assert gate.calibrations == 1 and coll.changes == changes + 1
    for i in range(3):  # small commits: the calibration stands (a server commits every second)
        coll.add([{"id": f"more-{i}", "text": scifact_small[200 + i]["text"]}], screen=True)
        coll.commit()
    assert coll._gate is gate and gate.calibrations == 1 and not gate.stale
    coll.add(scifact_small[150:170])  # writes that bypass the gate count too: 24 changes > 10% of the 150 it calibrated on
    coll.commit()
    assert gate.stale
    encode, calls = coll.encoder.encode_queries, []
    coll.encoder.encode_queries = lambda texts, *a, **kw: calls.append(len(texts)) or encode(texts, *a, **kw)
    coll.add([STUFFED], screen=True)
    assert gate.calibrations == 2 and gate.calibrated_on == (coll.changes, len(coll))
    assert calls == [len(gate.probe_texts)] and len(gate.probe_vectors) == len(gate.probe_texts)  # probes once
    assert [h["id"] for h in coll.quarantined()] == ["stuffed"]
    with pytest.raises(InvalidInputError, match="max_fpr"):
        Gate(coll, max_fpr=1.5)


def test_new_documents_hubness_counts_bm25_as_stored_documents_do(coll, scifact_queries):
    """A document screened before it is stored is counted in the probes' BM25 top 10 as well as their dense top
    10, as the audit counts stored ones: the stored documents, scored as if new (against the collection's
    statistics, which count them already), enter exactly the lists they are in above the 10th place."""
    import numpy as np

    from retrievo.eval.audit import _hub_counts_for
    from retrievo.request import SearchRequest
    from retrievo.types import Document

    probes = {f"p{i}": q for i, q in enumerate(scifact_queries[:40])}
    texts = list(probes.values())
    pv = np.asarray(coll.encoder.encode_queries(texts), dtype=np.float32)
    snap = coll.snapshot()
    rows = np.flatnonzero(snap.live)[:60]
    docs = coll.documents_at(rows.tolist(), snap)
    vectors = snap.signals["dense"].gather(rows).astype(np.float32)
    got = _hub_counts_for(coll, docs, vectors, pv, probes)
    want = np.zeros(len(rows), dtype=np.int64)
    for method in ("dense", "bm25"):
        res = coll.searcher.search(texts, SearchRequest(method=method, k=10), query_vectors=pv if method == "dense"
                                   else None, snapshot=snap)
        for i, r in enumerate(rows):
            at = np.flatnonzero(res.rows == r)  # flat positions: query * 10 + rank
            # above the 10th result's score (a tie with it is not "entering")
            want[i] += sum(res.scores.flat[a] > res.scores[a // 10, -1] + 1e-5 for a in at)
    # the same counts but where a score sits within rounding of the 10th result's (1 of 60 documents here)
    assert np.abs(got - want).max() <= 1 and (got == want).mean() >= 0.95 and want.sum() >= 200, (got, want)
    lexical = _hub_counts_for(coll, [Document.from_any({"id": "x", "text": " ".join(texts[:5] * 3)})],
                              np.zeros((1, pv.shape[1]), np.float32), pv, probes)
    assert lexical[0] >= 5  # no dense similarity at all: the five probes it repeats count it through BM25
