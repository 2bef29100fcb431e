// Count console: one ES module over the public API (/series, /query/range, /query/sql, /health, /storage, /status).
// What each view last drew is kept in window.countConsole, so tests and benchmarks can read it.
const $ = (id) => document.getElementById(id);
const state = window.countConsole = { series: [], picked: new Set(), explore: null, sql: null, node: null };
let exploreChart = null, sqlChart = null, refreshTimer = null, nodeTimer = null;
const NODE_REFRESH_MS = 2000;

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${response.status} ${text}`);
  return body;
}

function showError(error) {
  $("error").textContent = error ? error.message : "";
  $("error").hidden = !error;
}

async function guarded(action) {
  showError(null);
  try { await action(); } catch (error) { showError(error); }
}

function selectView(name) {
  for (const tab of document.querySelectorAll("nav button")) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", on);
    tab.tabIndex = on ? 0 : -1;
    $("view-" + tab.dataset.view).hidden = !on;
  }
  clearInterval(nodeTimer);
  if (name === "node") {
    guarded(loadNode);
    nodeTimer = setInterval(() => guarded(loadNode), NODE_REFRESH_MS);  // only while the view is shown
  }
}

// ---- Explore -------------------------------------------------------------------------------------------------
async function loadSeries() {
  state.series = (await api("/series")).series;
  renderTags();
  renderSeriesList();
}

// Every name and tag key with its values, each with how many series have it (most first); a value filters the list.
const TAG_VALUES_SHOWN = 20;
function renderTags() {
  const keys = new Map();
  const count = (key, value) => {
    const values = keys.get(key) || new Map();
    values.set(value, (values.get(value) || 0) + 1);
    keys.set(key, values);
  };
  for (const s of state.series) {
    count("name", s.name);
    for (const [key, value] of Array.isArray(s.tags) ? s.tags : Object.entries(s.tags || {})) count(key, value);
  }
  $("tag-list").replaceChildren(...[...keys.keys()].sort().map((key) => {
    const values = [...keys.get(key)].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const item = document.createElement("li");
    item.append(Object.assign(document.createElement("span"), { textContent: `${key} (${values.length})` }),
      ...values.slice(0, TAG_VALUES_SHOWN).map(([value, series]) => {
        const button = Object.assign(document.createElement("button"), { textContent: `${value} (${series})` });
        button.dataset.filter = key === "name" ? value : `${key}="${value}"`;
        return button;
      }));
    return item;
  }));
}

function renderSeriesList() {
  const needle = $("search").value.trim().toLowerCase();
  const list = $("series-list");
  list.replaceChildren(...state.series.filter((s) => s.key.toLowerCase().includes(needle)).map((s) => {
    const item = document.createElement("li");
    item.textContent = s.key;
    item.dataset.key = s.key;
    item.tabIndex = 0;
    item.setAttribute("aria-selected", state.picked.has(s.key));
    return item;
  }));
}

function togglePick(item) {
  const key = item.dataset.key;
  if (state.picked.has(key)) state.picked.delete(key); else state.picked.add(key);
  item.setAttribute("aria-selected", state.picked.has(key));
}

// [start, end] in ms: the absolute From/To when both are set, else the preset ending now.
function chosenRange() {
  const from = $("from").valueAsNumber, to = $("to").valueAsNumber, offset = new Date().getTimezoneOffset() * 60000;
  if (!Number.isNaN(from) && !Number.isNaN(to)) return [from + offset, to + offset];
  const end = Date.now();
  return [end - Number($("range").value), end];
}

function autoStep(rangeMs) {
  const width = Math.max(200, $("chart").clientWidth || 800);
  return `${Math.max(1, Math.ceil(rangeMs / width / 1000))}s`;
}

function quoted(value) {
  return '"' + value.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

async function drawExplore() {
  const keys = state.picked.size ? [...state.picked]
    : [...document.querySelectorAll("#series-list li")].map((li) => li.dataset.key);
  if (!keys.length) throw new Error("pick a series first");
  const started = performance.now();
  const [start, end] = chosenRange(), rangeMs = end - start;
  const step = $("step").value.trim() || autoStep(rangeMs);
  const names = [...new Set(state.series.filter((s) => keys.includes(s.key)).map((s) => s.name))];
  const match = names.length === 1 ? names[0] : `{__name__=~${quoted(names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"))}}`;
  const url = `/query/range?match=${encodeURIComponent(match)}&start=${start}&end=${end}&step=${step}` +
    `&aggregation=${$("aggregation").value}`;
  const wanted = new Set(keys);
  const series = (await api(url)).series.filter((s) => wanted.has(s.key));
  state.explore = { url, start, end, step, series };
  exploreChart = plot($("chart"), exploreChart, alignSeries(series), series.map((s) => s.key));
  const points = series.reduce((n, s) => n + s.points.length, 0);
  state.explore.drawnMs = performance.now() - started;
  $("chart").dataset.drawn = String(points);
  $("chart-status").textContent = `${series.length} series, ${points} points, step ${step}, ` +
    `${Math.round(state.explore.drawnMs)} ms`;
}

function alignSeries(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.timestamp)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = series.map((s) => {
    const column = new Array(times.length).fill(null);
    for (const p of s.points) column[index.get(p.timestamp)] = p.value;
    return column;
  });
  return [times.map((t) => t / 1000), ...columns];
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

function plot(target, previous, data, labels) {
  if (previous) previous.destroy();
  target.replaceChildren();
  if (data[0].length === 0) { target.textContent = "no points in this range"; return null; }
  const options = {
    width: Math.max(300, target.clientWidth || 800), height: 320,
    series: [{}, ...labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], spanGaps: true }))],
    legend: { show: labels.length <= 20 },
    axes: [{ stroke: "currentColor" }, { stroke: "currentColor" }],
  };
  return new uPlot(options, data, target);
}

// ---- SQL -----------------------------------------------------------------------------------------------------
const HISTORY_KEY = "count-console-sql-history";

function history() { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); }

function renderHistory() {
  $("history").replaceChildren(new Option("history", ""), ...history().map((q) => new Option(q.slice(0, 80), q)));
}

async function runSql() {
  const sql = $("sql").value;
  const started = performance.now();
  $("sql-status").textContent = "running…";
  try {
    const result = await api("/query/sql", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify({ sql }) });
    state.sql = { sql, ...result };
  } catch (error) {
    $("sql-status").textContent = "";
    throw error;
  }
  localStorage.setItem(HISTORY_KEY, JSON.stringify([sql, ...history().filter((q) => q !== sql)].slice(0, 20)));
  renderHistory();
  renderTable(state.sql);
  renderCsvLink(state.sql);
  sqlChart = chartResult(state.sql);
  $("sql-status").textContent = `${state.sql.rows.length} rows in ${Math.round(performance.now() - started)} ms`;
}

// Syntax highlighting: the textarea's text is transparent over a <pre> holding the same text in coloured spans.
const SQL_TOKENS = /(--[^\n]*)|('(?:[^']|'')*'?)|\b(\d+(?:\.\d+)?)\b|\b(select|from|where|group|by|order|limit|offset|as|and|or|not|in|is|null|join|left|inner|on|with|having|distinct|case|when|then|else|end|asc|desc|between|like|union|all|interval)\b/gi;

function highlightSql() {
  const text = $("sql").value, spans = [];
  let at = 0;
  for (const match of text.matchAll(SQL_TOKENS)) {
    spans.push(document.createTextNode(text.slice(at, match.index)));
    const kind = match[1] ? "com" : match[2] ? "str" : match[3] ? "num" : "kw";
    spans.push(Object.assign(document.createElement("span"), { className: kind, textContent: match[0] }));
    at = match.index + match[0].length;
  }
  spans.push(document.createTextNode(text.slice(at) + "\n"));
  $("sql-highlight").replaceChildren(...spans);
  $("sql-highlight").scrollTop = $("sql").scrollTop;
}

function renderTable({ columns, rows }) {
  $("sql-table").replaceChildren(...tableRows(columns.map((c) => c.name), rows.slice(0, 1000)));
}

function cellText(value) {
  return value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
}

function renderCsvLink({ columns, rows }) {
  const escape = (v) => { const t = cellText(v); return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t; };
  const csv = [columns.map((c) => escape(c.name)), ...rows.map((r) => r.map(escape))].map((r) => r.join(",")).join("\n") + "\n";
  const link = $("csv");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  link.hidden = false;
  $("parquet").hidden = false;
}

// Parquet is written by the node (format=parquet), for the statement the table shows.
async function downloadParquet() {
  const response = await fetch("/query/sql?format=parquet", { method: "POST", body: JSON.stringify({ sql: state.sql.sql }),
                                                              headers: { "Content-Type": "application/json" } });
  if (!response.ok) throw new Error((await response.json()).error);
  const link = Object.assign(document.createElement("a"), { download: "result.parquet",
                                                            href: URL.createObjectURL(await response.blob()) });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function chartResult({ columns, rows }) {
  const time = columns.findIndex((c) => c.type.startsWith("timestamp"));
  const numeric = columns.map((c, i) => [c, i]).filter(([c]) => /^(double|float|int|uint|decimal)/.test(c.type));
  if (sqlChart) sqlChart.destroy();
  $("sql-chart").replaceChildren();
  if (time < 0 || !numeric.length || !rows.length) return null;
  const ordered = [...rows].sort((a, b) => Date.parse(a[time]) - Date.parse(b[time]));
  const data = [ordered.map((r) => Date.parse(r[time]) / 1000), ...numeric.map(([, i]) => ordered.map((r) => r[i]))];
  return plot($("sql-chart"), null, data, numeric.map(([c]) => c.name));
}

// ---- Node ----------------------------------------------------------------------------------------------------
async function loadNode() {
  const [health, storage, status] = await Promise.all([api("/health"), api("/storage"), api("/status")]);
  const previous = state.node && state.node.status;
  // A rate needs two readings of the node's counter (as Prometheus' rate() does): none on the first one.
  const rate = previous ? (status.ingest.points_ingested - previous.ingest.points_ingested) / (status.time - previous.time) : null;
  state.node = { health, storage, status, rate };
  const figures = [["status", health.status], ["version", health.version], ["node", health.node_id],
    ["cluster size", health.cluster_size], ["uptime", `${Math.round(health.uptime_seconds)} s`],
    ["ingest rate", rate === null ? "measuring…" : `${Math.round(Math.max(rate, 0)).toLocaleString()} points/s`],
    ["points ingested", status.ingest.points_ingested.toLocaleString()],
    ["points rejected", status.ingest.points_rejected.toLocaleString()],
    ["points buffered", health.buffered_points], ["damaged files", storage.damaged_files],
    ["WAL", `${storage.wal_segments} segments, ${storage.wal_bytes} bytes`]];
  $("node-health").replaceChildren(...figures.flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: String(v) })]));
  $("node-compaction").textContent = compactionText(status.compaction);
  $("node-storage").replaceChildren(...tableRows(["month", "kind", "blocks", "bytes", "points", "bytes/point"],
    storage.months.map((m) => [m.month, m.kind, m.blocks, m.bytes, m.rows, m.bytes_per_row])));
  $("node-cluster").hidden = !status.cluster;
  if (status.cluster) {
    $("node-members").replaceChildren(...tableRows(["node", "address", "state", "in ring", "ring share", "hints pending", "last contact", "error"],
      status.cluster.members.map((m) => [m.node + (m.self ? " (this node)" : ""), m.address, m.state, m.in_ring ? "yes" : "no",
        `${(m.ring_share * 100).toFixed(1)} %`, m.hints_pending,
        m.last_contact ? `${Math.max(0, Math.round(status.time - m.last_contact))} s ago` : "—", m.error || ""])));
  }
}

function compactionText(compaction) {
  const last = compaction.last;
  const ran = !last ? "No compaction has been needed yet."
    : last.error ? `The last compaction failed ${ago(last.finished)}: ${last.error}.`
    : `The last compaction finished ${ago(last.finished)}: ${last.jobs} jobs in ${last.seconds} s.`;
  const pending = compaction.pending.length === 0 ? "Nothing pending."
    : `Pending: ${compaction.pending.map((job) => `${job.month} (${job.reasons.join(", ")})`).join("; ")}.`;
  return `${ran} ${pending}`;
}

function ago(seconds) {
  return `${Math.max(0, Math.round(Date.now() / 1000 - seconds))} s ago`;
}

function tableRows(headings, rows) {
  const head = document.createElement("tr");
  head.append(...headings.map((t) => Object.assign(document.createElement("th"), { textContent: t })));
  return [head, ...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells.map((v) => Object.assign(document.createElement("td"), { textContent: cellText(v) })));
    return tr;
  })];
}

// ---- Wiring --------------------------------------------------------------------------------------------------
document.querySelector("nav").addEventListener("click", (e) => { if (e.target.dataset.view) selectView(e.target.dataset.view); });
document.querySelector("nav").addEventListener("keydown", (e) => {
  const tabs = [...document.querySelectorAll("nav button")], at = tabs.indexOf(document.activeElement);
  if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
  const next = tabs[(at + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  next.focus();
  selectView(next.dataset.view);
});
$("search").addEventListener("input", renderSeriesList);
$("tag-list").addEventListener("click", (e) => {
  if (!e.target.dataset.filter) return;
  $("search").value = e.target.dataset.filter;
  renderSeriesList();
});
$("series-list").addEventListener("click", (e) => { if (e.target.dataset.key) togglePick(e.target); });
$("series-list").addEventListener("keydown", (e) => {
  if ((e.key === "Enter" || e.key === " ") && e.target.dataset.key) { e.preventDefault(); togglePick(e.target); }
});
$("draw").addEventListener("click", () => guarded(drawExplore));
$("refresh").addEventListener("change", (e) => {
  clearInterval(refreshTimer);
  if (e.target.checked) refreshTimer = setInterval(() => guarded(drawExplore), 10000);
});
$("run").addEventListener("click", () => guarded(runSql));
$("parquet").addEventListener("click", () => guarded(downloadParquet));
$("sql").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); guarded(runSql); }
});
$("history").addEventListener("change", (e) => { if (e.target.value) { $("sql").value = e.target.value; highlightSql(); } });
$("sql").addEventListener("input", highlightSql);
$("sql").addEventListener("scroll", highlightSql);
highlightSql();
renderHistory();
guarded(loadSeries);
