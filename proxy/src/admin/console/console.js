// The egress console: plain JavaScript over the admin API, no build step, no third-party code.
// Every change goes through the same API endpoints scripts use; the page holds no secret (the
// session cookie is HttpOnly; the CSRF value is not a credential on its own).
"use strict";

const MAX_ROWS = 500;
const FIX_REASONS = ["not-allowlisted", "port-not-allowed", "approval-timeout", "approval-denied", "approval-unattended"];
const app = { session: null, source: null, paused: false, held: [], queue: [], policyEtag: null,
  policyLoaded: "", approvals: [], tick: null, filterKey: "", received: 0 };
// Read by the browser tests (events received, for the stream's rate); holds nothing secret.
window.egressConsole = app;

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
const canAnswer = () => app.session && (app.session.role === "approver" || app.session.role === "admin");
const isAdmin = () => app.session && app.session.role === "admin";

async function api(method, path, body, extra) {
  const headers = Object.assign({}, extra || {});
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && app.session && app.session.csrf) headers["X-Egress-CSRF"] = app.session.csrf;
  const r = await fetch(path, init);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json().catch(() => null) : await r.text();
  return { status: r.status, ok: r.ok, data, headers: r.headers };
}
const problem = (r) => (r.data && r.data.message) ? `${r.data.error}: ${r.data.message}` : `HTTP ${r.status}`;

// ---- pages and routing: #/page?filters ----
function route() {
  const [page, query] = (location.hash.replace(/^#\/?/, "") || "live").split("?");
  return { page: page || "live", params: new URLSearchParams(query || "") };
}
function show(page) {
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== `page-${page}`;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}
async function render() {
  if (!app.session) { show("login"); return; }
  const { page, params } = route();
  show(page);
  if (page === "live") liveFromUrl(params);
  else if (page === "top") await loadTop();
  else if (page === "policy") await loadPolicy(false);
  else if (page === "approvals") await loadApprovals();
  else if (page === "status") await loadStatus();
}

// ---- login ----
async function start() {
  const r = await api("GET", "/api/v1/session");
  if (r.status !== 200) { show("login"); $("login-token").focus(); return; }
  app.session = r.data;
  document.body.classList.add(app.session.role);
  if (!isAdmin()) for (const e of document.querySelectorAll(".admin-only")) e.remove();
  $("nav").hidden = false;
  $("who").textContent = `${app.session.name} (${app.session.role})`;
  connect();
  render();
  setInterval(refreshCountdowns, 1000);
}
$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/login", { token: $("login-token").value });
  $("login-token").value = "";
  if (r.ok) location.reload(); else $("login-error").textContent = problem(r);
});
$("logout").addEventListener("click", async () => { await api("POST", "/api/v1/logout", {}); location.reload(); });

// ---- the event stream: one per page load; it also tells the proxy someone can answer ----
function liveFilter() {
  const { page, params } = route();
  const q = new URLSearchParams();
  if (page === "live") for (const k of ["decision", "host", "client", "protocol"]) if (params.get(k)) q.set(k, params.get(k));
  return q.toString();
}
function connect() {
  if (app.source) app.source.close();
  app.filterKey = liveFilter();
  const q = new URLSearchParams(app.filterKey);
  q.set("recent", "200");
  app.source = new EventSource(`/api/v1/events?${q}`);
  app.source.addEventListener("outcome", (e) => { app.received++; enqueue(JSON.parse(e.data)); });
  app.source.addEventListener("approval", () => loadApprovals());
  app.source.addEventListener("policy", () => { if (route().page === "policy") loadHistory(); });
  app.source.addEventListener("missed", (e) => setLiveState(`missed ${JSON.parse(e.data).missed} events (too many to show)`));
  app.source.addEventListener("open", () => setLiveState("connected"));
  app.source.addEventListener("error", () => setLiveState("reconnecting…"));
}
function setLiveState(text) { $("live-state").textContent = text; }

// ---- live view ----
function liveFromUrl(params) {
  for (const k of ["decision", "host", "client", "protocol"]) $(`f-${k}`).value = params.get(k) || "";
  if (liveFilter() !== app.filterKey) { $("live-rows").textContent = ""; connect(); }
}
$("live-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  for (const k of ["decision", "host", "client", "protocol"]) { const v = $(`f-${k}`).value.trim(); if (v) q.set(k, v); }
  location.hash = `#/live${q.toString() ? "?" + q : ""}`;
});
$("live-pause").addEventListener("click", () => {
  app.paused = !app.paused;
  $("live-pause").setAttribute("aria-pressed", String(app.paused));
  $("live-pause").textContent = app.paused ? `Resume` : "Pause";
  if (!app.paused) { for (const o of app.held) app.queue.push(o); app.held = []; schedule(); }
  setLiveState(app.paused ? "paused: new events are kept until you resume" : "connected");
});
function enqueue(outcome) {
  if (app.paused) { app.held.push(outcome); if (app.held.length > MAX_ROWS) app.held.shift(); return; }
  app.queue.push(outcome);
  schedule();
}
let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  // Rows are added once per frame, however many events arrived: the page stays responsive.
  requestAnimationFrame(() => {
    scheduled = false;
    const rows = $("live-rows");
    const batch = app.queue.splice(0, app.queue.length).slice(-MAX_ROWS);
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.append(row(batch[i]));
    rows.prepend(fragment);
    while (rows.childElementCount > MAX_ROWS) rows.lastElementChild.remove();
  });
}
function row(o) {
  const decision = o.decision || "cut";
  const target = o.host ? `${o.host}:${o.port}` : "—";
  const why = el("td", {},
    o.reason ? el("span", { class: "reason", text: o.reason }) : null,
    o.rule ? el("span", { class: "rule", text: ` rule ${o.rule}` }) : null);
  const actions = el("td", { class: "actions" });
  if (isAdmin() && o.host && FIX_REASONS.includes(o.reason)) {
    actions.append(
      el("button", { type: "button", class: "allow-host", onclick: () => allowFromRow(o, "host") , "aria-label": `Allow host ${o.host}` }, "Allow this host"), " ",
      el("button", { type: "button", class: "allow-domain", onclick: () => allowFromRow(o, "domain"), "aria-label": `Allow domain of ${o.host}` }, "Allow this domain"));
  }
  return el("tr", { "data-decision": decision, "data-host": o.host || "" },
    el("td", { text: (o.time || "").replace("T", " ").replace(/\.\d+Z$/, "Z") }),
    el("td", { class: `d-${decision}`, text: decision }),
    el("td", { text: target }),
    el("td", { text: o.client || "" }),
    el("td", { text: o.protocol || "" }),
    why, actions);
}
async function allowFromRow(o, scope) {
  const request = { host: o.host, port: o.port, protocol: o.protocol, scope };
  const preview = await api("POST", "/api/v1/policy/entries", Object.assign({ dry_run: true }, request));
  if (!preview.ok) { alertText(problem(preview)); return; }
  const ok = await confirmEntry(`Add "${preview.data.entry}" to the allow list?`, preview.data.diff);
  if (!ok) return;
  const r = await api("POST", "/api/v1/policy/entries", Object.assign({ note: `allowed from the live view: ${preview.data.entry}` }, request));
  alertText(r.ok ? `Added ${r.data.entry} (version ${r.data.version})` : problem(r));
}
function alertText(text) { setLiveState(text); }
function confirmEntry(text, diff) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-diff").textContent = diff || "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
    $("confirm-ok").focus();
  });
}

// ---- top ----
$("top-window").addEventListener("change", () => loadTop());
$("top-refresh").addEventListener("click", () => loadTop());
async function loadTop() {
  const r = await api("GET", "/api/v1/stats");
  if (!r.ok) return;
  const w = r.data[$("top-window").value];
  const totals = $("top-totals");
  totals.textContent = "";
  for (const k of ["all", "allow", "deny", "fail", "report"]) totals.append(el("div", {}, el("strong", { text: String(w.totals[k]) }), ` ${k}`));
  const fill = (id, items, key) => {
    const body = $(id);
    body.textContent = "";
    if (!items.length) body.append(el("tr", {}, el("td", { colspan: "2", class: "muted", text: "nothing yet" })));
    for (const item of items) body.append(el("tr", {}, el("td", { text: item[key] }), el("td", { text: String(item.count) })));
  };
  fill("top-blocked", w.top_blocked, "domain");
  fill("top-clients", w.top_clients, "client");
  spark(r.data.series);
}
function spark(series) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 600 60");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const total = series.reduce((s, p) => s + p.allow + p.deny + p.fail, 0);
  svg.setAttribute("aria-label", `${total} requests in the last hour`);
  const max = Math.max(1, ...series.map((p) => p.allow + p.deny + p.fail));
  series.forEach((p, i) => {
    const denied = p.deny + p.fail;
    const hA = (p.allow / max) * 58, hD = (denied / max) * 58;
    for (const [h, y, c] of [[hA, 60 - hA - hD, "a"], [hD, 60 - hD, "d"]]) {
      if (h <= 0) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * 10)); r.setAttribute("width", "9");
      r.setAttribute("y", String(y)); r.setAttribute("height", String(h)); r.setAttribute("class", c);
      svg.append(r);
    }
  });
  $("top-spark").replaceChildren(svg);
}

// ---- policy ----
async function loadPolicy(force) {
  if (!force && app.policyEtag && $("policy-text").value !== app.policyLoaded) { loadHistory(); return; }
  const r = await api("GET", "/api/v1/policy");
  if (r.status !== 200) { $("policy-message").textContent = problem(r); return; }
  app.policyEtag = r.headers.get("etag");
  app.policyLoaded = r.data;
  $("policy-text").value = r.data;
  $("policy-diff").hidden = true;
  if ($("policy-apply")) $("policy-apply").disabled = true;
  if (!$("policy-form").hidden) loadForm();
  loadHistory();
}
function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  if (n * m > 4e6) return `- (${n} lines)\n+ (${m} lines)\n`;
  const t = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    t[i][j] = x[i] === y[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { i++; j++; }
    else if (i < n && (j === m || t[i + 1][j] >= t[i][j + 1])) out.push(`-${x[i++]}`);
    else out.push(`+${y[j++]}`);
  }
  return out.join("\n");
}
const preview = $("policy-preview");
if (preview) preview.addEventListener("click", showDiff);
function showDiff() {
  const diff = lineDiff(app.policyLoaded, $("policy-text").value);
  $("policy-diff").hidden = false;
  $("policy-diff").textContent = diff || "(no change)";
  $("policy-apply").disabled = !diff;
  $("policy-message").textContent = diff ? "Review the change, then apply it." : "Nothing changed.";
}
const applyButton = $("policy-apply");
if (applyButton) applyButton.addEventListener("click", async () => {
  const body = { text: $("policy-text").value, note: $("policy-note").value || "edited in the console" };
  const r = await api("PUT", "/api/v1/policy", body, { "If-Match": app.policyEtag || "" });
  const message = $("policy-message");
  if (r.ok) {
    message.textContent = `Applied as version ${r.data.version}.`;
    $("policy-note").value = "";
    app.policyEtag = r.data.etag;
    app.policyLoaded = body.text;
    $("policy-diff").hidden = true;
    applyButton.disabled = true;
    loadHistory();
  } else if (r.status === 422 && r.data && r.data.line) {
    message.textContent = `Not applied: line ${r.data.line}:${r.data.column}: ${r.data.message}`;
    message.className = "error";
  } else if (r.status === 409) {
    message.textContent = "Not applied: the policy changed since you loaded it. Your text is kept here; reload from the server to see the new version, and redo your change on it.";
    message.className = "error";
  } else {
    message.textContent = `Not applied: ${problem(r)}`;
    message.className = "error";
  }
  if (r.ok) message.className = "";
});
const reloadButton = $("policy-reload");
if (reloadButton) reloadButton.addEventListener("click", () => loadPolicy(true));

// ---- policy: the form view ----
// The form shows the allow and deny entries of the editor's text and changes that text through
// the server (which keeps comments and other keys); preview and apply are then the editor's.
const ENTRY_SHAPE = /^(\[[0-9A-Fa-f:.]+\](\/\d+)?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(\/\d+)?|(\*\.|\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?(\/\d+)?)(:(\*|\d+(-\d+)?(,\d+(-\d+)?)*))?$/;
function showTab(name, focus) {
  for (const tab of ["form", "yaml"]) {
    const on = tab === name;
    const button = $(`policy-tab-${tab}`);
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
    $(`policy-${tab}`).hidden = !on;
    if (on && focus) button.focus();
  }
  if (name === "form") loadForm();
}
for (const tab of ["form", "yaml"]) {
  $(`policy-tab-${tab}`).addEventListener("click", () => showTab(tab, false));
  $(`policy-tab-${tab}`).addEventListener("keydown", (e) => {
    if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) {
      e.preventDefault();
      showTab(tab === "form" ? "yaml" : "form", true);
    }
  });
}
async function loadForm() {
  // An admin sees the lists of the editor's text (it may hold changes not applied yet); a
  // viewer, who cannot change it, those of the file.
  const r = isAdmin()
    ? await api("POST", "/api/v1/policy/edit-preview", { text: $("policy-text").value, list: "allow" })
    : await api("GET", "/api/v1/policy/entries");
  if (!r.ok) {
    $("policy-message").textContent = `The form cannot show this text: ${problem(r)}`;
    $("policy-message").className = "error";
    return;
  }
  renderLists(r.data);
}
function renderLists(lists) {
  for (const key of ["allow", "deny"]) {
    const items = (lists[key] || []).map((entry) => el("li", {},
      el("code", { text: entry }),
      isAdmin() ? el("button", { type: "button", class: "remove danger", "data-entry": entry,
        "aria-label": `Remove ${entry} from ${key}`, onclick: () => changeList(key, { remove: entry }) }, "Remove") : null));
    if (!items.length) items.push(el("li", { class: "muted", text: `No ${key} entries.` }));
    $(`form-${key}`).replaceChildren(...items);
  }
}
async function changeList(key, change) {
  const r = await api("POST", "/api/v1/policy/edit-preview", Object.assign({ text: $("policy-text").value, list: key }, change));
  const message = $("policy-message");
  if (!r.ok) {
    message.textContent = `Not changed: ${problem(r)}`;
    message.className = "error";
    return false;
  }
  message.className = "";
  $("policy-text").value = r.data.text;
  renderLists(r.data);
  showDiff();
  return true;
}
for (const key of ["allow", "deny"]) {
  const form = $(`form-${key}-add`);
  if (!form) continue;
  const input = $(`form-${key}-entry`);
  const hint = $(`form-${key}-hint`);
  const usual = hint.textContent;
  input.addEventListener("input", () => {
    const value = input.value.trim();
    const odd = value !== "" && !ENTRY_SHAPE.test(value);
    input.setAttribute("aria-invalid", String(odd));
    hint.textContent = odd ? `"${value}" does not look like an entry. ${usual}` : usual;
    hint.className = odd ? "error admin-only" : "muted admin-only";
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) { input.setAttribute("aria-invalid", "true"); input.focus(); return; }
    if (await changeList(key, { add: value })) {
      input.value = "";
      input.setAttribute("aria-invalid", "false");
      hint.textContent = usual;
      hint.className = "muted admin-only";
    }
  });
}
$("test-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { host: $("test-host").value.trim(), protocol: $("test-protocol").value };
  if ($("test-port").value) body.port = Number($("test-port").value);
  const r = await api("POST", "/api/v1/policy/test", body);
  $("test-result").textContent = r.ok
    ? `${r.data.decision}${r.data.reason ? " (" + r.data.reason + ")" : ""}${r.data.rule ? ", rule " + r.data.rule : ", no rule matches"} — ${r.data.host}:${r.data.port} over ${r.data.protocol}, mode ${r.data.mode}`
    : problem(r);
});
async function loadHistory() {
  const r = await api("GET", "/api/v1/policy/history");
  if (!r.ok) return;
  const body = $("history-rows");
  body.textContent = "";
  r.data.forEach((v, index) => {
    const cells = [el("td", { text: String(v.version) }), el("td", { text: v.time }), el("td", { text: v.who }), el("td", { text: v.note })];
    if (isAdmin()) cells.push(el("td", {}, index === 0 ? el("span", { class: "muted", text: "in force" }) :
      el("button", { type: "button", class: "revert", onclick: () => revert(v) }, `Revert to ${v.version}`)));
    body.append(el("tr", {}, ...cells));
  });
}
async function revert(v) {
  if (!(await confirmEntry(`Revert the policy to version ${v.version} (${v.note})?`, lineDiff(app.policyLoaded, v.text)))) return;
  const r = await api("POST", "/api/v1/policy/revert", { version: v.version });
  $("policy-message").textContent = r.ok ? `Reverted: version ${r.data.version}.` : problem(r);
  if (r.ok) loadPolicy(true);
}

// ---- approvals ----
async function loadApprovals() {
  const r = await api("GET", "/api/v1/approvals");
  if (!r.ok) return;
  app.approvals = r.data;
  const badge = $("approvals-count");
  badge.hidden = !r.data.length;
  badge.textContent = String(r.data.length);
  $("approvals-empty").hidden = r.data.length > 0;
  const cards = $("approval-cards");
  cards.replaceChildren(...r.data.map(card));
  refreshCountdowns();
}
function card(a) {
  const answer = (body) => async () => {
    const r = await api("POST", `/api/v1/approvals/${encodeURIComponent(a.id)}`, body);
    if (!r.ok) $("approvals-empty").textContent = problem(r);
    loadApprovals();
  };
  const node = el("article", { class: "card", "data-id": a.id, "aria-label": `Approval for ${a.host}:${a.port}` },
    el("h2", { text: `${a.host}:${a.port}` }),
    el("p", {}, `${a.protocol} from ${a.client} (${a.identity}), `, el("strong", { class: "waiting", text: String(a.waiting) }), ` waiting`),
    el("p", {}, "Refused in ", el("span", { class: "countdown", "data-expires": a.expires_at, role: "timer" }, "")));
  if (canAnswer()) {
    const minutes = el("input", { type: "number", min: "1", max: "1440", value: "15", size: "4", "aria-label": "Minutes" });
    node.append(el("div", { class: "row" },
      el("button", { type: "button", class: "primary allow-once", onclick: answer({ action: "allow-once" }) }, "Allow once"),
      el("button", { type: "button", class: "allow-for", onclick: () => answer({ action: "allow-for", minutes: Number(minutes.value) })() }, "Allow for"), minutes, "min",
      el("button", { type: "button", class: "danger deny-once", onclick: answer({ action: "deny-once" }) }, "Deny once")));
    if (isAdmin()) {
      const withPort = el("input", { type: "checkbox", id: `port-${a.id}` });
      const always = (action, scope) => () => answer({ action, scope, with_port: withPort.checked })();
      node.append(el("div", { class: "row" },
        el("button", { type: "button", class: "allow-always-host", onclick: always("allow-always", "host") }, "Always allow host"),
        el("button", { type: "button", class: "allow-always-domain", onclick: always("allow-always", "domain") }, "Always allow domain"),
        el("button", { type: "button", class: "danger deny-always", onclick: always("deny-always", "host") }, "Always deny"),
        withPort, el("label", { for: `port-${a.id}` }, "with port")));
    }
  }
  return node;
}
function refreshCountdowns() {
  for (const span of document.querySelectorAll(".countdown")) {
    const left = Math.max(0, Math.round((Date.parse(span.dataset.expires) - Date.now()) / 1000));
    span.textContent = `${left} s`;
  }
}

// ---- status ----
async function loadStatus() {
  const r = await api("GET", "/api/v1/status");
  if (!r.ok) return;
  const s = r.data;
  const list = $("status-list");
  list.textContent = "";
  for (const [k, v] of [["Version", s.version], ["Mode", s.mode], ["Policy", s.source], ["Allow entries", s.allow], ["Deny entries", s.deny],
    ["Ask timeout", `${s.ask_timeout_s} s`], ["Pending approvals", s.pending_approvals], ["Someone can answer", s.attended ? "yes" : "no"],
    ["Policy versions", s.versions], ["Last change", s.last_change], ["Admin listener", s.admin]]) {
    list.append(el("dt", { text: k }), el("dd", { text: String(v) }));
  }
  const parents = $("status-parents");
  parents.textContent = "";
  if (!s.parents.length) parents.append(el("tr", {}, el("td", { colspan: "2", class: "muted", text: "none: direct connections" })));
  for (const p of s.parents) parents.append(el("tr", {}, el("td", { text: p.name }), el("td", { class: p.up ? "d-allow" : "d-deny", text: p.up ? "up" : "down" })));
}

window.addEventListener("hashchange", render);
start();
