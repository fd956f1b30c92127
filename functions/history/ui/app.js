// podwatch timeline: plain JS + SVG over the history API (no framework, no build step).
// The view lives in the URL's hash (c, ns, w, from, to, kind, reason, type, pod), so any view can be
// pasted into an alert; docs/internals.md ("Timeline page") describes the data it reads.
"use strict";

const WINDOWS = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "14d": 14 * 86400e3 };
const PAGE = 1000; // the API's largest page
const MAX_PAGES = 20; // a namespace's window is read up to 20,000 records; the status line says when cut
const LABEL_PX = 300; // the row label column (app.css #timeline --label)
const TYPE_COLOURS = {
  healthy: "#12b76a", recovered: "#12b76a", deleted: "#667085",
  "crash-loop": "#d92d20", "oom-kill": "#9e165f", evicted: "#dc6803", "image-pull": "#f79009",
  "config-error": "#b42318", "pod-restart": "#e04f16", "probe-failed": "#ca8504", unschedulable: "#6938ef",
  "pending-too-long": "#7a5af8", failed: "#912018", "volume-mount": "#c11574", "container-start": "#dd2590",
  "node-lost": "#3e4784", "admission-rejected": "#4e5ba6", "not-ready-too-long": "#b54708",
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const colour = (type) => TYPE_COLOURS[type] || `hsl(${[...type].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) % 360} 60% 45%)`;
const shortTime = (iso) => iso.replace("T", " ").slice(0, 19);

let state = {};
let now = null; // the API's clock (health.now): the end of a "last ..." window
let loaded = null; // {records, start, end, truncated, total}
let loadToken = 0;

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const s = {};
  for (const k of ["c", "ns", "w", "from", "to", "kind", "reason", "type", "pod"]) if (p.get(k)) s[k] = p.get(k);
  if (!s.w) s.w = s.from && s.to ? "range" : "24h";
  return s;
}

function hashOf(s) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) if (v && !(k === "w" && v === "24h")) p.set(k, v);
  return "#" + p.toString();
}

function go(changes) {
  const next = { ...state, ...changes };
  for (const k of Object.keys(next)) if (!next[k]) delete next[k];
  location.hash = hashOf(next); // the hashchange listener renders it
}

function api(path, params) {
  const base = state.c ? `clusters/${encodeURIComponent(state.c)}/api/v1/` : "api/v1/";
  const query = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString() : "";
  return fetch(base + path + query, { headers: { Accept: "application/json" } }).then(async (r) => {
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`${r.status}: ${body.error || body.message || r.statusText}`);
    return body;
  });
}

function windowOf(s) {
  if (s.w === "range" && s.from && s.to) return [new Date(s.from + "Z"), new Date(s.to + "Z")];
  const end = now ? new Date(now) : new Date();
  return [new Date(end - (WINDOWS[s.w] || WINDOWS["24h"])), end];
}

async function fetchWindow(s, start, end) {
  const params = { namespace: s.ns, start: start.toISOString(), end: end.toISOString(), limit: PAGE,
    kind: s.kind, reason: s.reason, eventType: s.type };
  const records = [];
  let page = await api("events", params);
  records.push(...page.events);
  for (let n = 1; page.nextCursor && n < MAX_PAGES; n++) {
    page = await api("events", { ...params, cursor: page.nextCursor });
    records.push(...page.events);
  }
  return { records, total: page.total, truncated: Boolean(page.nextCursor) };
}

// ----------------------------------------------------------------- the model: rows, marks, incidents

function statusOf(record) {
  if (record.verb === "delete") return "deleted";
  const troubled = (record.classification || []).find((c) => c.eventType && c.eventType !== "recovered");
  if (troubled) return troubled.eventType;
  return (record.classification || []).some((c) => c.eventType === "recovered") ? "recovered" : "healthy";
}

function workloadOf(pod) {
  const owner = (pod.owner_references || [])[0];
  if (!owner) return "standalone pods";
  const hash = (pod.labels || {})["pod-template-hash"];
  if (owner.kind === "ReplicaSet" && hash && owner.name.endsWith("-" + hash)) {
    return "Deployment " + owner.name.slice(0, -hash.length - 1);
  }
  return `${owner.kind} ${owner.name}`;
}

// An incident's state from its records, oldest first, as `podwatch mcp` derives it (docs/internals.md,
// "Incidents from the history"): trouble forwarded or deduplicated fires it (`opened` anew), a
// forwarded `recovered` resolves it, the pod's deletion after its last trouble ends it.
function track(incidents, r, t, target) {
  if (r.verb === "delete" && r.objectRef.kind === "Pod") {
    for (const inc of incidents.values()) if (inc.row === target.key && inc.state === "firing") inc.state = "pod-deleted";
  }
  for (const c of r.classification || []) {
    if (!c.incidentId) continue;
    const inc = incidents.get(c.incidentId);
    if (c.eventType === "recovered") {
      if (inc && c.decision === "forwarded") inc.state = "resolved";
    } else if ((c.decision === "forwarded" || c.decision === "deduplicated") && c.reason !== "partial_recovery") {
      if (!inc || c.reason === "opened" || inc.state !== "firing") {
        incidents.set(c.incidentId, { id: c.incidentId, type: c.eventType, since: t, row: target.key, name: target.name, state: "firing" });
      }
    }
  }
}

function buildModel(records) {
  const rows = new Map();
  const row = (kind, name) => {
    const key = kind + "/" + name;
    if (!rows.has(key)) rows.set(key, { key, kind, name, workload: null, marks: [], ticks: [], incidents: new Set() });
    return rows.get(key);
  };
  const incidents = new Map();
  const oldestFirst = records.slice().sort((a, b) => (a.timestamp < b.timestamp ? -1 : 1));
  for (const r of oldestFirst) {
    const isEvent = r.objectRef.kind === "Event";
    const target = isEvent ? row(r.involvedObject?.kind || "Pod", r.involvedObject?.name || r.objectRef.name)
      : row(r.objectRef.kind, r.objectRef.name);
    const t = Date.parse(r.timestamp);
    if (isEvent) target.ticks.push({ t, r });
    else {
      target.marks.push({ t, r, status: statusOf(r) });
      target.workload = workloadOf(r.object || {});
    }
    track(incidents, r, t, target);
  }
  const open = [...incidents.values()].filter((i) => i.state === "firing");
  for (const inc of open) rows.get(inc.row).incidents.add(inc);
  const groups = new Map();
  for (const r of rows.values()) {
    const g = r.kind === "Pod" ? r.workload || "pods seen only through their Events" : "other objects";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(r);
  }
  const sorted = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
  for (const [, rs] of sorted) rs.sort((a, b) => a.name.localeCompare(b.name));
  return { groups: sorted, incidents: open, rows };
}

// ----------------------------------------------------------------- rendering

function axisHtml(start, end, width) {
  const span = end - start;
  const fmt = span > 2 * 86400e3 ? (d) => d.toISOString().slice(5, 10) : (d) => d.toISOString().slice(11, 16);
  const n = Math.max(2, Math.min(8, Math.floor(width / 110)));
  let html = "";
  for (let i = 0; i <= n; i++) {
    const x = (i / n) * width;
    const shift = i === 0 ? "0" : i === n ? "-100%" : "-50%"; // the end labels stay inside the axis
    html += `<span style="left:${x.toFixed(0)}px;transform:translateX(${shift})">${fmt(new Date(+start + (i / n) * span))}</span>`;
  }
  return `<div class="axis" aria-hidden="true">${html}</div>`;
}

function groupBy(items, key) {
  const out = new Map();
  for (const item of items) {
    const k = key(item);
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(item);
  }
  return out;
}

function rowHtml(r, x, width, selected) {
  let svg = "";
  for (const inc of r.incidents) {
    const x0 = Math.max(0, x(inc.since));
    svg += `<rect class="band" x="${x0.toFixed(1)}" y="0" width="${Math.max(2, width - x0).toFixed(1)}" height="20"/>`;
  }
  // one <path> per kind of mark and row, not an element per mark: 5,000 marks stay a few hundred nodes
  const ticks = groupBy(r.ticks, (k) => k.r.type || "Normal");
  for (const [type, ks] of ticks) {
    const d = ks.map((k) => `M${x(k.t).toFixed(1)} 2v16`).join("");
    svg += `<path class="tick ${esc(type)}" d="${d}"><title>${ks.length} ${esc(type)} Events</title></path>`;
  }
  const marks = groupBy(r.marks, (m) => m.status);
  for (const [status, ms] of marks) {
    const d = ms.map((m) => `M${(x(m.t) - 3).toFixed(1)} 5h6v10h-6z`).join("");
    svg += `<path class="mark" data-status="${esc(status)}" fill="${colour(status)}" d="${d}"><title>${ms.length} ${esc(status)}</title></path>`;
  }
  const label = `${r.name}: ${r.marks.length} transitions, ${r.ticks.length} events${r.incidents.size ? ", open incident" : ""}`;
  const cls = `row${r.incidents.size ? " incident" : ""}${selected ? " selected" : ""}`;
  const button = r.kind === "Pod"
    ? `<button type="button" class="name" data-pod="${esc(r.name)}" aria-label="${esc(label)}" title="${esc(r.name)}">${esc(r.name)}</button>`
    : `<span class="name" title="${esc(r.key)}">${esc(r.key)}</span>`;
  return `<div class="${cls}" data-key="${esc(r.key)}">${button}<svg width="${width}" height="20" role="img" aria-label="${esc(label)}">${svg}</svg></div>`;
}

function render() {
  if (!loaded) return;
  const { model, start, end } = loaded;
  const box = $("timeline");
  const phone = matchMedia("(max-width: 700px)").matches;
  const width = Math.max(120, box.clientWidth - (phone ? 0 : LABEL_PX) - 4);
  const span = Math.max(1, end - start);
  const x = (t) => Math.min(width, Math.max(0, ((t - start) / span) * width));
  const parts = [axisHtml(start, end, width)];
  for (const [name, rs] of model.groups) {
    parts.push(`<div class="group"><h3>${esc(name)} <span class="muted">(${rs.length})</span></h3>`);
    for (const r of rs) parts.push(rowHtml(r, x, width, r.kind === "Pod" && r.name === state.pod));
    parts.push("</div>");
  }
  box.innerHTML = parts.join("");
  const open = model.incidents;
  $("incidents").hidden = open.length === 0;
  $("incidents").innerHTML = open.length
    ? `<h2>${open.length} open incident${open.length > 1 ? "s" : ""}</h2><ul>${open
        .map((i) => `<li><a href="${esc(hashOf({ ...state, pod: i.name }))}">${esc(i.name)}</a> <span class="chip" style="background:${colour(i.type)}">${esc(i.type)}</span> since ${esc(shortTime(new Date(i.since).toISOString()))}</li>`)
        .join("")}</ul>`
    : "";
}

function legend() {
  const types = ["healthy", "crash-loop", "oom-kill", "image-pull", "evicted", "probe-failed", "unschedulable", "deleted"];
  $("legend").innerHTML = types.map((t) => `<li><i style="background:${colour(t)}"></i>${t}</li>`).join("")
    + `<li><i class="tick" style="background:#b54708"></i>Warning Event</li><li><i class="tick" style="background:#98a2b3"></i>Normal Event</li>`
    + `<li><i style="background:#d92d20;opacity:.3"></i>open incident</li>`;
  $("types").innerHTML = Object.keys(TYPE_COLOURS).filter((t) => !["healthy", "deleted"].includes(t))
    .map((t) => `<option value="${t}">`).join("");
}

// ----------------------------------------------------------------- the side panel

function notificationsOf(view) {
  const out = [];
  for (const r of [...view.watchEvents, ...view.relatedEvents]) {
    for (const c of r.classification || []) if (c.decision === "forwarded") out.push({ r, c });
  }
  return out.sort((a, b) => (a.r.timestamp < b.r.timestamp ? 1 : -1));
}

function detailHtml(name, view) {
  const o = view.object;
  const notes = notificationsOf(view);
  const classes = (r) => (r.classification || []).map((c) =>
    `<span class="chip" style="background:${colour(c.eventType)}">${esc(c.eventType)}</span>${esc(c.decision)} ${esc(c.reason)}`).join(" ");
  const hooks = view.hookCalls || [];
  return `<h2 id="detail-title">${esc(name)}</h2>
    <p class="muted">${o ? `${esc(o.snapshot?.phase || "")} · node ${esc(o.snapshot?.node || "-")} · ${o.deleted ? "deleted" : "last seen"} ${esc(shortTime(o.lastSeen))}` : "no pod transitions in the retention window"}</p>
    <h3>Notifications (${notes.length})</h3>
    ${notes.length ? notes.map(({ r, c }) => `<div class="notification"><time>${esc(shortTime(r.timestamp))}</time><span class="chip" style="background:${colour(c.eventType)}">${esc(c.eventType)}</span>${esc(c.reason)} · from ${esc(r.objectRef.kind === "Event" ? "Event " + (r.reason || "") : "pod " + (r.reason || "transition"))}${c.incidentId ? `<br><span class="muted">incident ${esc(c.incidentId)}</span>` : ""}</div>`).join("") : `<p class="muted">none: nothing about this pod reached the manager</p>`}
    ${hooks.length ? `<h3>Hook calls</h3><ol class="hooks">${hooks.map((h) => `<li><time>${esc(shortTime(h.lastSeen || ""))}</time><b>${esc(h.hook)}</b> <span class="chip" style="background:${colour(h.eventType)}">${esc(h.eventType)}</span>${esc(h.calls.ok)} ok, ${esc(h.calls.failed)} failed · ${esc(h.status)}${h.lastError ? ` · <span class="muted">${esc(h.lastError)}</span>` : ""}</li>`).join("")}</ol>` : ""}
    <h3>Events (${view.relatedEvents.length}, newest first)</h3>
    <ol class="events">${view.relatedEvents.map((r) => `<li><time>${esc(shortTime(r.timestamp))}</time><b>${esc(r.type)} ${esc(r.reason)}</b> x${esc(r.count)} ${esc(r.message)}</li>`).join("") || `<li class="muted">none</li>`}</ol>
    <h3>History (${view.watchEvents.length}, newest first)</h3>
    <ol class="history">${view.watchEvents.map((r) => `<li><time>${esc(shortTime(r.timestamp))}</time>${esc(r.verb)} ${esc(r.object?.phase || "")} ${esc(r.reason || "")} ${classes(r)}</li>`).join("")}</ol>`;
}

async function showPanel() {
  const panel = $("panel");
  const open = Boolean(state.pod && state.ns);
  const changed = document.body.classList.contains("panel-open") !== open;
  document.body.classList.toggle("panel-open", open);
  panel.hidden = !open;
  if (changed) render(); // the timeline is narrower beside the panel
  if (!open) return;
  $("detail").innerHTML = `<h2>${esc(state.pod)}</h2><p class="muted">Loading…</p>`;
  try {
    const view = await api(`events/${encodeURIComponent(state.ns)}/pod/${encodeURIComponent(state.pod)}`, { limit: 200 });
    $("detail").innerHTML = detailHtml(state.pod, view);
  } catch (e) {
    $("detail").innerHTML = `<h2>${esc(state.pod)}</h2><p class="error">${esc(e.message)}</p>`;
  }
  panel.focus();
}

// ----------------------------------------------------------------- wiring

function fillForm() {
  const f = $("filters");
  for (const k of ["w", "kind", "reason", "type", "from", "to"]) $(k).value = state[k] || (k === "w" ? "24h" : "");
  const ns = $("ns");
  if (state.ns && ![...ns.options].some((o) => o.value === state.ns)) ns.add(new Option(state.ns, state.ns));
  ns.value = state.ns || "";
  f.classList.toggle("range", state.w === "range");
}

async function loadNamespaces(start, end) {
  const page = await api("events", { start: start.toISOString(), end: end.toISOString(), limit: PAGE });
  const names = [...new Set(page.events.map((r) => r.objectRef.namespace))].sort();
  const ns = $("ns");
  for (const n of names) if (![...ns.options].some((o) => o.value === n)) ns.add(new Option(n, n));
  ns.value = state.ns || "";
  return names;
}

async function load() {
  const token = ++loadToken;
  const status = $("status");
  status.classList.remove("error");
  try {
    if (now === null) now = (await api("health")).now || new Date().toISOString();
    const [start, end] = windowOf(state);
    if (!state.ns) {
      const names = await loadNamespaces(start, end);
      loaded = null;
      $("timeline").innerHTML = "";
      status.textContent = names.length ? `Choose a namespace (${names.length} with records in this window).` : "No records in this window.";
      return;
    }
    status.textContent = `Loading ${state.ns}…`;
    const got = await fetchWindow(state, start, end);
    if (token !== loadToken) return;
    loaded = { ...got, start, end, model: buildModel(got.records) };
    render();
    const rows = loaded.model.rows.size;
    status.textContent = `${state.ns}: ${got.records.length}${got.truncated ? ` of ${got.total} (newest; narrow the window)` : ""} records, ${rows} rows, ${shortTime(start.toISOString())} – ${shortTime(end.toISOString())} UTC`;
    document.body.dataset.rendered = String(performance.now());
    performance.mark("podwatch-rendered");
    await loadNamespaces(start, end); // the namespace list after the timeline: it is not in its way
  } catch (e) {
    status.textContent = `The history API answered: ${e.message}`;
    status.classList.add("error");
  }
}

function onHash() {
  const before = state;
  state = readHash();
  fillForm();
  const same = ["c", "ns", "w", "from", "to", "kind", "reason", "type"].every((k) => before[k] === state[k]);
  if (!same || !loaded) load();
  else render();
  showPanel();
}

function init() {
  legend();
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = (k) => $(k).value.trim();
    go({ ns: v("ns"), w: v("w"), from: v("w") === "range" ? v("from") : "", to: v("w") === "range" ? v("to") : "",
      kind: v("kind"), reason: v("reason"), type: v("type"), pod: v("ns") === state.ns ? state.pod : "" });
  });
  $("ns").addEventListener("change", () => $("filters").requestSubmit());
  $("w").addEventListener("change", () => {
    $("filters").classList.toggle("range", $("w").value === "range");
    if ($("w").value !== "range") $("filters").requestSubmit();
  });
  $("timeline").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-pod]");
    if (b) go({ pod: b.dataset.pod });
  });
  $("close").addEventListener("click", () => go({ pod: "" }));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.pod) go({ pod: "" }); });
  let resize = 0;
  addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(render, 150); });
  addEventListener("hashchange", onHash);
  onHash();
}

init();
