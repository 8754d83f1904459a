// Supervisor dashboard: one filter scope drives every tile, chart, table, gallery and the CSV export.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("qcToken", params.get("token"));
let TOKEN = localStorage.getItem("qcToken") || "";
const $ = (id) => document.getElementById(id);
const COLORS = { pass: "#1b7f3b", fail: "#b3261e", unusable: "#c98a1a", point: "#1f5fbf", limit: "#8a5cc2",
  spec: "#b3261e", centre: "#66707a", alert: "#e5361f" };
const charts = {};
let optionsFilled = false;

Chart.defaults.animation = false;  // a station page redraws often; also keeps tests deterministic
Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
Chart.defaults.maintainAspectRatio = false;

function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(path) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const resp = await fetch(path, { headers });
  if (resp.status === 401 || resp.status === 403) {
    $("auth").classList.remove("hidden");
    const body = await resp.json().catch(() => ({}));
    throw new Error(body.detail || `HTTP ${resp.status}`);
  }
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new Error(body.detail || `HTTP ${resp.status}`);
  }
  return resp.json();
}

// ---- filters ---------------------------------------------------------------------------------
function dayStart(value, plusDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();  // local midnight, sent as UTC
}

function scopeQuery() {
  const q = new URLSearchParams();
  for (const [id, name] of [["f-batch", "batch_id"], ["f-station", "station_id"], ["f-operator", "operator"]]) {
    if ($(id).value) q.set(name, $(id).value);
  }
  if ($("f-from").value) q.set("since", dayStart($("f-from").value));
  if ($("f-to").value) q.set("until", dayStart($("f-to").value, 1));
  return q;
}

function fillOptions(opts) {
  const fill = (sel, items, label) => {
    const keep = sel.value;
    sel.length = 1;
    for (const it of items) sel.add(new Option(label(it), typeof it === "object" ? it.id : it));
    sel.value = keep;
  };
  fill($("f-batch"), opts.batches, (b) => `${b.lot_id} (#${b.id})${b.open ? " · open" : ""}`);
  fill($("f-station"), opts.stations, (s) => s);
  fill($("f-operator"), opts.operators, (o) => o);
}

function syncUrl() {
  const q = new URLSearchParams();
  for (const id of ["f-batch", "f-station", "f-operator", "f-from", "f-to"]) if ($(id).value) q.set(id.slice(2), $(id).value);
  history.replaceState(null, "", q.toString() ? `?${q}` : location.pathname);
}

function restoreFromUrl() {
  for (const id of ["f-batch", "f-station", "f-operator", "f-from", "f-to"]) {
    const v = params.get(id.slice(2));
    if (!v) continue;
    const el = $(id);
    if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === v)) el.add(new Option(v, v));
    el.value = v;
  }
}

// ---- rendering -------------------------------------------------------------------------------
const pct = (r) => (r === null || r === undefined ? "–" : `${(100 * r).toFixed(1)} %`);
const num = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const when = (iso) => new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" });

function tile(id, value, sub, rate) {
  const el = $(id);
  el.querySelector(".value").textContent = value;
  el.querySelector(".sub").textContent = sub;
  el.classList.toggle("good", rate !== null && rate !== undefined && rate >= 0.95);
  el.classList.toggle("bad", rate !== null && rate !== undefined && rate < 0.9);
}

function renderTiles(d) {
  const t = (c) => `${c.passed} passed · ${c.failed} failed · ${c.unusable} unusable`;
  tile("tile-now", pct(d.now.pass_rate), `last ${d.now.passed + d.now.failed} judged masks`, d.now.pass_rate);
  tile("tile-today", pct(d.today.pass_rate), t(d.today), d.today.pass_rate);
  tile("tile-scope", pct(d.overall.pass_rate), `${d.overall.total} inspections · ${t(d.overall)}`, d.overall.pass_rate);
  const last = d.by_hour.at(-1);
  const avg = d.by_hour.length ? d.overall.total / d.by_hour.length : 0;
  tile("tile-rate", last ? String(last.total) : "0",
    last ? `in the hour from ${new Date(last.hour).toLocaleTimeString([], { timeStyle: "short" })} · ${avg.toFixed(0)} avg over ${d.by_hour.length} h` : "no inspections in view", null);
  if (d.open_batch) {
    const c = d.open_batch.counts;
    tile("tile-open", d.open_batch.batch.lot_id,
      `${c.total} masks · pass rate ${pct(c.pass_rate)} · ${c.failed} failed · ${c.unusable} unusable · operator ${d.open_batch.batch.operator || "–"}`,
      c.pass_rate);
  } else {
    tile("tile-open", "none", "no batch open on this station", null);
  }
}

function setChart(id, config) {
  if (charts[id]) { charts[id].destroy(); }
  charts[id] = new Chart($(id), config);
}

function flatLine(label, value, n, color, dash) {
  return { type: "line", label, data: Array(n).fill(value), borderColor: color, borderWidth: 1.5,
    borderDash: dash, pointRadius: 0, fill: false, spanGaps: true };
}

function renderControlChart(dim, c) {
  const n = c.points.length;
  const labels = c.points.map((p) => `#${p.id}`);
  const flagged = new Set();
  const index = new Map(c.points.map((p, i) => [p.id, i]));
  for (const a of c.alerts) {
    for (let i = index.get(a.first_id); i !== undefined && i <= index.get(a.last_id); i++) flagged.add(i);
  }
  const pointColor = c.points.map((_, i) => (flagged.has(i) ? COLORS.alert : COLORS.point));
  const datasets = [
    { type: "line", label: `${dim} (mm)`, data: c.points.map((p) => p.value), borderColor: COLORS.point,
      borderWidth: 1.2, pointRadius: n > 200 ? 1.5 : 3, pointBackgroundColor: pointColor, pointBorderColor: pointColor },
    flatLine("nominal", c.nominal, n, COLORS.centre, [2, 3]),
    flatLine("USL", c.usl, n, COLORS.spec, []),
    flatLine("LSL", c.lsl, n, COLORS.spec, []),
  ];
  if (c.ucl !== null) {
    datasets.push(flatLine("UCL", c.ucl, n, COLORS.limit, [6, 4]), flatLine("LCL", c.lcl, n, COLORS.limit, [6, 4]),
      flatLine("mean", c.mean, n, COLORS.limit, [1, 3]));
  }
  setChart(`chart-${dim}`, {
    data: { labels, datasets },
    options: {
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { labels: { boxWidth: 14, font: { size: 11 } } },
        tooltip: { filter: (item) => item.datasetIndex === 0 } },
      scales: { x: { ticks: { maxTicksLimit: 8, font: { size: 10 } } },
        y: { grace: "4%", title: { display: true, text: "mm" } } },
      onClick: (_ev, els) => { if (els.length) showInspection(c.points[els[0].index].id); },
    },
  });
  setChart(`chart-${dim}-mr`, {
    data: { labels, datasets: [
      { type: "line", label: "moving range", data: c.points.map((p) => p.moving_range), borderColor: "#5a6b7b",
        borderWidth: 1, pointRadius: 0 },
      ...(c.mr_ucl !== null ? [flatLine("MR UCL", c.mr_ucl, n, COLORS.limit, [6, 4])] : []),
    ] },
    options: { plugins: { legend: { display: false } }, scales: { x: { display: false }, y: { beginAtZero: true, ticks: { maxTicksLimit: 3 } } } },
  });
  const cap = $(`cap-${dim}`);
  cap.textContent = c.n >= 2
    ? `n ${c.n} · mean ${num(c.mean, 2)} · σ ${num(c.sigma, 3)} · Cp ${num(c.cp)} · Cpk ${num(c.cpk)} · spec ${c.lsl}–${c.usl}`
    : `${c.n} measured masks: not enough for a chart`;
}

function renderAlerts(sections) {
  const list = $("alert-list");
  list.replaceChildren();
  for (const { dim, chart } of sections) {
    // one line per rule and side: the latest run, with how many runs were seen in view
    const latest = new Map();
    for (const a of chart.alerts) {
      const key = `${a.rule}/${a.side}`;
      const prev = latest.get(key);
      latest.set(key, { ...a, runs: (prev ? prev.runs : 0) + 1 });
    }
    for (const a of latest.values()) {
      const li = document.createElement("li");
      li.className = `alert alert-${dim}`;
      li.dataset.rule = a.rule;
      const rule = document.createElement("span");
      rule.className = "rule";
      rule.textContent = a.rule;
      const masks = a.first_id === a.last_id ? `mask #${a.first_id}` : `masks #${a.first_id}–#${a.last_id}`;
      li.append(rule, `${dim[0].toUpperCase() + dim.slice(1)}: ${a.message} — ${masks}` +
        (a.runs > 1 ? ` (${a.runs} runs in view)` : ""));
      list.append(li);
    }
  }
  $("alerts").classList.toggle("hidden", list.children.length === 0);
}

function renderPareto(bars) {
  $("pareto-empty").classList.toggle("hidden", bars.length > 0);
  setChart("chart-pareto", {
    data: { labels: bars.map((b) => b.plain_words), datasets: [
      { type: "bar", label: "count", data: bars.map((b) => b.count), backgroundColor: "#d0574c", yAxisID: "y" },
      { type: "line", label: "cumulative %", data: bars.map((b) => 100 * b.cumulative_share), borderColor: "#17324d",
        pointRadius: 3, yAxisID: "y1" },
    ] },
    options: { plugins: { legend: { labels: { boxWidth: 14, font: { size: 11 } } } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
        y1: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, ticks: { callback: (v) => `${v}%` } },
        x: { ticks: { font: { size: 10 } } } } },
  });
}

function renderHours(hours) {
  const labels = hours.map((h) => new Date(h.hour).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" }));
  setChart("chart-hours", {
    data: { labels, datasets: [
      { type: "bar", label: "pass", data: hours.map((h) => h.passed), backgroundColor: COLORS.pass, stack: "v" },
      { type: "bar", label: "fail", data: hours.map((h) => h.failed), backgroundColor: COLORS.fail, stack: "v" },
      { type: "bar", label: "unusable", data: hours.map((h) => h.unusable), backgroundColor: COLORS.unusable, stack: "v" },
      { type: "line", label: "pass rate %", data: hours.map((h) => (h.pass_rate === null ? null : 100 * h.pass_rate)),
        borderColor: "#17324d", yAxisID: "y1", pointRadius: 3 },
    ] },
    options: { plugins: { legend: { labels: { boxWidth: 14, font: { size: 11 } } } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        y1: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } },
  });
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderBatches(rows) {
  const body = $("batches").tBodies[0];
  body.replaceChildren();
  const cap = (cp, cpk) => `${num(cp)} / ${num(cpk)}`;
  for (const b of rows) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.batch = b.batch_id;
    const low = (v) => (v !== null && v < 1.33 ? "num cpk-low" : "num");
    tr.append(cell(b.lot_id), cell(b.operator || "–"), cell(b.station_id), cell(when(b.opened_at)),
      cell(String(b.total), "num"), cell(pct(b.pass_rate), "num"), cell(String(b.failed), "num"),
      cell(String(b.unusable), "num"), cell(cap(b.cp_width, b.cpk_width), low(b.cpk_width)),
      cell(cap(b.cp_height, b.cpk_height), low(b.cpk_height)));
    tr.addEventListener("click", () => { $("f-batch").value = String(b.batch_id); refresh(); });
    body.append(tr);
  }
}

function renderGallery(cards) {
  const g = $("gallery");
  g.replaceChildren();
  $("gallery-empty").classList.toggle("hidden", cards.length > 0);
  for (const c of cards) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "reject";
    b.dataset.id = c.id;
    const img = document.createElement("img");
    img.alt = `inspection ${c.id}`;
    if (c.image_url) img.src = withToken(c.image_url);
    const cap = document.createElement("div");
    cap.className = "cap";
    const v = document.createElement("div");
    v.className = `verdict verdict-${c.verdict}`;
    v.textContent = `${c.verdict} · #${c.id}`;
    const words = document.createElement("div");
    words.textContent = c.plain_words.join(", ") || "–";
    const t = document.createElement("div");
    t.className = "muted";
    t.textContent = when(c.ts);
    cap.append(v, words, t);
    b.append(img, cap);
    b.addEventListener("click", () => showInspection(c.id));
    g.append(b);
  }
}

async function showInspection(id) {
  try {
    const r = await api(`/api/inspections/${id}`);
    $("detail-title").textContent = `Inspection #${r.id} · ${r.verdict.toUpperCase()}`;
    $("detail-title").className = `verdict-${r.verdict}`;
    const img = r.images.find((i) => i.kind === "annotated") || r.images.find((i) => i.kind === "thumb") || r.images[0];
    $("detail-img").classList.toggle("hidden", !img);
    if (img) $("detail-img").src = withToken(img.url);
    const m = r.measurements || {};
    const facts = [
      ["time", when(r.ts)], ["batch", r.batch_id ?? "–"], ["station", r.station_id],
      ["reasons", r.plain_words.join(", ") || "none"],
      ["width × height", m.width_mm ? `${num(m.width_mm)} × ${num(m.height_mm)} mm` : "–"],
      ["pleats / loops", m.pleats !== undefined ? `${m.pleats} / ${m.ear_loops}` : "–"],
      ["spec", r.spec_id || "–"], ["calibration", r.calibration_id || "–"],
      ["model", r.model_sha256 ? r.model_sha256.slice(0, 16) + "…" : "–"],
      ["pipeline", r.pipeline_ms ? `${r.pipeline_ms.toFixed(0)} ms` : "–"],
    ];
    const dl = $("detail-facts");
    dl.replaceChildren();
    for (const [k, v] of facts) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v);
      dl.append(dt, dd);
    }
    $("detail-json").href = withToken(`/api/inspections/${r.id}`);
    if (!$("detail").open) $("detail").showModal();
    history.replaceState(null, "", `${location.pathname}${location.search}#inspection=${r.id}`);
  } catch (err) {
    showError(`inspection ${id}: ${err.message}`);
  }
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").classList.toggle("hidden", !msg);
}

// ---- loading ---------------------------------------------------------------------------------
let loading = null;
async function refresh() {
  const q = scopeQuery();
  const qs = q.toString() ? `?${q}` : "";
  syncUrl();
  $("export").href = withToken(`/api/dashboard/export.csv${qs}`);
  try {
    const [d, w, h] = await Promise.all([
      api(`/api/dashboard${qs}`),
      api(`/api/spc?dimension=width${q.toString() ? `&${q}` : ""}`),
      api(`/api/spc?dimension=height${q.toString() ? `&${q}` : ""}`),
    ]);
    showError("");
    $("auth").classList.add("hidden");
    fillOptions(d.options);
    renderTiles(d);
    renderControlChart("width", w);
    renderControlChart("height", h);
    renderAlerts([{ dim: "width", chart: w }, { dim: "height", chart: h }]);
    renderPareto(d.pareto);
    renderHours(d.by_hour);
    renderBatches(d.by_batch);
    renderGallery(d.rejects);
    document.body.dataset.loaded = String(Date.now());
    document.body.dataset.total = String(d.overall.total);
  } catch (err) {
    showError(`could not load the dashboard: ${err.message}`);
  }
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; loading = refresh(); }, 1500);
}

function connectLive() {
  const es = new EventSource(withToken("/api/events"));
  es.onopen = () => $("live").classList.add("live-on");
  es.onerror = () => $("live").classList.remove("live-on");
  es.addEventListener("inspection", refreshSoon);
  es.addEventListener("batch", refreshSoon);
}

$("filters").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
for (const id of ["f-batch", "f-station", "f-operator", "f-from", "f-to"]) $(id).addEventListener("change", () => refresh());
$("clear-filters").addEventListener("click", () => { $("filters").reset(); refresh(); });
$("token-save").addEventListener("click", () => {
  TOKEN = $("token-input").value.trim();
  localStorage.setItem("qcToken", TOKEN);
  refresh();
  connectLive();
});

restoreFromUrl();
api("/api/station").then((s) => { $("station-name").textContent = `${s.name} · ${s.spec_name} v${s.spec_version}`; }).catch(() => {});
loading = refresh().then(() => {
  const m = location.hash.match(/inspection=(\d+)/);
  if (m) showInspection(Number(m[1]));
});
connectLive();
