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
  const checked = document.querySelector('input[name="method"]:checked');
  return checked ? checked.value : "bm25";
}

const LABELS = { bm25: "BM25", dense: "Dense", hybrid: "Hybrid", splade: "SPLADE", multivector: "Multi-vector",
  bm25f: "BM25F", tree: "Tree" };

async function loadCollections() {
  try {
    const cols = await api("/v1/collections");
    const sel = $("collection");
    const was = sel.value;
    sel.textContent = "";
    for (const c of cols) {
      const o = document.createElement("option");
      o.value = c.name;
      o.textContent = `${c.name} (${c.documents} docs)`;
      o.dataset.methods = (c.methods || ["bm25"]).join(",");
      o.dataset.quarantined = c.quarantined || 0;
      sel.appendChild(o);
    }
    if (was && cols.some((c) => c.name === was)) sel.value = was;
    if (!cols.length) setStatus("No collections yet: create one with the API or `retrievo index`.");
    updateMethods();
    refreshFacets();
    updateQuarantine();
  } catch (e) {
    setStatus(e.message, true);
  }
}

// one radio button per method the collection can search (its signals, hybrid when it has bm25 and dense)
function updateMethods() {
  const opt = $("collection").selectedOptions[0];
  const methods = opt && opt.dataset.methods ? opt.dataset.methods.split(",") : ["bm25"];
  const was = method();
  const box = $("methods");
  box.textContent = "";
  for (const m of methods) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "method";
    input.value = m;
    input.checked = m === (methods.includes(was) ? was : methods[0]);
    input.addEventListener("change", search);
    label.append(input, " " + (LABELS[m] || m));
    box.appendChild(label);
  }
}

// -- facets: each metadata field's frequent values as filters ------------------------------------------------
const chosen = new Map(); // field -> Map(JSON of value -> value), values ticked
const ranges = new Map(); // field -> [min or null, max or null], for numeric fields with many values

function condition(field) {
  if (chosen.has(field) && chosen.get(field).size) return { [field]: { $in: [...chosen.get(field).values()] } };
  const r = ranges.get(field);
  if (r && (r[0] !== null || r[1] !== null)) {
    const c = {};
    if (r[0] !== null) c.$gte = r[0];
    if (r[1] !== null) c.$lte = r[1];
    return { [field]: c };
  }
  return null;
}

// the filter of every ticked value and range, leaving out field `except` (its own counts ignore its choice)
function currentFilter(except) {
  const parts = [...new Set([...chosen.keys(), ...ranges.keys()])].filter((f) => f !== except)
    .map(condition).filter((c) => c !== null);
  return parts.length ? (parts.length === 1 ? parts[0] : { $and: parts }) : null;
}

function facetsPath() {
  return `/v1/collections/${encodeURIComponent($("collection").value)}/facets`;
}

async function refreshFacets() {
  const box = $("facets");
  if (!$("collection").value) return;
  try {
    const all = await api(facetsPath(), { limit: 8, filter: currentFilter() });
    for (const field of new Set([...chosen.keys(), ...ranges.keys()])) {
      if (condition(field) === null) continue;
      const own = await api(facetsPath(), { fields: [field], limit: 8, filter: currentFilter(field) });
      all[field] = own[field] || all[field] || { documents: 0, values: [], more: 0 };
    }
    renderFacets(all);
  } catch (e) {
    box.textContent = "";
    box.parentElement.classList.remove("faceted");
  }
}

function renderFacets(all) {
  const box = $("facets");
  box.textContent = "";
  for (const [field, f] of Object.entries(all).slice(0, 12)) {
    const set = document.createElement("fieldset");
    set.dataset.field = field;
    const legend = document.createElement("legend");
    legend.textContent = field;
    set.appendChild(legend);
    if (f.min !== undefined && f.more > 0 && typeof f.min === "number") { // many numbers: a range
      const r = ranges.get(field) || [null, null];
      for (const [i, bound] of [[0, "min"], [1, "max"]]) {
        const input = document.createElement("input");
        input.type = "number";
        input.className = "range-" + bound;
        input.placeholder = String(f[bound]);
        input.setAttribute("aria-label", `${field} ${bound}`);
        if (r[i] !== null) input.value = String(r[i]);
        input.addEventListener("change", () => {
          const cur = ranges.get(field) || [null, null];
          cur[i] = input.value === "" ? null : Number(input.value);
          ranges.set(field, cur);
          refreshFacets();
          search();
        });
        set.append(input, i === 0 ? " – " : "");
      }
    } else {
      const ticked = chosen.get(field) || new Map();
      const shown = new Map(f.values.map((e) => [JSON.stringify(e.value), e]));
      for (const [key, value] of ticked) if (!shown.has(key)) shown.set(key, { value, count: 0 });
      for (const [key, e] of shown) {
        const label = document.createElement("label");
        const box2 = document.createElement("input");
        box2.type = "checkbox";
        box2.value = key;
        box2.checked = ticked.has(key);
        box2.addEventListener("change", () => {
          const m = chosen.get(field) || new Map();
          if (box2.checked) m.set(key, e.value); else m.delete(key);
          chosen.set(field, m);
          refreshFacets();
          search();
        });
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = ` (${e.count})`;
        label.append(box2, " " + (typeof e.value === "string" ? e.value : JSON.stringify(e.value)), count);
        set.appendChild(label);
      }
      if (f.more) {
        const more = document.createElement("span");
        more.className = "count";
        more.textContent = `… ${f.more} more`;
        set.appendChild(more);
      }
    }
    box.appendChild(set);
  }
  box.parentElement.classList.toggle("faceted", box.childElementCount > 0);
}

// -- the document view ----------------------------------------------------------------------------------------
async function showDocument(id) {
  const name = $("collection").value;
  try {
    const d = await api(`/v1/collections/${encodeURIComponent(name)}/documents/${encodeURIComponent(id)}`);
    $("doc-title").textContent = d.title || d.id;
    $("doc-id").textContent = `id ${d.id}`;
    $("doc-text").textContent = d.text;
    const table = $("doc-meta");
    table.textContent = "";
    for (const [k, v] of Object.entries(d.metadata || {})) {
      const tr = document.createElement("tr");
      const key = document.createElement("td");
      key.textContent = k;
      const val = document.createElement("td");
      val.textContent = typeof v === "string" ? v : JSON.stringify(v);
      tr.append(key, val);
      table.appendChild(tr);
    }
    $("doc-view").showModal();
  } catch (e) {
    setStatus(e.message, true);
  }
}

function explainLine(e) {
  return Object.entries(e).map(([list, at]) => at === null ? `${list} —` : `${list} #${at.rank} ${at.score.toFixed(4)}`)
    .join(" · ");
}

async function search() {
  const q = $("query").value.trim();
  const name = $("collection").value;
  if (!q || !name) return;
  setStatus("Searching…");
  const list = $("results");
  try {
    const data = await api(`/v1/collections/${encodeURIComponent(name)}/search`,
      { query: q, k: 10, method: method(), highlight: true, correct_typos: $("typos").checked, prf: $("prf").checked,
        explain: $("explain").checked, filter: currentFilter() });
    const hits = data.results[0].hits;
    list.textContent = "";
    list.dataset.method = data.method;
    for (const h of hits) {
      const li = document.createElement("li");
      li.className = "hit";
      const title = document.createElement("div");
      title.className = "hit-title";
      const open = document.createElement("button");
      open.type = "button";
      open.title = "show the whole document";
      open.appendChild(highlighted(h.title || h.id, h.title ? h.highlights.title : []));
      open.addEventListener("click", () => showDocument(h.id));
      title.appendChild(open);
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
      if (h.explain) {
        const why = document.createElement("div");
        why.className = "hit-explain";
        why.textContent = explainLine(h.explain);
        li.appendChild(why);
      }
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

// -- the quarantine: what the admission gate held back, with its reasons; release or drop by hand ------------
function updateQuarantine() {
  const opt = $("collection").selectedOptions[0];
  const n = opt ? Number(opt.dataset.quarantined || 0) : 0;
  $("quarantine-box").hidden = n === 0;
  $("quarantine-summary").textContent = `Quarantine: ${n} document${n === 1 ? "" : "s"} held back`;
  if (n && $("quarantine-box").open) showQuarantine();
}

async function decide(id, verb) {
  const name = $("collection").value;
  try {
    await api(`/v1/collections/${encodeURIComponent(name)}/quarantine/${verb}`, { ids: [id] });
    setStatus(verb === "release" ? `Released ${id}: searchable after the next commit.` : `Dropped ${id} for good.`);
    await loadCollections();
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function showQuarantine() {
  const name = $("collection").value;
  const list = $("quarantine");
  if (!name) return;
  try {
    const held = await api(`/v1/collections/${encodeURIComponent(name)}/quarantine?text_chars=300&limit=100`);
    list.textContent = "";
    for (const h of held) {
      const li = document.createElement("li");
      li.className = "held";
      const head = document.createElement("div");
      head.className = "hit-title";
      head.textContent = h.title ? `${h.title} (${h.id})` : h.id;
      const why = document.createElement("div");
      why.className = "hit-meta";
      why.textContent = `suspicion ${h.suspicion.toFixed(2)} · ${h.reasons.join(", ")}`;
      const text = document.createElement("p");
      text.className = "hit-text";
      text.textContent = h.text + (h.text.length >= 300 ? " …" : "");
      const buttons = document.createElement("div");
      for (const verb of ["release", "drop"]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = verb === "release" ? "Release" : "Drop";
        b.addEventListener("click", () => decide(h.id, verb));
        buttons.appendChild(b);
      }
      li.append(head, why, text, buttons);
      list.appendChild(li);
    }
  } catch (e) {
    list.textContent = e.message;
  }
}

$("quarantine-box").addEventListener("toggle", () => { if ($("quarantine-box").open) showQuarantine(); });
$("tree-box").addEventListener("toggle", () => { if ($("tree-box").open) showNode(0); });
$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
$("collection").addEventListener("change", () => {
  chosen.clear();
  ranges.clear();
  updateMethods();
  refreshFacets();
  updateQuarantine();
  search();
  if ($("tree-box").open) showNode(0);
});
for (const id of ["typos", "prf", "explain"]) $(id).addEventListener("change", search);
loadCollections();
