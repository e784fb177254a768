// celeriac dashboard: fills the server-rendered pages from the JSON API and keeps them live.
//
// One module for every page: the <body> names the page (data-page) and the URL prefix
// (data-root); `PAGES[page]` starts that page's pollers. A poller asks the API every few
// seconds while the tab is visible and stops while it is hidden. Everything shown is built
// with DOM calls and textContent (never innerHTML), so data cannot inject markup, and the
// page needs no inline script or style (the Content-Security-Policy forbids both).
// Every POST carries the X-CSRF-Token header given by /api/dash/me.

import {
  barChart, clock, shortNumber, timeChart, workflowGraph,
} from "./charts.js";

const ROOT = document.body.dataset.root || "";
const PAGE = document.body.dataset.page || "";
const SEVERITY = { critical: "FAILURE", warning: "RETRY", info: "PENDING" };
const FINAL_STATES = new Set(["SUCCESS", "FAILURE", "REVOKED", "REJECTED"]);
let ME = { user: null, read_only: false, csrf_token: "" };

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return `${ROOT}${path}${text ? `?${text}` : ""}`;
}

async function answer(response) {
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = (data && data.error) || (typeof data === "string" && data) || response.statusText;
    throw new ApiError(response.status, `${response.status}: ${message}`);
  }
  return data;
}

/** GET a JSON document of the API. */
async function get(path, params) {
  const response = await fetch(url(path, params), {
    credentials: "same-origin", headers: { Accept: "application/json" },
  });
  return answer(response);
}

/** POST a JSON body (the dashboard's own API). */
async function post(path, body, params) {
  const response = await fetch(url(path, params), {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": ME.csrf_token || "",
    },
    body: JSON.stringify(body || {}),
  });
  return answer(response);
}

/** POST form fields (Flower's API takes its arguments so). */
async function postForm(path, fields) {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(fields || {})) {
    if (value !== undefined && value !== null && value !== "") form.set(key, String(value));
  }
  const response = await fetch(url(path), {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRF-Token": ME.csrf_token || "" },
    body: form,
  });
  return answer(response);
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// DOM and formatting

/** An element: h("a", {href, class: "x", onclick: fn}, "text", child). */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "checked" || key === "disabled" || key === "selected") {
      node[key] = Boolean(value);
    } else if (key === "value") {
      node.value = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (selector, scope) => (scope || document).querySelector(selector);
const $$ = (selector, scope) => [...(scope || document).querySelectorAll(selector)];

function fill(target, rows, columns, emptyText) {
  const tbody = typeof target === "string" ? $(target) : target;
  if (!tbody) return;
  if (!rows.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { class: "empty-row", colspan: columns }, emptyText)));
  } else {
    tbody.replaceChildren(...rows);
  }
}

function text(selector, value) {
  const node = $(selector);
  if (node) node.textContent = value;
}

function badge(state, label) {
  const known = [
    "SUCCESS", "FAILURE", "STARTED", "RECEIVED", "PENDING", "RETRY", "REVOKED", "REJECTED",
    "online", "offline", "firing", "resolved", "silenced", "acknowledged", "yes", "no", "LOST",
  ];
  const kind = known.includes(state) ? state : state ? "custom" : "unknown";
  return h("span", { class: `badge ${kind}` }, label || state || "unknown");
}

function toEpoch(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return value;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed / 1000;
}

const two = (n) => String(n).padStart(2, "0");

function dateTime(t) {
  const d = new Date(t * 1000);
  const now = new Date();
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
}

/** How long, shortly: 12.3s, 4m, 2h, 3d (as `celeriac queues` writes ages). */
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** A time element: the local time, with how long ago in its title. */
function when(value) {
  const t = toEpoch(value);
  if (t === null) return "–";
  const delta = Date.now() / 1000 - t;
  const relative = delta >= 0 ? `${age(delta)} ago` : `in ${age(-delta)}`;
  return h("time", { datetime: new Date(t * 1000).toISOString(), title: relative }, dateTime(t));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.001) return `${(seconds * 1000).toFixed(2)} ms`;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n === "string") {
    // memsample's text ("worker 4242 48.3MB; pool ..."): the worker's own figure
    const found = n.match(/([\d.]+)\s*([KMGT]?B)/);
    return found ? `${found[1]} ${found[2]}` : n;
  }
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function count(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

function shortId(id) {
  return id ? `${String(id).slice(0, 8)}…` : "–";
}

function taskLink(id, label) {
  if (!id) return "–";
  return h("a", { href: `${ROOT}/task/${enc(id)}`, class: "mono", title: id }, label || shortId(id));
}

function workerLink(hostname) {
  if (!hostname) return "–";
  return h("a", { href: `${ROOT}/worker/${enc(hostname)}` }, hostname);
}

function pretty(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

/** A value on one line: JSON without indentation, a string as it is. */
function inline(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function plural(n, word) {
  return `${count(n)} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------
// Live updates, messages and confirmations

const live = {
  node: $("#live"),
  set(kind, message) {
    if (!this.node) return;
    this.node.className = `live ${kind}`;
    text("#live-text", message);
  },
};

function banner(message) {
  const node = $("#banner");
  if (!node) return;
  node.textContent = message || "";
  node.classList.toggle("hidden", !message);
}

/**
 * Run `fn` now and every `ms` while the tab is visible; `now()` runs it again at once
 * (after an action), `stop()` ends it.
 */
function poll(fn, ms, quiet) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  const schedule = () => {
    clearTimeout(timer);
    timer = !stopped && !document.hidden ? setTimeout(tick, ms) : null;
  };
  async function tick() {
    timer = null;
    if (stopped || document.hidden) return;
    running = true;
    try {
      await fn();
      if (!quiet) {
        live.set("ok", `live · ${dateTime(Date.now() / 1000)}`);
        banner("");
      }
    } catch (error) {
      if (!quiet) {
        live.set("error", "not updating");
        banner(error instanceof ApiError ? error.message : `The dashboard cannot be reached: ${error}`);
      }
    }
    running = false;
    if (again) {
      again = false;
      tick();
    } else {
      schedule();
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
      if (!quiet) live.set("paused", "paused while hidden");
    } else if (!running) {
      tick();
    }
  });
  tick();
  return {
    now() {
      if (running) again = true;
      else tick();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function toast(message, kind) {
  const box = $("#toasts");
  if (!box) return;
  const node = h("div", { class: `toast ${kind || ""}`, role: "status" }, message);
  box.append(node);
  setTimeout(() => node.remove(), kind === "error" ? 9000 : 5000);
}

/**
 * Ask before an action. fields: [{name, label, type, value, options, placeholder}];
 * `expect: {name, value}` requires a field to equal a value (type the queue's name).
 * Resolves with the fields' values, or null when cancelled.
 */
function ask({ title, message, fields, ok, danger, expect }) {
  const dialog = $("#dialog");
  const form = $("#dialog-form");
  const okButton = $("#dialog-ok");
  text("#dialog-title", title);
  const inputs = {};
  const parts = [];
  for (const line of [].concat(message || [])) parts.push(h("p", {}, line));
  for (const field of fields || []) {
    let input;
    if (field.options) {
      input = h("select", { name: field.name },
        field.options.map(([value, label]) => h("option", { value, selected: value === field.value }, label)));
    } else if (field.type === "textarea") {
      input = h("textarea", { name: field.name, rows: 3 });
      input.value = field.value ?? "";
    } else {
      input = h("input", {
        name: field.name, type: field.type || "text", placeholder: field.placeholder || "",
        value: field.value ?? "", autocomplete: "off",
      });
    }
    inputs[field.name] = input;
    parts.push(h("label", {}, field.label, input));
  }
  $("#dialog-body").replaceChildren(...parts);
  okButton.textContent = ok || "OK";
  okButton.className = `button ${danger ? "danger" : "primary"}`;
  const check = () => {
    okButton.disabled = Boolean(expect) && inputs[expect.name].value !== expect.value;
  };
  for (const input of Object.values(inputs)) input.addEventListener("input", check);
  check();
  return new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener("submit", onSubmit);
      $("#dialog-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      if (okButton.disabled) return;
      const values = {};
      for (const [name, input] of Object.entries(inputs)) values[name] = input.value;
      done(values);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(null);
    };
    form.addEventListener("submit", onSubmit);
    $("#dialog-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    const first = Object.values(inputs)[0];
    (first || okButton).focus();
  });
}

/** Run an action: say what it did (or why it failed), then refresh the page's data. */
async function act(fn, refresh) {
  if (ME.read_only) {
    toast("This dashboard is read-only.", "error");
    return null;
  }
  try {
    const result = await fn();
    if (result) toast(result);
    return result;
  } catch (error) {
    toast(error.message || String(error), "error");
    return null;
  } finally {
    if (refresh) refresh.now();
  }
}

/** Flower's control replies: {"message": ...} or an error. */
function said(reply, fallback) {
  if (reply && typeof reply === "object" && reply.message) return reply.message;
  if (typeof reply === "string" && reply) return reply;
  return fallback;
}

async function loadMe() {
  try {
    ME = await get("/api/dash/me");
  } catch (error) {
    banner(error.message);
  }
  document.body.classList.toggle("read-only", Boolean(ME.read_only));
  $("#read-only")?.classList.toggle("hidden", !ME.read_only);
  text("#user", ME.user ? `signed in as ${ME.user}` : "");
}

function alertsInNav() {
  const node = $("#nav-alerts");
  poll(async () => {
    const data = await get("/api/dash/alerts");
    const firing = (data.alerts || []).filter((a) => a.state === "firing").length;
    node.textContent = String(firing);
    node.classList.toggle("hidden", !firing);
  }, 15000, true);
}

// ---------------------------------------------------------------------------------------
// Series helpers

function throughputSeries(rows) {
  return [
    { name: "succeeded", colour: "#3d9a5d", points: rows.map((r) => [r.t, r.succeeded || 0]) },
    { name: "failed", colour: "#c4473d", points: rows.map((r) => [r.t, r.failed || 0]) },
  ];
}

function perKey(data, field) {
  return Object.entries(data || {}).sort(([a], [b]) => a.localeCompare(b)).map(([name, points]) => ({
    name, points: points.map((p) => [p.t, p[field] ?? null]),
  }));
}

function windowOf(minutes) {
  const end = Date.now() / 1000;
  return { start: end - minutes * 60, end };
}

// ---------------------------------------------------------------------------------------
// Overview

function overviewPage() {
  poll(async () => {
    const [overview, failures, throughput] = await Promise.all([
      get("/api/dash/overview"),
      get("/api/dash/tasks", { state: "FAILURE", limit: 6 }),
      get("/api/dash/series/throughput", { minutes: 60 }),
    ]);
    const states = overview.states || {};
    const total = Object.values(states).reduce((a, b) => a + b, 0);
    const queues = overview.queues || [];
    const sum = (field) => queues.reduce((a, q) => a + (q[field] || 0), 0);
    text("#card-workers", count(overview.workers?.alive ?? 0));
    text("#card-workers-note", `${count(overview.workers?.offline ?? 0)} offline`);
    text("#card-waiting", count(sum("waiting")));
    text("#card-waiting-note", `${count(sum("in_flight"))} in flight · ${count(sum("delayed"))} delayed`);
    text("#card-failed", count(states.FAILURE || 0));
    $("#card-failed").classList.toggle("bad", (states.FAILURE || 0) > 0);
    text("#card-failed-note", `of ${plural(total, "task")} kept`);
    text("#card-dead", count(sum("dead_lettered")));
    $("#card-dead").classList.toggle("bad", sum("dead_lettered") > 0);
    const firing = overview.alerts?.firing ?? 0;
    text("#card-alerts", count(firing));
    $("#card-alerts").classList.toggle("bad", firing > 0);
    text("#card-alerts-note", firing ? "see Alerts" : "all quiet");

    const order = ["RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "REJECTED", "PENDING"];
    const names = Object.keys(states).sort((a, b) => {
      const ia = order.indexOf(a) < 0 ? 99 : order.indexOf(a);
      const ib = order.indexOf(b) < 0 ? 99 : order.indexOf(b);
      return ia - ib || a.localeCompare(b);
    });
    $("#state-counts").replaceChildren(...(names.length ? names.map((state) => h("a", {
      class: "state-count", href: `${ROOT}/tasks?state=${enc(state)}`, "data-state": state,
    }, badge(state), h("b", {}, count(states[state])))) : [h("span", { class: "muted" }, "No tasks yet.")]));

    fill("#overview-queues", queues.map((q) => h("tr", {},
      h("td", {}, q.name),
      h("td", { class: "num" }, count(q.waiting)),
      h("td", { class: "num" }, count(q.in_flight)),
      h("td", { class: "num" }, count(q.delayed)),
      h("td", { class: "num" }, count(q.dead_lettered)),
      h("td", { class: "num" }, age(q.oldest_age)),
    )), 6, "No queues known.");

    fill("#overview-failures", (failures.tasks || []).map((t) => h("tr", {},
      h("td", {}, h("a", { href: `${ROOT}/task/${enc(t.uuid)}` }, t.name || "?")),
      h("td", { class: "id" }, taskLink(t.uuid)),
      h("td", {}, workerLink(t.worker)),
      h("td", { class: "wrap" }, t.exception || ""),
      h("td", {}, when(t.failed || t.timestamp)),
    )), 5, "No failures. ");

    timeChart($("#overview-throughput"), {
      series: throughputSeries(throughput), bars: true, integer: true, ...windowOf(60), step: 60,
      empty: "No tasks finished in the last hour",
    });
  }, 3000);
}

// ---------------------------------------------------------------------------------------
// Workers

function workersPage() {
  poll(async () => {
    const [workers, series] = await Promise.all([
      get("/api/dash/workers"), get("/api/dash/series/workers", { minutes: 60 }),
    ]);
    const alive = workers.filter((w) => w.alive).length;
    text("#workers-summary", `${alive} online, ${workers.length - alive} offline`);
    fill("#workers-body", workers.map((w) => h("tr", { "data-hostname": w.hostname },
      h("td", {}, workerLink(w.hostname)),
      h("td", {}, badge(w.alive ? "online" : "offline")),
      h("td", {}, w.pool || "–"),
      h("td", { class: "num" }, count(w.concurrency)),
      h("td", { class: "mono" }, (w.load || []).map((l) => (l ?? 0).toFixed(2)).join(" / ") || "–"),
      h("td", { class: "num" }, count(w.active)),
      h("td", { class: "num" }, count(w.processed)),
      h("td", { class: "num" }, count(w.failed)),
      h("td", { class: "num" }, w.heartbeat_age === null || w.heartbeat_age === undefined ? "–" : `${age(w.heartbeat_age)} ago`),
      h("td", { class: "num", title: typeof w.memory_rss === "string" ? w.memory_rss : null }, bytes(w.memory_rss)),
      h("td", {}, w.sw_ver || "–"),
    )), 11, "No worker has been seen yet. Start one with: celeriac -A proj worker");
    timeChart($("#workers-load"), { series: perKey(series, "active"), integer: true, ...windowOf(60), empty: "No samples yet (one every 10 s)" });
  }, 3000);
}

// ---------------------------------------------------------------------------------------
// A worker

function facts(target, pairs) {
  const node = typeof target === "string" ? $(target) : target;
  const items = [];
  for (const [label, value, mono] of pairs) {
    items.push(h("dt", {}, label), h("dd", { class: mono ? "mono" : "" }, value ?? "–"));
  }
  node.replaceChildren(...(items.length ? items : [h("dd", { class: "muted" }, "–")]));
}

function taskNameOf(registered) {
  return String(registered).split(" [")[0];
}

function workerPage() {
  const hostname = document.body.dataset.hostname;
  const base = `/api/worker`;
  let registered = [];
  const refresh = poll(async () => {
    const [data, series] = await Promise.all([
      get(`/api/dash/worker/${enc(hostname)}`),
      get("/api/dash/series/workers", { minutes: 60 }),
    ]);
    const w = data.worker || {};
    $("#worker-status").replaceChildren(badge(w.alive ? "online" : "offline"));
    const stats = data.stats || {};
    const pool = stats.pool || {};
    facts("#worker-pool", [
      ["Pool", pool.implementation || w.pool],
      ["Concurrency", count(pool["max-concurrency"] ?? w.concurrency)],
      ["Processes", (pool.processes || []).join(", ") || "–", true],
      ["Prefetch", count(stats.prefetch_count)],
      ["Active", count(w.active)],
      ["Processed", count(w.processed)],
      ["Failed", count(w.failed)],
    ]);
    facts("#worker-system", [
      ["Hostname", w.hostname || hostname],
      ["Pid", w.pid ?? stats.pid],
      ["Version", w.sw_ver],
      ["Uptime", stats.uptime !== undefined ? age(stats.uptime) : "–"],
      ["Load", (w.load || []).map((l) => (l ?? 0).toFixed(2)).join(" / ") || "–"],
      ["Memory", bytes(w.memory_rss)],
      ["Last heartbeat", w.heartbeat_age !== undefined && w.heartbeat_age !== null ? `${age(w.heartbeat_age)} ago` : "–"],
      ["Broker", stats.broker?.url, true],
    ]);
    if (data.stats === null) {
      $("#worker-system").append(h("dt", {}, "Note"), h("dd", { class: "muted" }, "the worker did not answer (2 s): showing what its events said"));
    }
    const queues = data.active_queues || [];
    fill("#worker-queues", queues.map((q) => h("tr", {},
      h("td", {}, q.name),
      h("td", {}, q.exchange?.name || "–"),
      h("td", {}, q.routing_key || "–"),
      h("td", { class: "actions-col action" }, h("button", {
        type: "button", class: "button small", "data-queue": q.name,
        disabled: queues.length < 2,
        title: queues.length < 2 ? "a worker keeps at least one queue" : `stop consuming ${q.name}`,
        onclick: () => act(async () => said(await postForm(`${base}/queue/cancel-consumer/${enc(hostname)}`, { queue: q.name }), `cancelled ${q.name}`), refresh),
      }, "Cancel consumer")),
    )), 4, data.active_queues === null ? "The worker did not answer." : "No queues.");
    const active = data.active || [];
    text("#worker-active-count", `${active.length}`);
    fill("#worker-active", active.map((t) => h("tr", {},
      h("td", {}, t.name),
      h("td", { class: "id" }, taskLink(t.id)),
      h("td", { class: "args" }, `${inline(t.args)} ${t.kwargs && Object.keys(t.kwargs).length ? inline(t.kwargs) : ""}`),
      h("td", {}, when(t.time_start)),
    )), 4, "Nothing running.");
    const reserved = data.reserved || [];
    text("#worker-reserved-count", `${reserved.length}`);
    fill("#worker-reserved", reserved.map((t) => h("tr", {},
      h("td", {}, t.name),
      h("td", { class: "id" }, taskLink(t.id)),
      h("td", { class: "args" }, inline(t.args)),
    )), 3, "Nothing reserved.");
    registered = (data.registered || []).map(taskNameOf);
    const limits = data.limits || {};
    fill("#worker-registered", registered.map((name) => h("tr", {},
      h("td", {}, name),
      h("td", { class: "mono" }, describeLimits(limits[name])),
    )), 2, "The worker did not say.");
    for (const select of $$(".task-select")) {
      const current = select.value;
      const options = registered.map((name) => h("option", { value: name, selected: name === current }, name));
      if (select.options.length !== options.length) select.replaceChildren(...options);
    }
    const conf = data.conf || {};
    facts("#worker-conf", Object.keys(conf).sort().map((key) => [key, inline(conf[key]), true]));
    const mine = (series || {})[hostname] || [];
    timeChart($("#worker-load"), {
      series: [
        { name: "active", points: mine.map((p) => [p.t, p.active ?? null]) },
        { name: "load (1m)", points: mine.map((p) => [p.t, p.load ?? null]) },
      ],
      ...windowOf(60), empty: "No samples yet (one every 10 s)",
    });
  }, 5000);

  $("#form-pool").addEventListener("submit", (event) => {
    event.preventDefault();
    const op = event.submitter?.value || "grow";
    const n = event.target.n.value || 1;
    act(async () => said(await postForm(`${base}/pool/${op}/${enc(hostname)}`, { n }), `pool ${op} by ${n}: sent`), refresh);
  });
  $("#form-consumer").addEventListener("submit", (event) => {
    event.preventDefault();
    const queue = event.target.queue.value.trim();
    act(async () => said(await postForm(`${base}/queue/add-consumer/${enc(hostname)}`, { queue }), `consuming ${queue}`), refresh);
  });
  $("#form-rate").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act(async () => said(await postForm(`/api/task/rate-limit/${enc(form.task.value)}`, {
      ratelimit: form.ratelimit.value, workername: hostname,
    }), "rate limit set"), refresh);
  });
  $("#form-timeout").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act(async () => said(await postForm(`/api/task/timeout/${enc(form.task.value)}`, {
      soft: form.soft.value, hard: form.hard.value, workername: hostname,
    }), "time limits set"), refresh);
  });
  $("#worker-shutdown").addEventListener("click", async () => {
    const answer = await ask({
      title: `Shut down ${hostname}?`,
      message: "A warm shutdown: the worker finishes the tasks it runs and exits. It does not come back by itself.",
      ok: "Shut down", danger: true,
    });
    if (!answer) return;
    act(async () => said(await postForm(`${base}/shutdown/${enc(hostname)}`, {}), "shutdown sent"), refresh);
  });
}

function describeLimits(limits) {
  if (!limits) return "–";
  if (typeof limits === "string") return limits;
  const parts = [];
  for (const [key, value] of Object.entries(limits)) {
    if (value !== null && value !== undefined && value !== "") parts.push(`${key}=${value}`);
  }
  return parts.join(" ") || "–";
}

// ---------------------------------------------------------------------------------------
// Tasks

const TASK_FILTERS = ["state", "name", "worker", "since", "until", "search"];

function fromLocalInput(value) {
  if (!value) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t / 1000;
}

function tasksPage() {
  const form = $("#task-filter");
  const params = new URLSearchParams(location.search);
  const view = {
    sort: params.get("sort") || "received",
    order: params.get("order") || "desc",
    limit: Number(params.get("limit")) || 50,
    offset: Number(params.get("offset")) || 0,
  };
  for (const name of TASK_FILTERS) {
    const value = params.get(name);
    if (value && form[name]) {
      if (form[name].tagName === "SELECT" && ![...form[name].options].some((o) => o.value === value)) {
        form[name].append(h("option", { value }, value));
      }
      form[name].value = value;
    }
  }
  $("#page-size").value = String(view.limit);
  const selected = new Set();
  let shown = [];
  let total = 0;

  const filters = () => {
    const values = {};
    for (const name of TASK_FILTERS) {
      const value = form[name].value.trim();
      if (!value) continue;
      values[name] = name === "since" || name === "until" ? fromLocalInput(value) : value;
    }
    return values;
  };
  const remember = () => {
    const query = new URLSearchParams();
    for (const name of TASK_FILTERS) if (form[name].value) query.set(name, form[name].value);
    if (view.sort !== "received") query.set("sort", view.sort);
    if (view.order !== "desc") query.set("order", view.order);
    if (view.offset) query.set("offset", String(view.offset));
    if (view.limit !== 50) query.set("limit", String(view.limit));
    const text = query.toString();
    history.replaceState(null, "", `${location.pathname}${text ? `?${text}` : ""}`);
  };
  const showSelection = () => {
    text("#bulk-selected", selected.size ? `${selected.size} selected` : "none selected");
    for (const button of $$("[data-scope=selection]")) button.disabled = !selected.size;
    const all = $("#select-all");
    all.checked = shown.length > 0 && shown.every((t) => selected.has(t.uuid));
    all.indeterminate = !all.checked && shown.some((t) => selected.has(t.uuid));
  };
  const showSort = () => {
    for (const button of $$(".sort")) {
      button.classList.toggle("asc", button.dataset.sort === view.sort && view.order === "asc");
      button.classList.toggle("desc", button.dataset.sort === view.sort && view.order === "desc");
    }
  };

  const refresh = poll(async () => {
    const data = await get("/api/dash/tasks", {
      ...filters(), sort: view.sort, order: view.order, limit: view.limit, offset: view.offset,
    });
    shown = data.tasks || [];
    total = data.total ?? shown.length;
    text("#tasks-total", count(total));
    fill("#tasks-body", shown.map((t) => h("tr", { class: selected.has(t.uuid) ? "selected" : "", "data-id": t.uuid },
      h("td", { class: "check action" }, h("input", {
        type: "checkbox", checked: selected.has(t.uuid), "aria-label": `select ${t.uuid}`,
        onchange: (event) => {
          if (event.target.checked) selected.add(t.uuid);
          else selected.delete(t.uuid);
          event.target.closest("tr").classList.toggle("selected", event.target.checked);
          showSelection();
        },
      })),
      h("td", {}, h("a", { href: `${ROOT}/task/${enc(t.uuid)}`, class: "task-name" }, t.name || "?")),
      h("td", { class: "id" }, taskLink(t.uuid)),
      h("td", {}, badge(t.state)),
      h("td", { class: "args", title: `${t.args ?? ""} ${t.kwargs ?? ""}` }, argsText(t)),
      h("td", {}, workerLink(t.worker)),
      h("td", {}, when(t.received ?? t.sent)),
      h("td", {}, when(t.started)),
      h("td", { class: "num" }, duration(t.runtime)),
      h("td", { class: "num" }, count(t.retries ?? 0)),
    )), 10, "No task matches.");
    const last = Math.min(view.offset + shown.length, total);
    text("#page-info", total ? `${count(view.offset + 1)}–${count(last)} of ${count(total)}` : "");
    $("#page-prev").disabled = view.offset <= 0;
    $("#page-next").disabled = view.offset + view.limit >= total;
    showSelection();
  }, 3000);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    view.offset = 0;
    selected.clear();
    remember();
    refresh.now();
  });
  form.addEventListener("reset", () => {
    setTimeout(() => {
      view.offset = 0;
      selected.clear();
      remember();
      refresh.now();
    });
  });
  for (const name of ["state", "name", "worker"]) {
    form[name].addEventListener("change", () => form.requestSubmit());
  }
  for (const button of $$(".sort")) {
    button.addEventListener("click", () => {
      if (view.sort === button.dataset.sort) view.order = view.order === "asc" ? "desc" : "asc";
      else {
        view.sort = button.dataset.sort;
        view.order = "desc";
      }
      showSort();
      remember();
      refresh.now();
    });
  }
  showSort();
  $("#page-prev").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - view.limit);
    remember();
    refresh.now();
  });
  $("#page-next").addEventListener("click", () => {
    view.offset += view.limit;
    remember();
    refresh.now();
  });
  $("#page-size").addEventListener("change", (event) => {
    view.limit = Number(event.target.value);
    view.offset = 0;
    remember();
    refresh.now();
  });
  $("#select-all").addEventListener("change", (event) => {
    for (const t of shown) {
      if (event.target.checked) selected.add(t.uuid);
      else selected.delete(t.uuid);
    }
    for (const box of $$("#tasks-body input[type=checkbox]")) {
      box.checked = event.target.checked;
      box.closest("tr").classList.toggle("selected", event.target.checked);
    }
    showSelection();
  });
  for (const button of $$("[data-bulk]")) {
    button.addEventListener("click", () => bulk(button.dataset.bulk, button.dataset.scope));
  }

  async function bulk(action, scope) {
    const target = scope === "selection" ? { ids: [...selected] } : { filter: filters() };
    let preview;
    try {
      preview = await post("/api/dash/tasks/bulk", { action, ...target, preview: true });
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    const n = preview.count ?? 0;
    if (!n) {
      toast(`No task to ${action}.`);
      return;
    }
    const what = scope === "selection" ? "selected" : "matching the filter";
    const answer = await ask({
      title: `${action === "retry" ? "Retry" : "Revoke"} ${plural(n, "task")}?`,
      message: action === "retry"
        ? `${plural(n, "task")} ${what} will be sent again, each with its original arguments and options.`
        : `${plural(n, "task")} ${what} will be revoked: workers drop them instead of running them.`,
      ok: `${action === "retry" ? "Retry" : "Revoke"} ${n}`, danger: action === "revoke",
    });
    if (!answer) return;
    await act(async () => {
      const done = await post("/api/dash/tasks/bulk", { action, ...target, preview: false });
      selected.clear();
      return `${action === "retry" ? "Retried" : "Revoked"} ${plural(done.done ?? 0, "task")}.`;
    }, refresh);
  }
}

function argsText(t) {
  const args = t.args ?? "";
  const kwargs = t.kwargs && t.kwargs !== "{}" ? ` ${t.kwargs}` : "";
  return `${typeof args === "string" ? args : JSON.stringify(args)}${typeof kwargs === "string" ? kwargs : JSON.stringify(kwargs)}`;
}

// ---------------------------------------------------------------------------------------
// A task

function taskPage() {
  const id = document.body.dataset.taskId;
  let task = null;
  const refresh = poll(async () => {
    let data;
    try {
      data = await get(`/api/dash/task/${enc(id)}`);
    } catch (error) {
      if (error.status === 404) {
        $("#task-missing").classList.remove("hidden");
        $("#task-details").classList.add("hidden");
        text("#task-name", "unknown task");
        return;
      }
      throw error;
    }
    $("#task-missing").classList.add("hidden");
    $("#task-details").classList.remove("hidden");
    task = data.task || {};
    text("#task-name", task.name || "?");
    $("#task-state").replaceChildren(badge(task.state));
    document.title = `${task.name || "Task"} ${task.state || ""} · celeriac`;
    facts("#task-facts", [
      ["Name", task.name],
      ["State", badge(task.state)],
      ["Worker", workerLink(task.worker)],
      ["Queue", task.queue],
      ["Sent", when(task.sent)],
      ["Received", when(task.received)],
      ["Started", when(task.started)],
      [task.state === "FAILURE" ? "Failed" : "Finished", when(task.succeeded ?? task.failed ?? task.revoked ?? task.rejected)],
      ["Runtime", duration(task.runtime)],
      ["Retries", count(task.retries ?? 0)],
      ["ETA", when(task.eta)],
      ["Expires", when(task.expires)],
      ["Priority", task.priority ?? "–"],
      ["Updated", when(task.updated ?? task.timestamp)],
    ]);
    $("#task-args").textContent = pretty(task.args ?? task.payload?.args);
    $("#task-kwargs").textContent = pretty(task.kwargs ?? task.payload?.kwargs);
    $("#task-result").textContent = task.result ?? (task.meta ? pretty(task.meta) : "–");
    const failed = Boolean(task.exception || task.traceback);
    $("#task-exception-box").classList.toggle("hidden", !failed);
    $("#task-exception").textContent = task.exception || "";
    $("#task-traceback").textContent = task.traceback || "";

    $("#task-timeline").replaceChildren(...(data.timeline || []).map((step) => h("li", { class: step.state },
      badge(step.state), h("span", { class: "when" }, when(step.time)),
      step.detail ? h("div", { class: "detail" }, pretty(step.detail)) : null,
    )));
    const children = data.children || [];
    facts("#task-relations", [
      ["Parent", data.parent ? taskLink(data.parent, data.parent) : "none"],
      ["Root", data.root && data.root !== id ? taskLink(data.root, data.root) : data.root === id ? "this task" : "none"],
      ["Children", children.length ? h("span", {}, children.flatMap((c, i) => [i ? ", " : "", taskLink(c)])) : "none"],
    ]);
    const graph = data.graph || { nodes: [], edges: [] };
    const panel = $("#task-graph-panel");
    panel.classList.toggle("hidden", (graph.nodes || []).length < 2);
    if ((graph.nodes || []).length >= 2) {
      workflowGraph($("#task-graph"), graph, (node) => `${ROOT}/task/${enc(node)}`, id);
    }
    const final = FINAL_STATES.has(task.state);
    $("#task-revoke").disabled = final;
    $("#task-terminate").disabled = final;
  }, 3000);

  $("#task-retry").addEventListener("click", async () => {
    const answer = await ask({
      title: "Retry this task?",
      message: `${task?.name || "The task"} is sent again as a new task, with its original arguments and options.`,
      ok: "Retry",
    });
    if (!answer) return;
    const reply = await act(async () => {
      const sent = await post(`/api/dash/task/${enc(id)}/retry`, {});
      return sent["task-id"] ? `Sent again as ${sent["task-id"]}` : "Sent again.";
    }, refresh);
    const newId = reply && reply.startsWith("Sent again as ") ? reply.slice(14) : null;
    if (newId) {
      const link = h("a", { href: `${ROOT}/task/${enc(newId)}`, id: "retried-link" }, "open the new task");
      $("#toasts").append(h("div", { class: "toast" }, link));
    }
  });
  $("#task-revoke").addEventListener("click", () => {
    act(async () => said(await postForm(`/api/task/revoke/${enc(id)}`, {}), "Revoked."), refresh);
  });
  $("#task-terminate").addEventListener("click", async () => {
    const answer = await ask({
      title: "Terminate this task?",
      message: "It is revoked, and the worker running it stops it with this signal.",
      fields: [{ name: "signal", label: "Signal", value: "SIGTERM", options: [["SIGTERM", "SIGTERM"], ["SIGKILL", "SIGKILL"], ["SIGINT", "SIGINT"]] }],
      ok: "Terminate", danger: true,
    });
    if (!answer) return;
    act(async () => said(await postForm(`/api/task/revoke/${enc(id)}`, { terminate: "true", signal: answer.signal }), "Terminated."), refresh);
  });
}

// ---------------------------------------------------------------------------------------
// Queues

function queuesPage() {
  const refresh = poll(async () => {
    const [queues, series] = await Promise.all([
      get("/api/dash/queues"), get("/api/dash/series/queues", { minutes: 60 }),
    ]);
    fill("#queues-body", queues.map((q) => h("tr", { "data-queue": q.name },
      h("td", {}, q.name),
      h("td", { class: "num" }, count(q.waiting)),
      h("td", { class: "num" }, count(q.in_flight)),
      h("td", { class: "num" }, count(q.delayed)),
      h("td", { class: "num" }, q.dead_lettered ? h("a", { href: `${ROOT}/deadletters?queue=${enc(q.name)}` }, count(q.dead_lettered)) : count(q.dead_lettered)),
      h("td", { class: "num" }, age(q.oldest_age)),
      h("td", { class: "actions-col action" }, h("button", {
        type: "button", class: "button small danger", "data-purge": q.name,
        onclick: () => purgeQueue(q, refresh),
      }, "Purge…")),
    )), 7, "No queues known.");
    const window = windowOf(60);
    timeChart($("#queues-depth"), { series: perKey(series, "waiting"), integer: true, ...window, empty: "No samples yet (one every 10 s)" });
    timeChart($("#queues-age"), { series: perKey(series, "oldest_age"), ...window, format: shortNumber, empty: "No samples yet" });
    timeChart($("#queues-dead"), { series: perKey(series, "dead_lettered"), integer: true, ...window, empty: "No samples yet" });
  }, 5000);
}

async function purgeQueue(q, refresh) {
  const answer = await ask({
    title: `Purge ${q.name}?`,
    message: [
      `This deletes the ${plural(q.waiting ?? 0, "waiting message")} of ${q.name}. Messages in flight, delayed and dead-lettered stay.`,
      "It cannot be undone. Type the queue's name to confirm.",
    ],
    fields: [{ name: "confirm", label: "Queue name", placeholder: q.name }],
    expect: { name: "confirm", value: q.name },
    ok: "Purge", danger: true,
  });
  if (!answer) return;
  act(async () => {
    const done = await post(`/api/dash/queue/${enc(q.name)}/purge`, { confirm: answer.confirm });
    return `Purged ${plural(done.purged ?? 0, "message")} from ${q.name}.`;
  }, refresh);
}

// ---------------------------------------------------------------------------------------
// Dead letters

function deadLettersPage() {
  const select = $("#dlq-queue");
  const initial = new URLSearchParams(location.search).get("queue") || "";
  if (initial) {
    select.append(h("option", { value: initial }, initial));
    select.value = initial;
  }
  const selected = new Map(); // id -> queue
  let shown = [];
  let queues = [];
  const showSelection = () => {
    text("#dlq-selected", selected.size ? `${selected.size} selected` : "none selected");
    $("#dlq-requeue-selected").disabled = !selected.size;
    const all = $("#dlq-select-all");
    all.checked = shown.length > 0 && shown.every((m) => selected.has(m.id));
  };
  const refresh = poll(async () => {
    const [messages, known] = await Promise.all([
      get("/api/dash/deadletters", { queue: select.value, limit: 200 }),
      get("/api/dash/queues"),
    ]);
    queues = known;
    const names = new Set(known.map((q) => q.name));
    for (const name of names) {
      if (![...select.options].some((o) => o.value === name)) select.append(h("option", { value: name }, name));
    }
    shown = messages;
    fill("#dlq-body", messages.map((m) => h("tr", { class: selected.has(m.id) ? "selected" : "", "data-id": m.id },
      h("td", { class: "check action" }, h("input", {
        type: "checkbox", checked: selected.has(m.id), "aria-label": `select ${m.id}`,
        onchange: (event) => {
          if (event.target.checked) selected.set(m.id, m.queue);
          else selected.delete(m.id);
          event.target.closest("tr").classList.toggle("selected", event.target.checked);
          showSelection();
        },
      })),
      h("td", {}, m.task || "?"),
      h("td", { class: "id" }, taskLink(m.task_id)),
      h("td", {}, m.queue),
      h("td", { class: "wrap" }, m.reason || "–"),
      h("td", { class: "args", title: `${inline(m.args)} ${inline(m.kwargs)}` }, `${inline(m.args)} ${m.kwargs && Object.keys(m.kwargs).length ? inline(m.kwargs) : ""}`),
      h("td", {}, when(m.dead_at)),
      h("td", { class: "actions-col action" }, h("button", {
        type: "button", class: "button small", "data-requeue": m.id,
        onclick: () => requeue(new Map([[m.id, m.queue]])),
      }, "Requeue")),
    )), 8, "No dead letters.");
    showSelection();
  }, 5000);

  async function requeue(ids) {
    const byQueue = new Map();
    for (const [id, queue] of ids) byQueue.set(queue, [...(byQueue.get(queue) || []), id]);
    await act(async () => {
      let n = 0;
      for (const [queue, list] of byQueue) {
        const done = await post("/api/dash/deadletters/requeue", { queue, ids: list });
        n += done.requeued ?? 0;
      }
      for (const id of ids.keys()) selected.delete(id);
      return `Requeued ${plural(n, "message")}.`;
    }, refresh);
  }

  const targets = () => (select.value
    ? queues.filter((q) => q.name === select.value)
    : queues.filter((q) => q.dead_lettered));

  select.addEventListener("change", () => {
    selected.clear();
    const query = select.value ? `?queue=${enc(select.value)}` : "";
    history.replaceState(null, "", `${location.pathname}${query}`);
    refresh.now();
  });
  $("#dlq-select-all").addEventListener("change", (event) => {
    for (const m of shown) {
      if (event.target.checked) selected.set(m.id, m.queue);
      else selected.delete(m.id);
    }
    for (const box of $$("#dlq-body input[type=checkbox]")) {
      box.checked = event.target.checked;
      box.closest("tr").classList.toggle("selected", event.target.checked);
    }
    showSelection();
  });
  $("#dlq-requeue-selected").addEventListener("click", () => requeue(new Map(selected)));
  $("#dlq-requeue-all").addEventListener("click", async () => {
    const list = targets();
    const n = list.reduce((a, q) => a + (q.dead_lettered || 0), 0);
    if (!list.length) {
      toast("No dead letters to requeue.");
      return;
    }
    const answer = await ask({
      title: `Requeue ${plural(n, "message")}?`,
      message: `Every dead letter of ${list.map((q) => q.name).join(", ")} goes back to its queue, to run again.`,
      ok: "Requeue all",
    });
    if (!answer) return;
    act(async () => {
      let done = 0;
      for (const q of list) done += (await post("/api/dash/deadletters/requeue", { queue: q.name, all: true })).requeued ?? 0;
      selected.clear();
      return `Requeued ${plural(done, "message")}.`;
    }, refresh);
  });
  $("#dlq-purge").addEventListener("click", async () => {
    const options = queues.filter((q) => q.dead_lettered || q.name === select.value);
    if (!options.length) {
      toast("No dead letters to purge.");
      return;
    }
    const chosen = select.value || options[0].name;
    const answer = await ask({
      title: "Purge dead letters?",
      message: ["The dead letters of the queue are deleted for good.", "Type the queue's name to confirm."],
      fields: [
        { name: "queue", label: "Queue", value: chosen, options: options.map((q) => [q.name, `${q.name} (${count(q.dead_lettered)})`]) },
        { name: "confirm", label: "Queue name", placeholder: "the queue's name" },
      ],
      ok: "Purge", danger: true,
    });
    if (!answer) return;
    if (answer.confirm !== answer.queue) {
      toast("The name typed is not the queue's: nothing purged.", "error");
      return;
    }
    act(async () => {
      const done = await post("/api/dash/deadletters/purge", { queue: answer.queue });
      return `Purged ${plural(done.purged ?? 0, "dead letter")} of ${answer.queue}.`;
    }, refresh);
  });
}

// ---------------------------------------------------------------------------------------
// Schedules

function outcome(value) {
  if (!value) return "–";
  if (typeof value === "string") return badge(value);
  const parts = [badge(value.state)];
  if (value.task_id || value.id) parts.push(" ", taskLink(value.task_id || value.id));
  return h("span", {}, parts);
}

function schedulesPage() {
  const refresh = poll(async () => {
    const data = await get("/api/dash/schedules");
    const editable = Boolean(data.editable);
    text("#schedules-note", editable
      ? "the database schedule: changes reach beat within its sync interval"
      : "from the beat_schedule setting: change them there (the database schedule can be edited here)");
    fill("#schedules-body", (data.entries || []).map((e) => h("tr", { "data-entry": e.name },
      h("td", {}, e.name),
      h("td", {}, h("a", { href: `${ROOT}/tasks?name=${enc(e.task)}` }, e.task),
        h("div", { class: "sub mono" }, `${inline(e.args ?? [])} ${e.kwargs && Object.keys(e.kwargs).length ? inline(e.kwargs) : ""}`)),
      h("td", { class: "wrap" }, typeof e.schedule === "string" ? e.schedule : inline(e.schedule)),
      h("td", {}, badge(e.enabled === false ? "no" : "yes", e.enabled === false ? "disabled" : "enabled")),
      h("td", {}, when(e.last_run_at)),
      h("td", {}, when(e.next_run_at)),
      h("td", { class: "num" }, count(e.total_run_count ?? 0)),
      h("td", {}, outcome(e.last_outcome)),
      h("td", { class: "actions-col action" }, editable ? h("span", { class: "row-actions" },
        h("button", {
          type: "button", class: "button small", "data-toggle": e.name,
          onclick: () => act(async () => {
            await post(`/api/dash/schedule/${enc(e.name)}/${e.enabled === false ? "enable" : "disable"}`, {});
            return `${e.name} ${e.enabled === false ? "enabled" : "disabled"}.`;
          }, refresh),
        }, e.enabled === false ? "Enable" : "Disable"),
        h("button", {
          type: "button", class: "button small", "data-run": e.name,
          onclick: () => act(async () => {
            const sent = await post(`/api/dash/schedule/${enc(e.name)}/run`, {});
            return `${e.name} sent${sent.task_id ? ` as ${sent.task_id}` : ""}.`;
          }, refresh),
        }, "Run now"),
        h("button", { type: "button", class: "button small", "data-edit": e.name, onclick: () => editEntry(e, refresh) }, "Edit…"),
      ) : null),
    )), 9, "No beat entries.");
  }, 5000);
}

async function editEntry(entry, refresh) {
  const answer = await ask({
    title: `Edit ${entry.name}`,
    message: `Now: ${entry.schedule}. Give a new interval or crontab, or leave both empty to keep it.`,
    fields: [
      { name: "task", label: "Task", value: entry.task },
      { name: "every", label: "Every (seconds)", type: "number", placeholder: "e.g. 300" },
      { name: "cron", label: "Or crontab (minute hour day-of-month month day-of-week)", placeholder: "e.g. 0 3 * * *" },
      { name: "args", label: "Args (JSON list)", type: "textarea", value: JSON.stringify(entry.args ?? []) },
      { name: "kwargs", label: "Kwargs (JSON object)", type: "textarea", value: JSON.stringify(entry.kwargs ?? {}) },
    ],
    ok: "Save",
  });
  if (!answer) return;
  let args;
  let kwargs;
  try {
    args = JSON.parse(answer.args || "[]");
    kwargs = JSON.parse(answer.kwargs || "{}");
  } catch (error) {
    toast(`Not JSON: ${error.message}`, "error");
    return;
  }
  const change = { task: answer.task, args, kwargs };
  if (answer.every) change.every = Number(answer.every);
  else if (answer.cron.trim()) change.cron = answer.cron.trim();
  act(async () => {
    await post(`/api/dash/schedule/${enc(entry.name)}/edit`, change);
    return `${entry.name} saved.`;
  }, refresh);
}

// ---------------------------------------------------------------------------------------
// Charts

function chartsPage() {
  const select = $("#charts-minutes");
  const saved = new URLSearchParams(location.search).get("minutes");
  if (saved && [...select.options].some((o) => o.value === saved)) select.value = saved;
  const refresh = poll(async () => {
    const minutes = Number(select.value);
    const [throughput, runtimes, queues, workers] = await Promise.all([
      get("/api/dash/series/throughput", { minutes }),
      get("/api/dash/series/runtimes", { minutes }),
      get("/api/dash/series/queues", { minutes }),
      get("/api/dash/series/workers", { minutes }),
    ]);
    const window = windowOf(minutes);
    timeChart($("#chart-throughput"), {
      series: throughputSeries(throughput), bars: true, integer: true, step: 60, ...window,
      empty: "No task finished in this window",
    });
    const rows = [...runtimes].sort((a, b) => (b.count || 0) - (a.count || 0)).slice(0, 12);
    barChart($("#chart-runtimes"), {
      categories: rows.map((r) => r.name),
      series: ["p50", "p95", "p99"].map((p, i) => ({
        name: p, colour: ["#7fb0d9", "#2f6fa7", "#17406b"][i], values: rows.map((r) => r[p]),
      })),
      format: (v) => (v ? duration(v).replace(" ", "") : "0"),
      empty: "No task finished in this window",
    });
    fill("#runtimes-body", [...runtimes].sort((a, b) => a.name.localeCompare(b.name)).map((r) => h("tr", {},
      h("td", {}, h("a", { href: `${ROOT}/tasks?name=${enc(r.name)}` }, r.name)),
      h("td", { class: "num" }, count(r.count)),
      h("td", { class: "num" }, duration(r.p50)),
      h("td", { class: "num" }, duration(r.p95)),
      h("td", { class: "num" }, duration(r.p99)),
    )), 5, "No runtimes yet.");
    timeChart($("#chart-queue-depth"), { series: perKey(queues, "waiting"), integer: true, ...window, empty: "No samples yet (one every 10 s)" });
    timeChart($("#chart-queue-age"), { series: perKey(queues, "oldest_age"), ...window, empty: "No samples yet" });
    timeChart($("#chart-worker-load"), { series: perKey(workers, "load"), ...window, empty: "No samples yet" });
    timeChart($("#chart-worker-active"), { series: perKey(workers, "active"), integer: true, ...window, empty: "No samples yet" });
  }, 5000);
  select.addEventListener("change", () => {
    history.replaceState(null, "", `${location.pathname}?minutes=${select.value}`);
    refresh.now();
  });
}

// ---------------------------------------------------------------------------------------
// Alerts

function describeRule(rule) {
  if (rule.description) return rule.description;
  const skip = new Set(["name", "id", "kind", "channels", "summary", "severity"]);
  return Object.entries(rule).filter(([key, value]) => !skip.has(key) && value !== null && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`).join(" ");
}

function alertsPage() {
  const refresh = poll(async () => {
    const data = await get("/api/dash/alerts");
    const alerts = data.alerts || [];
    const firing = alerts.filter((a) => a.state === "firing").length;
    text("#alerts-summary", `${firing} firing, ${alerts.length - firing} other`);
    const rank = { firing: 0, acknowledged: 1, silenced: 2, resolved: 3 };
    alerts.sort((a, b) => (rank[a.state] ?? 9) - (rank[b.state] ?? 9) || (toEpoch(b.since) || 0) - (toEpoch(a.since) || 0));
    fill("#alerts-body", alerts.map((a) => h("tr", { "data-alert": a.id },
      h("td", {}, badge(a.state)),
      h("td", {}, a.rule),
      h("td", { class: "wrap" }, a.summary || "–"),
      h("td", { class: "num" }, a.value === null || a.value === undefined ? "–" : shortNumber(a.value)),
      h("td", {}, when(a.since)),
      h("td", {}, a.silenced_until ? h("span", {}, "until ", when(a.silenced_until)) : a.acknowledged_by ? `by ${a.acknowledged_by}` : "–"),
      h("td", { class: "actions-col action" }, a.state === "resolved" ? null : h("span", { class: "row-actions" },
        h("button", {
          type: "button", class: "button small", "data-silence": a.id,
          onclick: async () => {
            const answer = await ask({
              title: `Silence ${a.rule}`,
              message: "No notification is sent for it while silenced; it shows here all the same.",
              fields: [{ name: "minutes", label: "For", value: "60", options: [["15", "15 minutes"], ["60", "1 hour"], ["240", "4 hours"], ["1440", "1 day"], ["10080", "1 week"]] }],
              ok: "Silence",
            });
            if (!answer) return;
            act(async () => {
              await post(`/api/dash/alert/${enc(a.id)}/silence`, { minutes: Number(answer.minutes) });
              return `${a.rule} silenced.`;
            }, refresh);
          },
        }, "Silence…"),
        a.state === "acknowledged" ? null : h("button", {
          type: "button", class: "button small", "data-ack": a.id,
          onclick: () => act(async () => {
            await post(`/api/dash/alert/${enc(a.id)}/acknowledge`, {});
            return `${a.rule} acknowledged.`;
          }, refresh),
        }, "Acknowledge"),
      )),
    )), 7, "No alert has fired.");
    fill("#rules-body", (data.rules || []).map((rule) => h("tr", {},
      h("td", {}, rule.name || rule.id || "–"),
      h("td", {}, rule.kind || "–"),
      h("td", {}, rule.severity ? badge(SEVERITY[rule.severity] || "unknown", rule.severity) : "–"),
      h("td", { class: "wrap" }, describeRule(rule)),
      h("td", {}, [].concat(rule.channels || []).join(", ") || "all"),
    )), 5, "No rules: add them to the dashboard_alerts setting.");
  }, 5000);
}

// ---------------------------------------------------------------------------------------

const PAGES = {
  overview: overviewPage,
  workers: PAGE === "workers" && document.body.dataset.hostname ? workerPage : workersPage,
  tasks: document.body.dataset.taskId ? taskPage : tasksPage,
  queues: queuesPage,
  deadletters: deadLettersPage,
  schedules: schedulesPage,
  charts: chartsPage,
  alerts: alertsPage,
};

async function start() {
  await loadMe();
  if (PAGE !== "alerts") alertsInNav();
  const page = PAGES[PAGE];
  if (page) page();
}

start();
