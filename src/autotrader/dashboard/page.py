"""The dashboard page: HTML, CSS and JavaScript in one string, nothing from the internet.

It loads plotly.js from ``/static/plotly.min.js`` (the installed ``plotly`` package's bundle),
renders the snapshot the server put in it (``__INITIAL_SNAPSHOT__``), then subscribes to
``/api/stream`` (falling back to polling ``/api/snapshot``) and updates in place. Values are
written with ``textContent``, never as HTML. ``__REFRESH_MS__`` is the polling interval.
"""

from __future__ import annotations

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AutoTrader dashboard</title>
<style>
  :root { --ok: #15803d; --warn: #b45309; --bad: #b91c1c; --muted: #6b7280; --line: #e5e7eb; --bar: #2563eb; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827;
         background: #f9fafb; }
  header { display: flex; flex-wrap: wrap; gap: 12px; align-items: baseline; padding: 12px 20px; background: #111827;
           color: #f9fafb; }
  header h1 { margin: 0 12px 0 0; font-size: 18px; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .status { padding: 2px 10px; border-radius: 10px; font-weight: 600; background: #374151; }
  .status-alive { background: var(--ok); }
  .status-stale, .status-stopped { background: var(--warn); }
  .status-halted { background: var(--bad); }
  .muted { color: var(--muted); }
  header .muted { color: #9ca3af; }
  #empty, #problem { padding: 12px 16px; border-radius: 6px; }
  #empty { background: #eff6ff; border: 1px solid #bfdbfe; }
  #problem { background: #fef2f2; border: 1px solid #fecaca; color: var(--bad); }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
  .card .label { color: var(--muted); font-size: 12px; }
  .card .value { font-size: 18px; font-weight: 600; }
  .pos { color: var(--ok); }
  .neg { color: var(--bad); }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.wrap { white-space: normal; }
  .risk-row { display: grid; grid-template-columns: 170px 1fr 260px; gap: 10px; align-items: center; padding: 3px 0; }
  .bar { height: 12px; background: #f3f4f6; border-radius: 6px; overflow: hidden; }
  .fill { height: 100%; background: var(--bar); }
  .risk-row.breached .fill { background: var(--bad); }
  .risk-row.breached .risk-value { color: var(--bad); font-weight: 600; }
  .risk-row.informational .fill { background: #9ca3af; }
  #equity-plot { height: 320px; }
</style>
<script src="/static/plotly.min.js"></script>
</head>
<body>
<header>
  <h1>AutoTrader</h1>
  <span id="robot-status" class="status status-none" data-status="none">connecting</span>
  <span id="robot-name"></span>
  <span id="robot-mode" class="muted"></span>
  <span id="heartbeat" class="muted"></span>
  <span id="connection" class="muted" data-connection="connecting">connecting</span>
</header>
<main>
  <div id="problem" hidden></div>
  <div id="empty" hidden>No robot data yet: this state store has no heartbeat, ledger, equity or signals.
    Start the robot with <code>autotrader autotrade</code> on this store and this page fills in by itself.</div>
  <div class="cards" id="summary">
    <div class="card"><div class="label">Equity (USDT)</div><div class="value" id="equity">n/a</div></div>
    <div class="card"><div class="label">Cash (USDT)</div><div class="value" id="cash">n/a</div></div>
    <div class="card"><div class="label">Today's P&amp;L (USDT)</div><div class="value" id="today-pnl">n/a</div></div>
    <div class="card"><div class="label">Drawdown from peak</div><div class="value" id="drawdown">n/a</div></div>
    <div class="card"><div class="label">Exposure (USDT)</div><div class="value" id="exposure">n/a</div></div>
    <div class="card"><div class="label">Risk state</div><div class="value" id="risk-state">n/a</div></div>
    <div class="card"><div class="label">Kill switch</div><div class="value" id="kill-switch">n/a</div></div>
    <div class="card"><div class="label">Exchange faults (24 h)</div><div class="value" id="faults">n/a</div></div>
  </div>
  <section>
    <h2>Equity</h2>
    <div id="equity-chart"><div id="equity-plot"></div><p id="equity-empty" class="muted" hidden></p></div>
  </section>
  <section>
    <h2>Risk usage against limits</h2>
    <div id="risk"><p class="muted">No limits recorded yet.</p></div>
  </section>
  <section>
    <h2>Positions</h2>
    <table id="positions">
      <thead><tr><th>Symbol</th><th>Side</th><th class="num">Qty</th><th class="num">Entry</th>
        <th class="num">Price</th><th class="num">Value (USDT)</th><th class="num">Unrealised P&amp;L</th>
        <th class="num">Stop</th><th class="num">Take-profit</th><th>Since (UTC)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Open orders</h2>
    <table id="orders">
      <thead><tr><th>Client order id</th><th>Symbol</th><th>Side</th><th>Type</th><th>Kind</th>
        <th class="num">Qty</th><th class="num">Filled</th><th class="num">Price</th><th class="num">Trigger</th>
        <th>Status</th><th>Created (UTC)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Signals (latest 50)</h2>
    <table id="signals">
      <thead><tr><th>Decided (UTC)</th><th>Signal id</th><th>Symbol</th><th>Direction</th>
        <th class="num">Confidence</th><th>Outcome</th><th>Reason</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Recent events</h2>
    <table id="events">
      <thead><tr><th>Time (UTC)</th><th>Kind</th><th>Symbol</th><th>Detail</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <p id="updated" class="muted"></p>
</main>
<script id="initial-snapshot" type="application/json">__INITIAL_SNAPSHOT__</script>
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const $ = (id) => document.getElementById(id);
let latest = null;
let offsetMs = 0;  // server clock minus this browser's clock
let polling = false;

function num(v, digits) {
  return v.toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
}
function usd(v, sign) {
  if (v === null || v === undefined) return "n/a";
  return (sign && v > 0 ? "+" : "") + num(v, 2);
}
function pct(v) { return v === null || v === undefined ? "n/a" : (100 * v).toFixed(2) + "%"; }
function qty(v) { return v === null || v === undefined ? "" : String(Number(v.toPrecision(10))); }
function price(v) {
  if (v === null || v === undefined) return "";
  return v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 8});
}
function exitLevel(level, kind, where, distance, missing) {
  if (level === null || level === undefined) return missing;
  const place = where === "robot-side" ? "robot-side" : where === "exchange" ? "resting" : "";
  const away = distance === null || distance === undefined ? "" : distance >= 0 ? pct(distance) + " away"
    : "passed by " + pct(-distance);
  return price(level) + " (" + [kind, place, away].filter(Boolean).join(", ") + ")";
}
function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : ""; }
function signClass(v) { return v > 0 ? "pos" : v < 0 ? "neg" : ""; }

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = "value " + cls;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function fillTable(id, items, key, columns, emptyText) {
  const body = $(id).tBodies[0];
  const rows = [];
  for (const item of items) {
    const tr = document.createElement("tr");
    tr.dataset.key = item[key];
    for (const [value, cls] of columns(item)) cell(tr, value, cls);
    rows.push(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "none";
    const td = document.createElement("td");
    td.colSpan = $(id).tHead.rows[0].cells.length;
    td.className = "muted";
    td.textContent = emptyText;
    tr.appendChild(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function renderStatus(s) {
  const r = s.robot;
  const el = $("robot-status");
  const labels = {alive: "ALIVE", stale: "STALE", stopped: "STOPPED", halted: "HALTED", none: "NO ROBOT DATA"};
  el.textContent = labels[r.status] || r.status.toUpperCase();
  el.className = "status status-" + r.status;
  el.dataset.status = r.status;
  $("robot-name").textContent = r.name ? r.name + (r.pid ? " (pid " + r.pid + ")" : "") : "";
  $("robot-mode").textContent = r.mode ? r.mode + " mode" : "";
  renderHeartbeat();
}

function renderHeartbeat() {
  if (!latest || latest.robot.heartbeat_ms === null) { $("heartbeat").textContent = ""; return; }
  const age = Math.max(0, (Date.now() + offsetMs - latest.robot.heartbeat_ms) / 1000);
  const shown = age < 120 ? age.toFixed(0) + " s" : age < 7200 ? (age / 60).toFixed(0) + " min"
    : (age / 3600).toFixed(1) + " h";
  $("heartbeat").textContent = "heartbeat " + shown + " ago; market time " + when(latest.robot.market_at) + " UTC";
}

function renderAccount(s) {
  const a = s.account;
  setText("equity", usd(a.equity));
  setText("cash", usd(a.cash));
  setText("today-pnl", usd(a.today_pnl, true), signClass(a.today_pnl));
  setText("drawdown", pct(a.drawdown), a.drawdown > 0 ? "neg" : "");
  setText("exposure", usd(a.exposure));
  const risk = s.risk;
  setText("risk-state", risk.state + (risk.halted && risk.halted_reason ? " (" + risk.halted_reason + ")" : ""),
    risk.halted ? "neg" : "");
  setText("kill-switch", risk.kill_switch ? "ENGAGED" : "off", risk.kill_switch ? "neg" : "");
  setText("faults", String(s.fault_count), s.fault_count ? "neg" : "");
}

function renderChart(s) {
  const curve = s.equity_curve;
  const empty = $("equity-empty");
  if (!curve.points) {
    empty.hidden = false;
    empty.textContent = "No equity snapshots yet.";
    if (window.Plotly) Plotly.purge("equity-plot");
    return;
  }
  if (!window.Plotly) {
    empty.hidden = false;
    empty.textContent = "The chart library did not load (/static/plotly.min.js).";
    return;
  }
  empty.hidden = true;
  const x = curve.ts_ms.map((ms) => new Date(ms).toISOString().replace("T", " ").replace("Z", ""));
  const trace = {x: x, y: curve.equity, type: "scatter", mode: "lines", name: "equity", line: {color: "#2563eb"}};
  const layout = {margin: {l: 60, r: 20, t: 10, b: 40}, xaxis: {type: "date", title: {text: "UTC"}},
                  yaxis: {title: {text: "USDT"}}, showlegend: false};
  Plotly.react("equity-plot", [trace], layout, {displayModeBar: false, responsive: true});
}

function renderRisk(s) {
  const box = $("risk");
  const rows = [];
  for (const u of s.risk.usage) {
    const row = document.createElement("div");
    row.className = "risk-row" + (u.breached ? " breached" : "") + (u.informational ? " informational" : "");
    row.dataset.limit = u.name;
    const name = document.createElement("span");
    name.className = "risk-name";
    name.textContent = u.name;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = Math.max(0, Math.min(1, u.ratio || 0)) * 100 + "%";
    bar.appendChild(fill);
    const value = document.createElement("span");
    value.className = "risk-value";
    const ratio = u.ratio === null ? "" : " (" + (100 * u.ratio).toFixed(0) + "%)";
    value.textContent = num(u.used, 2) + " / " + num(u.limit, 2) + " " + u.unit + ratio + (u.note ? " " + u.note : "");
    row.append(name, bar, value);
    rows.push(row);
  }
  if (s.risk.min_confidence !== null) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "min confidence " + num(s.risk.min_confidence, 2) + " (signals below it are skipped)";
    rows.push(p);
  }
  if (!rows.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No limits recorded yet.";
    rows.push(p);
  }
  box.replaceChildren(...rows);
}

function renderTables(s) {
  fillTable("positions", s.positions, "symbol", (p) => [
    [p.symbol], [p.side], [qty(p.qty), "num"], [price(p.entry_price), "num"], [price(p.price), "num"],
    [usd(p.value), "num"], [usd(p.unrealised, true), "num " + signClass(p.unrealised)],
    [exitLevel(p.stop, p.stop_kind, p.stop_where, p.stop_distance, "NO STOP"), "num" + (p.stop === null ? " neg" : "")],
    [exitLevel(p.take_profit, "", p.take_profit_where, p.take_profit_distance, "none"), "num"], [when(p.since_at)],
  ], "No open positions.");
  fillTable("orders", s.orders, "client_order_id", (o) => [
    [o.client_order_id], [o.symbol], [o.side], [o.type], [o.kind], [qty(o.qty), "num"], [qty(o.filled_qty), "num"],
    [price(o.price), "num"], [price(o.trigger_price), "num"], [o.status], [when(o.created_at)],
  ], "No open orders.");
  fillTable("signals", s.signals, "signal_id", (d) => [
    [when(d.decided_at)], [d.signal_id], [d.symbol], [d.direction_label], [num(d.confidence, 2), "num"],
    [d.outcome], [d.reason, "wrap"],
  ], "No signals yet.");
  fillTable("events", s.events, "ts_ms", (e) => [[when(e.at)], [e.kind], [e.symbol || ""], [e.detail, "wrap"]],
    "No events yet.");
}

function render(s) {
  latest = s;
  offsetMs = s.generated_ms - Date.now();
  $("problem").hidden = true;
  $("empty").hidden = s.has_data;
  renderStatus(s);
  renderAccount(s);
  renderRisk(s);
  renderTables(s);
  renderChart(s);
  $("updated").textContent = "Updated " + when(s.generated_at) + " UTC from the state store.";
  document.body.dataset.rendered = String(s.generated_ms);
}

function showProblem(message) {
  const el = $("problem");
  el.hidden = false;
  el.textContent = "The state store did not answer: " + message;
}

function setConnection(state) {
  const el = $("connection");
  el.dataset.connection = state;
  el.textContent = {live: "live (stream)", polling: "polling", reconnecting: "reconnecting", offline: "offline"}[state]
    || state;
}

function startPolling() {
  if (polling) return;
  polling = true;
  setConnection("polling");
  const tick = () => {
    fetch("/api/snapshot", {cache: "no-store"})
      .then((r) => r.json().then((body) => {
        if (r.ok) { render(body); setConnection("polling"); } else showProblem(body.error);
      }))
      .catch(() => setConnection("offline"))
      .finally(() => setTimeout(tick, REFRESH_MS));
  };
  tick();
}

function connect() {
  if (!("EventSource" in window)) { startPolling(); return; }
  const stream = new EventSource("/api/stream");
  let received = false;
  stream.addEventListener("snapshot", (ev) => {
    received = true;
    if (!polling) setConnection("live");
    render(JSON.parse(ev.data));
  });
  stream.addEventListener("problem", (ev) => showProblem(JSON.parse(ev.data).error));
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) { stream.close(); startPolling(); }
    else if (!polling) setConnection("reconnecting");
  });
  setTimeout(() => { if (!received) { stream.close(); startPolling(); } }, Math.max(5000, 3 * REFRESH_MS));
}

const initial = JSON.parse($("initial-snapshot").textContent);
if (initial.error) showProblem(initial.error); else render(initial);
setInterval(renderHeartbeat, 1000);
connect();
</script>
</body>
</html>
"""
