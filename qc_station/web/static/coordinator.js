// Coordinator page: batches with certificate downloads, a verify form, the station's keys.
// At /verify (where a certificate's QR code points) only the verify form and keys are shown.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("qcToken", params.get("token"));
let TOKEN = localStorage.getItem("qcToken") || "";
const $ = (id) => document.getElementById(id);
const verifyOnly = location.pathname.startsWith("/verify");

function withToken(url) {
  return TOKEN ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : url;
}

async function api(path, options = {}) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const resp = await fetch(path, { ...options, headers });
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401 || resp.status === 403) $("auth").classList.remove("hidden");
  if (!resp.ok) throw new Error(body.detail || `HTTP ${resp.status}`);
  return body;
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").classList.toggle("hidden", !msg);
}

const pct = (r) => (r === null || r === undefined ? "–" : `${(100 * r).toFixed(1)} %`);
const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "");

function td(content, cls) {
  const c = document.createElement("td");
  if (content instanceof Node) c.append(content); else c.textContent = content;
  if (cls) c.className = cls;
  return c;
}

async function loadBatches() {
  try {
    const [page, stats] = await Promise.all([api("/api/batches?limit=200"), api("/api/stats")]);
    const counts = new Map(stats.by_batch.map((b) => [b.batch_id, b]));
    const body = $("batches").tBodies[0];
    body.replaceChildren();
    const mode = encodeURIComponent($("mode").value);
    const me = await api("/api/station").catch(() => ({}));
    const RANK = { operator: 1, supervisor: 2, coordinator: 3, admin: 4 };
    const mayDownload = !me.your_role || RANK[me.your_role] >= RANK.coordinator;
    if (!mayDownload) showError(`your token (${me.you}, role ${me.your_role}) may not download certificates: ` +
      "that needs the coordinator role");
    for (const b of page.items) {
      const c = counts.get(b.id) || { total: 0, pass_rate: null };
      const tr = document.createElement("tr");
      tr.dataset.batch = b.id;
      const links = document.createElement("span");
      links.className = "downloads";
      for (const kind of mayDownload ? ["pdf", "json"] : []) {
        const a = document.createElement("a");
        a.href = withToken(`/api/batches/${b.id}/certificate.${kind}?mode=${mode}`);
        a.textContent = kind.toUpperCase();
        a.className = `dl-${kind}`;
        a.setAttribute("download", "");
        links.append(a);
      }
      const closed = b.closed_at ? when(b.closed_at) : Object.assign(document.createElement("span"),
        { className: "state-open", textContent: "open" });
      tr.append(td(b.lot_id), td(`#${b.id}`), td(b.operator || "–"), td(when(b.opened_at)), td(closed),
        td(String(c.total), "num"), td(pct(c.pass_rate), "num"), td(links));
      body.append(tr);
    }
    if (mayDownload) showError("");
  } catch (err) {
    showError(`could not list batches: ${err.message}`);
  }
}

async function loadKeys() {
  try {
    const k = await api("/api/keys");
    $("station-name").textContent = `station ${k.station_id}`;
    const ul = $("keys");
    ul.replaceChildren();
    for (const key of k.keys) {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = key.public_key;
      li.append(`${key.key_id}${key.current ? " (current)" : ""}: `, code);
      ul.append(li);
    }
  } catch (err) {
    showError(`could not read the station keys: ${err.message}`);
  }
}

$("verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData();
  form.append("file", $("verify-file").files[0]);
  if ($("verify-json").files[0]) form.append("json", $("verify-json").files[0]);
  const box = $("verify-result");
  box.replaceChildren();
  try {
    const r = await api("/api/certificates/verify", { method: "POST", body: form });
    box.className = `verify-result ${r.valid ? "valid" : "invalid"}`;
    const head = document.createElement("div");
    head.className = "headline";
    head.id = "verify-headline";
    head.textContent = r.valid ? "VALID" : "INVALID";
    box.append(head);
    if (r.valid) {
      const p = document.createElement("p");
      p.textContent = `Certificate ${r.certificate_id} for lot ${r.lot_id} (batch ${r.batch_id}), issued ${when(r.issued_at)}, ` +
        `decision: ${r.decision}. Signed by this station's key ${r.key_id}; checked ${r.checked}.`;
      box.append(p);
    } else {
      const ul = document.createElement("ul");
      ul.id = "verify-reasons";
      for (const reason of r.reasons) ul.append(Object.assign(document.createElement("li"), { textContent: reason }));
      box.append(ul);
    }
  } catch (err) {
    box.className = "verify-result invalid";
    box.textContent = `could not verify: ${err.message}`;
  }
});

$("mode").addEventListener("change", loadBatches);
$("token-save").addEventListener("click", () => {
  TOKEN = $("token-input").value.trim();
  localStorage.setItem("qcToken", TOKEN);
  $("auth").classList.add("hidden");
  loadBatches();
});

if (verifyOnly) {
  document.body.classList.add("verify-only");
  $("page-title").textContent = "Verify a QC certificate";
  document.title = "Mask QC · verify a certificate";
  if (params.get("id")) {
    $("verify-intro").textContent = `Certificate ${params.get("id")}: upload its signed JSON (or the PDF with its JSON) ` +
      "to check that it is genuine, unchanged and signed by this station.";
  }
} else {
  loadBatches();
}
loadKeys();
