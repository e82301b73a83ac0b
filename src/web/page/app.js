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
      el("td", {}, d.name + (d.is_default ? " (default)" : "")), usedCell,
      el("td", {}, d.used_inodes ?? "-"), el("td", {}, d.snapshot_count), el("td", {}, origin), healthCell(d));
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
    await loadSnapshots();
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
    const dot = el("div", { class: "dot", title: `${s.name}, ${when(s.created_unix_ms)}` }, el("span", {}, s.name));
    dot.style.left = pos + "%";
    tl.append(dot);
    const item = el("li", { "data-snapshot": s.name },
      el("b", {}, s.name), ` ${when(s.created_unix_ms)}, ${bytes(s.size_bytes)}, ${s.inodes} inodes`,
      el("button", { class: "browse-snapshot", type: "button", onclick: () => run(() => browse(s.name, [])) }, "Browse"));
    if (state.access === "admin") {
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
  $("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
  start();
});
