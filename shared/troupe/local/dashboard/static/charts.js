// A line chart of one metric per model version, with deployments, promotions, rollbacks,
// canary passes and alarms marked on the time axis.
const NS = "http://www.w3.org/2000/svg";
const LABELS = { "model-deployed": "deploy", "model-promoted": "promote",
                 "model-rolled-back": "rollback", "metric-degraded": "alarm", "canary-passed": "canary ok" };
const COLORS = ["#3b6ea5", "#c9822b", "#5a9e6f", "#8e7cc3", "#b42318", "#4b5563"];

function add(parent, tag, attributes, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.append(node);
  return node;
}

export function drawChart(container, { title, unit, series, marks, start, end }) {
  const width = 420, height = 200, left = 48, right = 10, top = 22, bottom = 26;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  add(svg, "text", { x: left, y: 14 }, title);
  const points = Object.values(series).flat();
  const values = points.map((p) => p[1]);
  let low = Math.min(0, ...values), high = Math.max(...values, 0);
  if (high === low) high = low + 1;
  const x = (t) => left + ((t - start) / Math.max(end - start, 1)) * (width - left - right);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  const axis = add(svg, "g", { class: "axis" });
  add(axis, "line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom });
  add(axis, "line", { x1: left, y1: top, x2: left, y2: height - bottom });
  for (const v of [low, (low + high) / 2, high]) {
    add(axis, "text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, `${+v.toPrecision(3)}${unit}`);
  }
  for (const [t, anchor] of [[start, "start"], [(start + end) / 2, "middle"], [end, "end"]]) {
    add(axis, "text", { x: x(t), y: height - 8, "text-anchor": anchor },
      new Date(t * 1000).toLocaleTimeString([], { hour12: false }));
  }
  const versions = Object.keys(series).sort();
  versions.forEach((version, index) => {
    const line = series[version].map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    if (line) add(svg, "polyline", { points: line, fill: "none", stroke: COLORS[index % COLORS.length],
                                     "stroke-width": 1.6, "data-version": version });
  });
  for (const mark of marks || []) {
    if (!mark.time || mark.time < start || mark.time > end) continue;
    const group = add(svg, "g", { class: `mark ${mark.kind}`, "data-kind": mark.kind });
    add(group, "line", { x1: x(mark.time), y1: top, x2: x(mark.time), y2: height - bottom });
    add(group, "text", { x: x(mark.time) + 2, y: top + 8 }, `${LABELS[mark.kind] || mark.kind} ${mark.version || ""}`);
    add(group, "title", {}, `${mark.kind} ${mark.version || ""} ${mark.detail || ""}`);
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  versions.forEach((version, index) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[index % COLORS.length];
    item.append(swatch, version);
    legend.append(item);
  });
  if (!versions.length) legend.textContent = "no data yet";
  container.replaceChildren(svg, legend);
}
