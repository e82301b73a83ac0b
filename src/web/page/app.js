// The slatefs console: plain DOM code over the JSON API (docs/web.md). Everything shown comes
// from the server's latest answer; text from datasets is only ever set as textContent.
"use strict";

const state = { csrf: null, access: null, dataset: null, snapshots: [], version: null, path: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

function status(msg) {
  $("status").textContent = msg;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch("/api/v1" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  if (resp.status === 401 && path !== "/login") {
    showLogin();
  }
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) || `${resp.status} ${resp.statusText}`;
    throw new Error(msg);
  }
  return data;
}

async function run(what) {
  showError("");
  try { await what(); } catch (e) { showError(e.message); }
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function show(view) {
  for (const id of ["login", "datasets-view", "dataset-view"]) $(id).hidden = id !== view;
}

function showLogin() {
  state.csrf = null;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  show("login");
}

// ------------------------------------------------------------------ login

async function start() {
  try {
    const s = await api("GET", "/session");
    loggedIn(s);
  } catch (_) {
    showLogin();
    showError("");
  }
}

function loggedIn(s) {
  state.csrf = s.csrf_token;
  state.access = s.access;
  document.body.classList.toggle("readonly", s.access !== "admin");
  $("whoami").textContent = s.access === "readonly" ? "read-only access" : "admin access";
  $("logout").hidden = false;
  route();
}

function route() {
  const m = location.hash.match(/^#\/datasets\/([^/]+)/);
  if (m) openDataset(decodeURIComponent(m[1]));
  else listDatasets();
}

// ------------------------------------------------------------------ datasets

function usageBar(used, quota) {
  const bar = el("span", { class: "bar" });
  const frac = quota ? Math.min(1, used / quota) : 0;
  if (quota && used >= quota) bar.classList.add("full");
  const fill = el("span");
  fill.style.width = (frac * 100).toFixed(1) + "%";
  bar.append(fill);
  return bar;
}

// The PersistentVolumeClaim (VolumeSnapshot) a dataset (snapshot) was made for, as
// "namespace/name", or "" when Kubernetes did not make it.
function k8sName(k) {
  const name = k && (k.persistentvolumeclaim || k.volumesnapshot);
  return name ? `${k.namespace}/${name}` : "";
}

function healthCell(d) {
  if (d.error) return el("td", { class: "health-bad" }, d.error);
  const h = d.health || { state: "unknown", message: "" };
  return el("td", { class: h.state === "ok" ? "health-ok" : "health-bad", title: h.message }, h.state.replace("_", " "));
}

async function listDatasets() {
  show("datasets-view");
  const data = await api("GET", "/datasets").catch((e) => { showError(e.message); return null; });
  if (!data) return;
  const body = $("datasets").tBodies[0];
  body.replaceChildren();
  for (const d of data.datasets) {
    const used = d.used_bytes === null ? "-" : bytes(d.used_bytes);
    const usedCell = el("td", {}, usageBar(d.used_bytes || 0, d.quota_bytes), `${used} of ${d.quota_bytes ? bytes(d.quota_bytes) : "no quota"}`);
    const origin = d.origin ? `${d.origin.kind === "clone_of_snapshot" ? "clone of" : "snapshot of"} ${d.origin.name}` : "-";
    const row = el("tr", { class: "clickable", "data-dataset": d.name, onclick: () => { location.hash = "#/datasets/" + encodeURIComponent(d.name); } },
      el("td", {}, d.name + (d.is_default ? " (default)" : "")),
      el("td", { class: "kubernetes", title: d.kubernetes ? `PersistentVolume ${d.kubernetes.persistentvolume}` : "" }, k8sName(d.kubernetes) || "-"),
      usedCell,
      el("td", {}, d.used_inodes ?? "-"), el("td", { class: "snapshot-count" }, d.snapshot_count), el("td", {}, origin), healthCell(d));
    body.append(row);
  }
}

// ------------------------------------------------------------------ one dataset

async function openDataset(name) {
  show("dataset-view");
  state.dataset = name;
  $("dataset-title").textContent = name;
  $("diff").hidden = true;
  $("viewer").hidden = true;
  await run(async () => {
    const d = await api("GET", "/datasets/" + encodeURIComponent(name));
    $("dataset-summary").replaceChildren(
      usageBar(d.used_bytes || 0, d.quota_bytes),
      `${bytes(d.used_bytes)} used of ${d.quota_bytes ? bytes(d.quota_bytes) : "no quota"}, ${d.used_inodes} inodes, health: ${d.health ? d.health.state : "?"}`);
    const k = k8sName(d.kubernetes);
    $("dataset-kubernetes").textContent = k ? `PersistentVolumeClaim ${k} (PersistentVolume ${d.kubernetes.persistentvolume})` : "";
    $("dataset-kubernetes").hidden = !k;
    $("quota-value").value = d.quota_bytes === null ? "" : String(d.quota_bytes);
    await loadSnapshots();
    await loadPolicy();
    await browse(null, []);
  });
}

async function loadSnapshots() {
  const data = await api("GET", `/datasets/${encodeURIComponent(state.dataset)}/snapshots`);
  state.snapshots = data.snapshots;
  const list = $("snapshots");
  list.replaceChildren();
  const tl = $("timeline");
  tl.replaceChildren();
  const times = state.snapshots.map((s) => s.created_unix_ms);
  const lo = Math.min(...times), hi = Math.max(...times);
  for (const s of state.snapshots) {
    const pos = hi > lo ? 3 + 94 * (s.created_unix_ms - lo) / (hi - lo) : 50;
    const k = k8sName(s.kubernetes);
    const maker = s.policy ? `made by policy ${s.policy.prefix}` : (k ? `VolumeSnapshot ${k}` : "made by hand");
    const dot = el("div", { class: s.policy ? "dot policy" : "dot", "data-snapshot": s.name,
      title: `${s.name}, ${when(s.created_unix_ms)}, ${bytes(s.size_bytes)}, ${maker}` }, el("span", {}, k || s.name));
    dot.style.left = pos + "%";
    // Labels near the right end lean left, so they stay on the page.
    if (pos > 70) dot.classList.add("end");
    tl.append(dot);
    const item = el("li", { "data-snapshot": s.name },
      el("b", {}, s.name), ` ${when(s.created_unix_ms)}, ${bytes(s.size_bytes)}, ${s.inodes} inodes `,
      el("span", { class: "made-by" }, s.policy ? `made by policy ${s.policy.prefix} (slot ${when(s.policy.slot_unix_ms)})` : "made by hand"),
      k ? el("span", { class: "kubernetes" }, ` · VolumeSnapshot ${k}`) : "",
      el("button", { class: "browse-snapshot", type: "button", onclick: () => run(() => browse(s.name, [])) }, "Browse"));
    if (state.access === "admin") {
      item.append(el("button", { class: "clone-snapshot", type: "button", onclick: () => askClone(s.name) }, "Clone"));
      item.append(el("button", { class: "delete-snapshot", type: "button", onclick: () => askDelete(s.name) }, "Delete"));
    }
    list.append(item);
  }
  tl.hidden = state.snapshots.length === 0;
  const from = $("compare-from"), to = $("compare-to");
  from.replaceChildren(...state.snapshots.map((s) => el("option", { value: s.name }, s.name)));
  to.replaceChildren(el("option", { value: "live" }, "live"), ...state.snapshots.map((s) => el("option", { value: s.name }, s.name)));
}

// ------------------------------------------------------------------ browse

function refOf(version) {
  return encodeURIComponent(version ? `${state.dataset}@${version}` : state.dataset);
}

function filesUrl(version, path) {
  return `/datasets/${refOf(version)}/files/` + path.map((p) => p.href).join("/");
}

async function browse(version, path) {
  const data = await api("GET", filesUrl(version, path));
  state.version = version;
  state.path = path;
  $("browse-version").textContent = version ? `snapshot ${version}` : "live";
  const crumbs = $("breadcrumbs");
  crumbs.replaceChildren(el("a", { href: "#", onclick: (e) => { e.preventDefault(); run(() => browse(version, [])); } }, version ? `${state.dataset}@${version}` : state.dataset));
  path.forEach((p, i) => {
    crumbs.append(" / ", el("a", { href: "#", onclick: (e) => { e.preventDefault(); run(() => browse(version, path.slice(0, i + 1))); } }, p.name));
  });
  $("tar-link").href = "/api/v1" + filesUrl(version, path) + "?tar=1";
  const body = $("entries").tBodies[0];
  body.replaceChildren();
  const entries = data.entries.slice().sort((a, b) => (a.type === "dir") === (b.type === "dir") ? (a.name < b.name ? -1 : 1) : (a.type === "dir" ? -1 : 1));
  for (const e of entries) {
    const sub = path.concat([{ name: e.name, href: e.href }]);
    const open = () => run(() => (e.type === "dir" ? browse(version, sub) : view(version, sub, e)));
    const actions = el("td");
    if (version && state.access === "admin") {
      actions.append(el("button", { class: "restore", type: "button", onclick: (ev) => { ev.stopPropagation(); askRestore(version, sub); } }, "Restore"));
    }
    body.append(el("tr", { class: "clickable", "data-name": e.name, onclick: open },
      el("td", {}, e.name + (e.type === "dir" ? "/" : "")), el("td", {}, e.type), el("td", {}, e.type === "dir" ? "" : bytes(e.size)),
      el("td", {}, when(e.mtime_unix_ms)), el("td", {}, "0" + (e.mode & 0o7777).toString(8)), actions));
  }
}

const IMAGE = /\.(png|jpe?g|gif|webp|svg|bmp|ico)$/i;
const TEXT_LIMIT = 2 * 1024 * 1024;

async function view(version, path, entry) {
  const url = "/api/v1" + filesUrl(version, path);
  $("viewer").hidden = false;
  $("viewer-title").textContent = path.map((p) => p.name).join("/") + (version ? ` (snapshot ${version})` : " (live)");
  $("viewer-download").href = url + "?download=1";
  $("viewer-text").hidden = true;
  $("viewer-image").hidden = true;
  $("viewer-note").hidden = true;
  if (entry.type !== "file") {
    const info = await api("GET", filesUrl(version, path));
    $("viewer-note").textContent = info.type === "symlink" ? `symbolic link to ${info.target}` : `a ${info.type}`;
    $("viewer-note").hidden = false;
    return;
  }
  if (IMAGE.test(entry.name)) {
    $("viewer-image").src = url;
    $("viewer-image").hidden = false;
    return;
  }
  if (entry.size > TEXT_LIMIT) {
    $("viewer-note").textContent = `${bytes(entry.size)}: too large to show here; download it`;
    $("viewer-note").hidden = false;
    return;
  }
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
  const buf = new Uint8Array(await resp.arrayBuffer());
  if (buf.slice(0, 8192).includes(0)) {
    $("viewer-note").textContent = "binary file; download it";
    $("viewer-note").hidden = false;
    return;
  }
  $("viewer-text").textContent = new TextDecoder().decode(buf);
  $("viewer-text").hidden = false;
}

// ------------------------------------------------------------------ compare

async function compare() {
  const from = $("compare-from").value, to = $("compare-to").value;
  if (!from) throw new Error("take a snapshot first: there is nothing to compare");
  const q = new URLSearchParams({ from, to });
  if ($("compare-content").checked) q.set("content", "1");
  const d = await api("GET", `/datasets/${encodeURIComponent(state.dataset)}/diff?${q}`);
  $("diff").hidden = false;
  $("diff-summary").textContent = `${from} → ${to}: ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed` +
    (d.truncated ? " (truncated)" : "") + `; ${d.dirs_listed} directories listed, ${d.files_compared} files compared`;
  const fill = (id, list, fmt) => $(id).replaceChildren(...list.map((x) => el("li", { "data-path": x.path }, fmt(x))));
  fill("diff-added", d.added, (x) => `${x.path} (${x.type}, ${bytes(x.size)})`);
  fill("diff-removed", d.removed, (x) => `${x.path} (${x.type})`);
  fill("diff-changed", d.changed, (x) => `${x.path}: ${x.reasons.join(", ")} (${bytes(x.from.size)} → ${bytes(x.to.size)})`);
}

// ------------------------------------------------------------------ act

let pendingRestore = null;

function askRestore(version, path) {
  pendingRestore = { version, path: "/" + path.map((p) => p.name).join("/") };
  $("restore-path").textContent = pendingRestore.path;
  $("restore-snapshot").textContent = version;
  $("restore-beside").checked = true;
  $("restore-confirm").checked = false;
  $("restore-dialog").showModal();
}

async function doRestore() {
  const mode = $("restore-replace").checked ? "replace" : "beside";
  if (mode === "replace" && !$("restore-confirm").checked) {
    throw new Error("tick the confirmation to replace the live version");
  }
  const r = pendingRestore;
  $("restore-dialog").close();
  const out = await api("POST", `/datasets/${encodeURIComponent(state.dataset)}/restore`,
    { snapshot: r.version, path: r.path, mode, confirm: mode === "replace" });
  status(`restored ${r.path} from ${r.version} to ${out.restored} (${out.files} entries, ${bytes(out.bytes)})`);
}

let pendingDelete = null;

function askDelete(name) {
  pendingDelete = name;
  $("delete-name").textContent = name;
  $("delete-dialog").showModal();
}

async function doDelete() {
  const name = pendingDelete;
  $("delete-dialog").close();
  await api("DELETE", `/datasets/${encodeURIComponent(state.dataset)}/snapshots/${encodeURIComponent(name)}`);
  status(`deleted snapshot ${name}`);
  if (state.version === name) await browse(null, []);
  await loadSnapshots();
}

let pendingClone = null;

function askClone(name) {
  pendingClone = name;
  $("clone-snapshot").textContent = name;
  $("clone-name").value = "";
  $("clone-dialog").showModal();
}

async function doClone() {
  const snapshot = pendingClone, name = $("clone-name").value.trim();
  $("clone-dialog").close();
  const d = await api("POST", `/datasets/${encodeURIComponent(state.dataset)}/clone`, { snapshot, name });
  status(`cloned snapshot ${snapshot} into dataset ${d.name}`);
  location.hash = "#/datasets/" + encodeURIComponent(d.name);
}

async function setQuota() {
  const text = $("quota-value").value.trim();
  const quota = /^\d+$/.test(text) ? Number(text) : text;
  const d = await api("POST", `/datasets/${encodeURIComponent(state.dataset)}/quota`, { quota });
  status(d.quota_bytes === null ? `${d.name} has no quota now` : `quota of ${d.name} is now ${bytes(d.quota_bytes)}`);
  await openDataset(state.dataset);
}

// ------------------------------------------------------------------ policy

const KEEPS = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

function retentionText(r) {
  const parts = KEEPS.filter((k) => r["keep_" + k] > 0).map((k) => `${r["keep_" + k]} ${k}`);
  if (r.max_age_seconds > 0) parts.push(`none older than ${r.max_age_seconds} s`);
  return parts.join(", ");
}

async function loadPolicy() {
  const { policy: p } = await api("GET", `/datasets/${encodeURIComponent(state.dataset)}/policy`);
  state.policy = p;
  const summary = $("policy-summary");
  if (!p) {
    summary.textContent = "No snapshot policy: snapshots are taken by hand (or by Kubernetes).";
  } else {
    const next = p.next_run_unix_ms ? when(p.next_run_unix_ms) : "-";
    summary.textContent = `${p.schedule}, keeping ${retentionText(p.retention)}; ${p.paused ? "paused" : "active"}` +
      `; names ${p.prefix}-YYYYMMDD-HHMMSSz; last run ${p.last_run_unix_ms ? when(p.last_run_unix_ms) : "-"}, next ${next}` +
      `; ${p.snapshots.length} ${p.snapshots.length === 1 ? "snapshot" : "snapshots"} kept` + (p.last_error ? `; last error: ${p.last_error}` : "");
  }
  $("policy-pause").hidden = !p || p.paused;
  $("policy-resume").hidden = !p || !p.paused;
  $("policy-clear").hidden = !p;
  $("policy-edit-title").textContent = p ? "Change the policy" : "Set a policy";
  // The form starts from what the server has (or is empty).
  $("policy-kind-cron").checked = !!(p && p.cron);
  $("policy-kind-every").checked = !(p && p.cron);
  $("policy-every").value = p && p.every_seconds ? `${p.every_seconds}s` : "";
  $("policy-cron").value = (p && p.cron) || "";
  $("policy-tz").value = (p && p.time_zone) || "";
  for (const k of KEEPS) $("policy-keep-" + k).value = p && p.retention["keep_" + k] ? p.retention["keep_" + k] : "";
  $("policy-max-age").value = p && p.retention.max_age_seconds ? `${p.retention.max_age_seconds}s` : "";
  $("policy-prefix").value = p ? p.prefix : "";
  $("policy-skip-unchanged").checked = !!(p && p.skip_unchanged);
  $("policy-paused").checked = !!(p && p.paused);
}

async function savePolicy() {
  const body = {};
  const text = (id) => $(id).value.trim();
  if ($("policy-kind-cron").checked) {
    body.cron = text("policy-cron");
    if (text("policy-tz")) body.time_zone = text("policy-tz");
  } else {
    body.every = text("policy-every");
  }
  for (const k of KEEPS) {
    const v = text("policy-keep-" + k);
    if (v) body["keep_" + k] = Number(v);
  }
  if (text("policy-max-age")) body.max_age = text("policy-max-age");
  if (text("policy-prefix")) body.prefix = text("policy-prefix");
  body.skip_unchanged = $("policy-skip-unchanged").checked;
  body.paused = $("policy-paused").checked;
  const { policy: p } = await api("PUT", `/datasets/${encodeURIComponent(state.dataset)}/policy`, body);
  status(`policy of ${p.dataset}: ${p.schedule}, keeping ${retentionText(p.retention)}`);
  $("policy-editor").open = false;
  await loadPolicy();
}

async function pausePolicy(paused) {
  await api("POST", `/datasets/${encodeURIComponent(state.dataset)}/policy/pause`, { paused });
  status(`policy of ${state.dataset} ${paused ? "paused" : "resumed"}`);
  await loadPolicy();
}

async function clearPolicy() {
  const { removed } = await api("DELETE", `/datasets/${encodeURIComponent(state.dataset)}/policy`);
  status(`policy of ${removed.dataset} removed; its ${removed.snapshots.length} snapshots stay`);
  await loadPolicy();
  await loadSnapshots();
}

async function takeSnapshot() {
  const name = $("snapshot-name").value.trim();
  const out = await api("POST", `/datasets/${encodeURIComponent(state.dataset)}/snapshots`, { name });
  $("snapshot-name").value = "";
  status(`took snapshot ${out.snapshot.name}`);
  await loadSnapshots();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run(async () => {
      const s = await api("POST", "/login", { token: $("login-token").value });
      $("login-token").value = "";
      loggedIn(s);
    });
  });
  $("logout").addEventListener("click", () => run(async () => { await api("POST", "/logout"); showLogin(); }));
  $("home").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; listDatasets(); });
  window.addEventListener("hashchange", route);
  $("snapshot-form").addEventListener("submit", (e) => { e.preventDefault(); run(takeSnapshot); });
  $("compare-form").addEventListener("submit", (e) => { e.preventDefault(); run(compare); });
  $("viewer-close").addEventListener("click", () => { $("viewer").hidden = true; });
  $("restore-go").addEventListener("click", () => run(doRestore));
  $("restore-cancel").addEventListener("click", () => $("restore-dialog").close());
  $("delete-go").addEventListener("click", () => run(doDelete));
  $("clone-go").addEventListener("click", () => run(doClone));
  $("clone-cancel").addEventListener("click", () => $("clone-dialog").close());
  $("quota-form").addEventListener("submit", (e) => { e.preventDefault(); run(setQuota); });
  $("policy-form").addEventListener("submit", (e) => { e.preventDefault(); run(savePolicy); });
  $("policy-pause").addEventListener("click", () => run(() => pausePolicy(true)));
  $("policy-resume").addEventListener("click", () => run(() => pausePolicy(false)));
  $("policy-clear").addEventListener("click", () => run(clearPolicy));
  $("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
  start();
});
