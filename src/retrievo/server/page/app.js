// retrievo search page: plain DOM, no build step. Untrusted text is inserted as text nodes only.
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem("retrievo-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("retrievo-key", keyInput.value));

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

async function api(path, body) {
  const resp = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error ? data.error.type + ": " + data.error.message : resp.statusText);
  return data;
}

// text with [start, end) spans wrapped in <mark>, built from text nodes
function highlighted(text, spans, maxChars) {
  const frag = document.createDocumentFragment();
  let pos = 0;
  const limit = maxChars && text.length > maxChars ? maxChars : text.length;
  for (const [start, end] of spans || []) {
    if (start >= limit) break;
    if (start > pos) frag.appendChild(document.createTextNode(text.slice(pos, start)));
    const m = document.createElement("mark");
    m.textContent = text.slice(start, Math.min(end, limit));
    frag.appendChild(m);
    pos = Math.min(end, limit);
  }
  frag.appendChild(document.createTextNode(text.slice(pos, limit) + (limit < text.length ? " …" : "")));
  return frag;
}

function method() {
  return document.querySelector('input[name="method"]:checked').value;
}

async function loadCollections() {
  try {
    const cols = await api("/v1/collections");
    const sel = $("collection");
    sel.textContent = "";
    for (const c of cols) {
      const o = document.createElement("option");
      o.value = c.name;
      o.textContent = `${c.name} (${c.documents} docs)`;
      o.dataset.dense = c.dense_model ? "1" : "";
      o.dataset.sparse = c.sparse_model ? "1" : "";
      sel.appendChild(o);
    }
    if (!cols.length) setStatus("No collections yet: create one with the API or `retrievo index`.");
    updateMethods();
  } catch (e) {
    setStatus(e.message, true);
  }
}

function updateMethods() {
  const opt = $("collection").selectedOptions[0];
  const has = { dense: opt ? opt.dataset.dense === "1" : false, splade: opt ? opt.dataset.sparse === "1" : false };
  has.hybrid = has.dense;
  for (const v of ["dense", "hybrid", "splade"]) {
    const input = document.querySelector(`input[name="method"][value="${v}"]`);
    input.disabled = !has[v];
    input.parentElement.hidden = v === "splade" && !has[v];
    if (!has[v] && input.checked) document.querySelector('input[value="bm25"]').checked = true;
  }
}

async function search() {
  const q = $("query").value.trim();
  const name = $("collection").value;
  if (!q || !name) return;
  setStatus("Searching…");
  const list = $("results");
  try {
    const data = await api(`/v1/collections/${encodeURIComponent(name)}/search`,
      { query: q, k: 10, method: method(), highlight: true, correct_typos: $("typos").checked, prf: $("prf").checked });
    const hits = data.results[0].hits;
    list.textContent = "";
    list.dataset.method = data.method;
    for (const h of hits) {
      const li = document.createElement("li");
      li.className = "hit";
      const title = document.createElement("div");
      title.className = "hit-title";
      title.appendChild(highlighted(h.title || h.id, h.title ? h.highlights.title : []));
      const text = document.createElement("p");
      text.className = "hit-text";
      text.appendChild(highlighted(h.text || "", h.highlights ? h.highlights.text : [], 600));
      const meta = document.createElement("div");
      meta.className = "hit-meta";
      meta.textContent = `#${h.rank} · id ${h.id} · score `;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = h.score.toFixed(4);
      meta.appendChild(score);
      li.append(title, text, meta);
      list.appendChild(li);
    }
    const fixes = Object.entries(data.results[0].corrections || {})
      .map(([t, f]) => f ? `${t} → ${f}` : `${t} (no match, left out)`);
    setStatus(`${hits.length} results · ${data.method} · ${data.took_ms.toFixed(1)} ms · generation ${data.generation}`
      + (fixes.length ? ` · typos fixed: ${fixes.join(", ")}` : ""));
  } catch (e) {
    list.textContent = "";
    setStatus(e.message, true);
  }
}

// the semantic tree: a node's keywords, its children as buttons, a leaf's documents
async function showNode(node) {
  const name = $("collection").value;
  const box = $("tree");
  if (!name) return;
  try {
    const n = await api(`/v1/collections/${encodeURIComponent(name)}/tree?node=${node}`);
    box.textContent = "";
    const head = document.createElement("p");
    head.className = "tree-head";
    head.textContent = `node ${n.id} · ${n.size} documents · ${n.summary.join(", ")}`;
    box.appendChild(head);
    if (n.parent !== null) {
      const up = document.createElement("button");
      up.type = "button";
      up.textContent = "↑ parent";
      up.addEventListener("click", () => showNode(n.parent));
      box.appendChild(up);
    }
    const ul = document.createElement("ul");
    for (const c of n.children) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tree-child";
      b.textContent = `${c.summary.slice(0, 6).join(", ")} (${c.size}${c.leaf ? ", leaf" : ""})`;
      b.addEventListener("click", () => showNode(c.id));
      li.appendChild(b);
      ul.appendChild(li);
    }
    for (const d of n.documents || []) {
      const li = document.createElement("li");
      li.className = "tree-doc";
      li.textContent = d;
      ul.appendChild(li);
    }
    box.appendChild(ul);
  } catch (e) {
    box.textContent = e.message;
  }
}

$("tree-box").addEventListener("toggle", () => { if ($("tree-box").open) showNode(0); });
$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
$("collection").addEventListener("change", () => { updateMethods(); search(); if ($("tree-box").open) showNode(0); });
for (const r of document.querySelectorAll('input[name="method"]')) r.addEventListener("change", search);
for (const id of ["typos", "prf"]) $(id).addEventListener("change", search);
loadCollections();
