// Operator screen: shows the last verdict huge, live over Server-Sent Events.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("qcToken", params.get("token"));
const TOKEN = localStorage.getItem("qcToken") || "";
const tokenQuery = (sep) => (TOKEN ? `${sep}token=${encodeURIComponent(TOKEN)}` : "");

const $ = (id) => document.getElementById(id);
const WORDS = { pass: "PASS", fail: "FAIL", unusable: "UNUSABLE" };
let station = null;
let lastId = 0;

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const resp = await fetch(path, { ...options, headers });
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new Error((body && body.detail) || `${resp.status} ${resp.statusText}`);
  return body;
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function showInspection(rec) {
  if (!rec || rec.id < lastId) return;
  lastId = rec.id;
  const v = $("verdict");
  v.textContent = WORDS[rec.verdict] || rec.verdict;
  v.className = `verdict-${rec.verdict}`;
  v.dataset.inspectionId = rec.id;
  const reasons = $("reasons");
  reasons.innerHTML = "";
  const words = rec.verdict === "pass" ? ["Good mask"] : rec.plain_words.length ? rec.plain_words : ["see picture"];
  for (const w of words) {
    const li = document.createElement("li");
    li.textContent = w.charAt(0).toUpperCase() + w.slice(1);
    reasons.appendChild(li);
  }
  const m = rec.measurements;
  const when = new Date(rec.ts).toLocaleTimeString();
  $("meta").textContent = `#${rec.id} at ${when}` +
    (m ? ` - ${m.width_mm.toFixed(1)} x ${m.height_mm.toFixed(1)} mm, ${m.pleats} pleats` : "");
  const kinds = rec.images.map((i) => i.kind);
  const kind = kinds.includes("annotated") ? "annotated" : kinds.includes("thumb") ? "thumb" : null;
  const img = $("image");
  if (kind) {
    img.src = `/api/inspections/${rec.id}/image/${kind}${tokenQuery("?")}`;
    img.hidden = false;
    $("noimage").hidden = true;
  } else {
    img.hidden = true;
    $("noimage").hidden = false;
    $("noimage").textContent = rec.image_note || "no picture kept";
  }
}

function showCounts(counts) {
  const c = counts || { passed: 0, failed: 0, unusable: 0, pass_rate: null };
  $("n-pass").textContent = c.passed;
  $("n-fail").textContent = c.failed;
  $("n-unusable").textContent = c.unusable;
  $("rate").textContent = c.pass_rate == null ? "-" : `${(c.pass_rate * 100).toFixed(1)} %`;
}

async function refreshStation() {
  station = await api("/api/station");
  const b = station.open_batch;
  $("lot").textContent = b ? b.lot_id : "none open";
  $("open-batch").hidden = !!b;
  $("close-batch").hidden = !b;
  showCounts(station.batch_counts);
  if (station.last_inspection && station.last_inspection.id > lastId) {
    showInspection(station.last_inspection);
  } else if (lastId === 0 && station.trigger_mode.startsWith("conveyor")) {
    $("reasons").innerHTML = "<li>Waiting for the next mask on the belt</li>";
  }
}

function showHealth(h) {
  const el = $("health");
  el.className = `health-${h.status}`;
  el.textContent = h.status === "ok" ? "OK" : h.status.toUpperCase();
  const problems = ["camera", "conveyor", "pipeline", "store", "disk", "model", "calibration"]
    .filter((k) => h[k] && !h[k].ok && h[k].message)
    .map((k) => `${k}: ${h[k].message}`);
  const fault = $("fault");
  const serious = h.status === "fault";
  fault.hidden = !serious || problems.length === 0;
  fault.textContent = problems.join(" | ");
  el.title = problems.join("\n") || "all good";
}

async function refreshHealth() {
  try { showHealth(await api("/api/health")); } catch (e) { showHealth({ status: "fault" }); }
}

let refreshPending = null;
function refreshSoon() {  // many results per second must not mean many requests per second
  if (refreshPending) return;
  refreshPending = setTimeout(() => { refreshPending = null; refreshStation().catch(() => {}); }, 300);
}

function connect() {
  const es = new EventSource(`/api/events${tokenQuery("?")}`);
  es.onopen = () => { $("live").className = "live-on"; };
  es.onerror = () => { $("live").className = "live-off"; };
  es.addEventListener("inspection", (ev) => { showInspection(JSON.parse(ev.data)); refreshSoon(); });
  es.addEventListener("batch", () => refreshSoon());
  es.addEventListener("health", (ev) => showHealth(JSON.parse(ev.data)));
}

$("health").addEventListener("click", () => toast($("health").title));  // no hover on a touchscreen

$("trigger").addEventListener("click", async () => {
  try { await api("/api/trigger", { method: "POST" }); toast("Inspecting..."); }
  catch (e) { toast(e.message); }
});
$("open-batch").addEventListener("click", () => {
  $("batch-error").textContent = "";
  $("lot-input").value = "";
  $("batch-dialog").showModal();
  $("lot-input").focus();
});
$("batch-form").addEventListener("submit", async (ev) => {
  if (ev.submitter && ev.submitter.value !== "ok") return;
  ev.preventDefault();
  try {
    await api("/api/batches", { method: "POST", body: JSON.stringify({
      lot_id: $("lot-input").value.trim(), operator: $("operator-input").value.trim() }) });
    $("batch-dialog").close();
    await refreshStation();
  } catch (e) { $("batch-error").textContent = e.message; }
});
$("close-batch").addEventListener("click", async () => {
  const b = station && station.open_batch;
  if (!b || !confirm(`Close batch ${b.lot_id}?`)) return;
  try { await api(`/api/batches/${b.id}/close`, { method: "POST" }); await refreshStation(); }
  catch (e) { toast(e.message); }
});

refreshStation().catch((e) => toast(e.message));
refreshHealth();
setInterval(refreshHealth, 10000);
connect();
