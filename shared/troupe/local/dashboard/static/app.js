// The dashboard: one page, four views chosen by the URL's fragment, refreshed by
// server-sent events. Every text from the runtime goes in through textContent.
import { drawGraph } from "/static/graph.js";
import { drawChart } from "/static/charts.js";

const view = document.getElementById("view");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
let onLive = null; // the current view's answer to a live update
let navigation = 0; // counts route() calls: only the latest one's view may render

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
  if (!response.ok) {
    const message = (body && (body.error || body.message)) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

export function seconds(value) {
  if (value === null || value === undefined) return "-";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function clock(nanoseconds) {
  if (!nanoseconds) return "";
  return new Date(nanoseconds / 1e6).toLocaleTimeString([], { hour12: false }) +
    "." + String(Math.floor(nanoseconds / 1e6) % 1000).padStart(3, "0");
}

// replaceChildren with the parts a view leaves out (null) left out.
function render(...parts) {
  view.replaceChildren(...parts.filter((part) => part !== null && part !== undefined));
}

// Thrown by viewData when the user navigated on while a view's data was on its way.
class Superseded extends Error {}

// A view's data, fetched for the navigation that is showing the view. Data that arrives
// after a newer navigation started is dropped: the slower view would otherwise render over
// the newer one, and take its live updates over.
async function viewData(path) {
  const ticket = navigation;
  const body = await api(path);
  if (ticket !== navigation) throw new Superseded();
  return body;
}

function failure(error) {
  view.replaceChildren(el("p", { class: "notice" }, String(error.message || error)));
}

// -- choreography ------------------------------------------------------------------------
async function showGraph() {
  const graph = await viewData("/api/graph");
  const pending = graph.functions.some((f) => f.consumes === null && !f.any);
  render(
    el("h2", {}, "The choreography, as deployed"),
    el("p", { class: "muted" }, "Event types (rounded) flow through live Triggers (green; red when not " +
      "Ready) to the functions that consume them. A dashed type is one no Trigger delivers."),
    pending ? el("p", { class: "muted", id: "declarations-pending" },
      "reading what each function declares it consumes…") : null,
    el("div", { id: "graph" }),
    el("h3", {}, "Triggers"),
    triggerTable(graph.triggers),
    el("h3", {}, "Functions"),
    functionTable(graph.functions));
  drawGraph(document.getElementById("graph"), graph);
  if (pending) setTimeout(() => { if (location.hash.startsWith("#/graph")) route(); }, 1500);
}

function triggerTable(triggers) {
  return el("table", { id: "triggers" },
    el("tr", {}, ["trigger", "broker", "delivers", "to", "ready"].map((h) => el("th", {}, h))),
    triggers.map((t) => el("tr", { "data-trigger": t.name },
      el("td", {}, t.name), el("td", {}, t.broker || ""), el("td", {}, t.types.join(", ")),
      el("td", {}, t.subscriber || ""),
      el("td", { class: t.ready ? "ok" : "bad" }, t.ready ? "yes" : `no: ${t.reason}`))));
}

function functionTable(functions) {
  return el("table", { id: "functions" },
    el("tr", {}, ["function", "ready", "consumes (declared)", "emits"].map((h) => el("th", {}, h))),
    functions.map((f) => el("tr", { "data-function": f.name },
      el("td", {}, f.name), el("td", { class: f.ready ? "ok" : "bad" }, f.ready ? "yes" : "no"),
      el("td", {}, f.any ? "any type" : f.consumes === null ? (f.declaration_error || "…")
        : f.consumes.join(", ") || "no events (an HTTP service)"),
      el("td", {}, f.emits.join(", ")))));
}

// -- runs --------------------------------------------------------------------------------
async function showRuns() {
  const seen = new Set();
  const table = el("table", { id: "runs" });
  const ticks = el("input", { type: "checkbox", id: "show-ticks" });
  render(el("h2", {}, "Runs"),
    el("p", { class: "muted" }, "Each run is the chain of events one event started (its runid). " +
      "New runs appear as they happen."),
    el("label", {}, ticks, " show the monitor's quiet ticks (a ping that caused nothing)"), table);
  async function refresh() {
    const { runs: all } = await api("/api/runs");
    const runs = ticks.checked ? all : all.filter((run) => !(run.first_type === "ping" && run.events <= 1));
    table.replaceChildren(
      el("tr", {}, ["run", "started by", "started", "took", "events", "spans", "errors"]
        .map((h) => el("th", {}, h))),
      ...runs.map((run) => {
        const row = el("tr", { class: "clickable" + (seen.size && !seen.has(run.runid) ? " fresh" : ""),
                               "data-runid": run.runid,
                               onclick: () => { location.hash = `#/runs/${encodeURIComponent(run.runid)}`; } },
          el("td", {}, run.runid.slice(0, 8)), el("td", {}, run.first_type || ""),
          el("td", {}, clock(run.start_ns)),
          el("td", { class: "num" }, run.start_ns && run.end_ns ? seconds((run.end_ns - run.start_ns) / 1e9) : "-"),
          el("td", { class: "num" }, run.events), el("td", { class: "num" }, run.spans),
          el("td", { class: "num" + (run.errors ? " bad" : "") }, run.errors));
        return row;
      }));
    for (const run of runs) seen.add(run.runid);
  }
  ticks.addEventListener("change", () => refresh());
  onLive = debounce(refresh, 300); // set before the wait: its table is on the page already
  await refresh();
}

async function showRun(runid) {
  // Listening before the data is asked for: an update that comes while it is on its way
  // re-renders the page, where it would otherwise be lost between the answer and render.
  onLive = debounce((message) => {
    if (!message.runids || message.runids.includes(runid) || message.runid === runid) route();
  }, 500);
  const run = await viewData(`/api/runs/${encodeURIComponent(runid)}`);
  const detail = el("pre", { id: "detail" }, "Click a hop or a span to see its event.");
  const events = new Map(run.events.map((e) => [e.attributes.id, e]));
  const show = (title, value) => { detail.textContent = `${title}\n\n${JSON.stringify(value, null, 2)}`; };
  const hops = el("table", { id: "hops" },
    el("tr", {}, ["#", "start", "function", "event", "queue wait", "cold start", "handler", "attempts", "outcome"]
      .map((h) => el("th", {}, h))),
    run.hops.map((hop, index) => el("tr", { class: "clickable", "data-hop": index,
                                            onclick: () => show(`event ${hop.event_id || ""}`, events.get(hop.event_id) || hop) },
      el("td", { class: "num" }, index + 1), el("td", {}, clock(hop.start_ns)),
      el("td", {}, hop.service), el("td", {}, shortType(hop.event_type)),
      el("td", { class: "num" }, seconds(hop.queue_wait_s)),
      el("td", { class: "num" + (hop.cold_start_s ? " warn" : "") }, seconds(hop.cold_start_s)),
      el("td", { class: "num" }, seconds(hop.handler_s)),
      el("td", { class: "num" + (hop.attempts > 1 ? " warn" : "") }, hop.attempts || ""),
      el("td", { class: hop.outcome === "ok" ? "ok" : "bad" }, hop.outcome))));
  render(
    el("h2", {}, `Run ${runid}`),
    el("p", {}, el("a", { href: "#/runs" }, "← all runs")),
    run.spans.length ? null : el("p", { class: "notice" }, "No spans yet: the trace is on its way."),
    el("h3", {}, "Hops"), hops,
    el("div", { class: "panel" },
      el("div", {}, el("h3", {}, "Waterfall"), waterfall(run.spans, events, show)),
      el("div", {}, el("h3", {}, "Event data"), detail)),
    el("h3", {}, `Events (${run.events.length})`),
    el("table", { id: "events" },
      el("tr", {}, ["time", "type", "source", "id"].map((h) => el("th", {}, h))),
      run.events.map((e) => el("tr", { class: "clickable", onclick: () => show(`event ${e.attributes.id}`, e) },
        el("td", {}, e.attributes.time || ""), el("td", {}, shortType(e.attributes.type)),
        el("td", {}, e.attributes.source), el("td", {}, e.attributes.id)))));
}

function shortType(type) {
  if (!type) return "";
  const known = { "dev.knative.sources.ping": "ping", "dev.troupe.model.rolledback": "model-rolled-back" };
  if (known[type]) return known[type];
  return type.startsWith("dev.troupe.") ? type.slice(11).replace(".", "-") : type;
}

function waterfall(spans, events, show) {
  const svgNS = "http://www.w3.org/2000/svg";
  const ordered = treeOrder(spans);
  if (!ordered.length) return el("p", { class: "muted" }, "no spans");
  const start = Math.min(...spans.map((s) => s.start_ns));
  const end = Math.max(...spans.map((s) => s.end_ns));
  const width = 760, label = 250, row = 18, height = ordered.length * row + 24;
  const scale = (t) => label + ((t - start) / Math.max(end - start, 1)) * (width - label - 10);
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("id", "waterfall");
  const add = (parent, tag, attributes, text) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  };
  add(svg, "text", { x: label, y: 12 }, "0");
  add(svg, "text", { x: width - 10, y: 12, "text-anchor": "end" }, seconds((end - start) / 1e9));
  ordered.forEach(({ span, depth }, index) => {
    const y = 20 + index * row;
    const role = span.attributes["troupe.span"] || "other";
    const group = add(svg, "g", { class: "span", "data-role": role, "data-span": span.span_id, "data-service": span.service });
    add(group, "text", { x: 4 + depth * 10, y: y + 12 }, `${span.service}: ${span.name}`.slice(0, 40));
    const bar = add(group, "rect", { x: scale(span.start_ns), y: y + 2, height: row - 5,
      width: Math.max(scale(span.end_ns) - scale(span.start_ns), 1.5),
      class: `bar ${role}${span.error ? " failed" : ""}` });
    add(bar, "title", {}, `${span.name}: ${seconds((span.end_ns - span.start_ns) / 1e9)}${span.error ? " (" + span.error + ")" : ""}`);
    group.style.cursor = "pointer";
    group.addEventListener("click", () => {
      const event = events.get(span.attributes["cloudevents.event_id"]);
      show(`${span.name} (${role}), ${seconds((span.end_ns - span.start_ns) / 1e9)}`,
        { span: span.attributes, error: span.error, event: event || null });
    });
  });
  return svg;
}

function treeOrder(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  for (const span of spans) {
    const parent = ids.has(span.parent_id) ? span.parent_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const ordered = [];
  const visit = (parent, depth) => {
    for (const span of (children.get(parent) || []).sort((a, b) => a.start_ns - b.start_ns)) {
      ordered.push({ span, depth });
      visit(span.span_id, depth + 1);
    }
  };
  visit(null, 0);
  return ordered;
}

// -- models ------------------------------------------------------------------------------
const METRICS = [["accuracy", "accuracy", ""], ["psi", "drift (max feature PSI)", ""],
                 ["latency_p95", "p95 latency", "s"]];

async function showModels() {
  const { models, prometheus } = await viewData("/api/models");
  const parts = [el("h2", {}, "Models")];
  if (!models.length) parts.push(el("p", { class: "muted" }, "No model yet: run `troupe demo`, or publish data-arrived."));
  for (const model of models) {
    parts.push(el("h3", {}, `${model.name}: champion ${model.champion || "none"}`));
    parts.push(el("table", { class: "versions", "data-model": model.name },
      el("tr", {}, ["version", "created", "metrics", ""].map((h) => el("th", {}, h))),
      model.versions.map((v) => el("tr", {}, el("td", {}, v.version), el("td", {}, v.created || ""),
        el("td", {}, Object.entries(v.metrics || {}).map(([k, x]) => `${k}=${Number(x).toFixed(3)}`).join(" ")),
        el("td", { class: "ok" }, v.version === model.champion ? "champion" : "")))));
    parts.push(el("table", { class: "traffic" },
      el("tr", {}, ["service", "revision", "version", "traffic", "tag"].map((h) => el("th", {}, h))),
      model.serving.map((t) => el("tr", {}, el("td", {}, t.service), el("td", {}, t.revision),
        el("td", {}, t.version || ""), el("td", { class: "num" }, `${t.percent}%`), el("td", {}, t.tag || "")))));
    if (model.series_problem) parts.push(el("p", { class: "notice" }, model.series_problem));
    const charts = el("div", { class: "charts" });
    for (const [key, title, unit] of METRICS) {
      const box = el("div", { class: "chart", "data-metric": key });
      charts.append(box);
      drawChart(box, { title, unit, series: (model.series || {})[key] || {}, marks: model.marks,
                       start: model.start, end: model.end });
    }
    parts.push(charts);
  }
  if (!prometheus) parts.push(el("p", { class: "muted" }, "Prometheus is not running: no plots."));
  render(...parts);
  onLive = debounce((message) => { if (message.type && /model|metric|canary/.test(message.type)) route(); }, 1000);
}

// -- dead letters ------------------------------------------------------------------------
async function showDeadLetters() {
  const { dead_letters: letters } = await viewData("/api/dead-letters");
  const said = el("p", { id: "replay-result", class: "muted" }, "");
  const newId = el("input", { type: "checkbox", id: "new-id" });
  render(el("h2", {}, "Dead letters"),
    el("p", { class: "muted" }, "Events the broker gave up delivering, with the answer it last got."),
    el("label", {}, newId, " replay with a new id (after fixing the cause of a 422)"), said,
    letters.length ? el("table", { id: "dead-letters" },
      el("tr", {}, ["received", "type", "subscriber", "status", "answer", "run", ""].map((h) => el("th", {}, h))),
      letters.map((letter) => el("tr", { "data-key": letter.key },
        el("td", {}, letter.received || ""), el("td", {}, shortType(letter.type)),
        el("td", {}, letter.subscriber || ""), el("td", { class: "bad" }, letter.status ?? "-"),
        el("td", {}, el("code", {}, String(letter.answer || "").slice(0, 200))),
        el("td", {}, letter.runid ? el("a", { href: `#/runs/${encodeURIComponent(letter.runid)}` }, letter.runid.slice(0, 8)) : ""),
        el("td", {}, el("button", { class: "replay", onclick: () => replay(letter.key, newId.checked, said) }, "replay")))))
      : el("p", { class: "muted", id: "no-dead-letters" }, "No dead letters."));
  onLive = null;
}

async function replay(key, newId, said) {
  try {
    const answer = await api("/api/dead-letters/replay", {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ key, new_id: newId }) });
    said.className = "ok";
    said.textContent = `replayed ${answer.replayed} as event ${answer.id}`;
  } catch (error) {
    said.className = "bad";
    said.textContent = `replay failed: ${error.message}`;
  }
}

// -- routing and live updates ------------------------------------------------------------
function debounce(action, wait) {
  let timer = null;
  let last = null;
  const debounced = (message) => {
    last = message;
    clearTimeout(timer);
    timer = setTimeout(() => action(last), wait);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

async function route() {
  const ticket = ++navigation;
  const [page, ...rest] = (location.hash.replace(/^#\/?/, "") || "graph").split("/");
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.dataset.page === page);
  // A refresh the last page scheduled would re-render this one under the user's cursor.
  if (onLive && onLive.cancel) onLive.cancel();
  onLive = null;
  try {
    if (page === "runs" && rest.length) await showRun(decodeURIComponent(rest.join("/")));
    else if (page === "runs") await showRuns();
    else if (page === "models") await showModels();
    else if (page === "dead-letters") await showDeadLetters();
    else await showGraph();
  } catch (error) {
    if (ticket === navigation) failure(error); // else Superseded, or a failure nobody sees
  }
}

function listen() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/stream");
  stream.onopen = () => live.classList.remove("off");
  stream.onerror = () => live.classList.add("off");
  for (const kind of ["event", "spans"]) {
    stream.addEventListener(kind, (message) => { if (onLive) onLive(JSON.parse(message.data)); });
  }
}

window.addEventListener("hashchange", route);
listen();
route();
