// The choreography as an SVG graph: rows by distance from where events enter (types that
// come from outside the functions), event types and functions alternating, each Trigger
// drawn on the edge from the type it delivers to its subscriber.
const NS = "http://www.w3.org/2000/svg";
const ROW = 66, NODE_W = 150, NODE_H = 26, GAP = 24, MARGIN = 20;

function add(parent, tag, attributes, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.append(node);
  return node;
}

export function drawGraph(container, graph) {
  const nodes = new Map(); // id -> {id, kind, label, data}
  const edges = []; // {from, to, kind, trigger}
  const node = (id, kind, label, data) => { if (!nodes.has(id)) nodes.set(id, { id, kind, label, data }); return id; };
  for (const type of graph.types) node(`t:${type.type}`, "type", type.short, type);
  for (const fn of graph.functions) {
    node(`f:${fn.name}`, "function", fn.name, fn);
    for (const type of fn.emits) if (nodes.has(`t:${type}`)) edges.push({ from: `f:${fn.name}`, to: `t:${type}`, kind: "emits" });
  }
  for (const trigger of graph.triggers) {
    const target = nodes.has(`f:${trigger.subscriber}`) ? `f:${trigger.subscriber}`
      : node(`s:${trigger.subscriber}`, "function", trigger.subscriber || "?", { name: trigger.subscriber });
    const types = trigger.types.length ? trigger.types : [null];
    for (const type of types) {
      const from = type ? `t:${type}` : node(`x:${trigger.name}`, "type", "(any type)", { unconsumed: false });
      edges.push({ from, to: target, kind: "delivers", trigger });
    }
  }
  // Rows: the longest path from where events enter (types no deployed function produces),
  // once the edges that close a loop (a retrain, a rollback) are set aside, so the
  // lifecycle reads from top to bottom and loops go back up on the right.
  const outgoing = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const edge of edges) outgoing.get(edge.from).push(edge);
  const roots = graph.types.filter((t) => !t.producers.length || t.outside.length === t.producers.length)
    .map((t) => `t:${t.type}`);
  const state = new Map(); // 1: on the path, 2: done
  const visit = (id) => {
    state.set(id, 1);
    for (const edge of outgoing.get(id)) {
      if (state.get(edge.to) === 1) edge.back = true;
      else if (!state.has(edge.to)) visit(edge.to);
    }
    state.set(id, 2);
  };
  for (const id of [...roots, ...nodes.keys()]) if (!state.has(id)) visit(id);
  const layer = new Map();
  const depth = (id) => { // what is left once the back edges are out has no cycle
    if (layer.has(id)) return layer.get(id);
    const incoming = edges.filter((e) => e.to === id && !e.back);
    const value = incoming.length ? 1 + Math.max(...incoming.map((e) => depth(e.from))) : 0;
    layer.set(id, value);
    return value;
  };
  for (const id of nodes.keys()) depth(id);
  // A type that enters from outside sits just above what consumes it (the PingSource's
  // ticks beside the monitor, not at the top); what has no edge at all goes last.
  const last = Math.max(0, ...layer.values()) + 1;
  for (const id of nodes.keys()) {
    const out = outgoing.get(id).filter((e) => !e.back);
    const into = edges.some((e) => e.to === id && !e.back);
    if (!into && out.length) layer.set(id, Math.min(...out.map((e) => layer.get(e.to))) - 1);
    else if (!into && !edges.some((e) => e.to === id)) layer.set(id, last);
  }
  const rows = new Map();
  for (const [id, depth] of layer) { if (!rows.has(depth)) rows.set(depth, []); rows.get(depth).push(id); }
  const widest = Math.max(...[...rows.values()].map((r) => r.length));
  const width = MARGIN * 2 + widest * (NODE_W + GAP) + 160;
  const depths = [...rows.keys()].sort((a, b) => a - b);
  const height = MARGIN * 2 + depths.length * ROW;
  const place = new Map();
  depths.forEach((depth, index) => {
    const row = rows.get(depth);
    const offset = (width - 160 - row.length * (NODE_W + GAP)) / 2;
    row.forEach((id, i) => place.set(id, { x: offset + i * (NODE_W + GAP), y: MARGIN + index * ROW }));
  });

  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("id", "choreography");
  const edgeLayer = add(svg, "g", {});
  const triggerLayer = add(svg, "g", {});
  const nodeLayer = add(svg, "g", {});
  const drawnTriggers = new Set();
  const labelsInto = new Map(); // labels already above each node: the next goes below them
  for (const edge of edges) {
    const a = place.get(edge.from), b = place.get(edge.to);
    const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
    let path, mid;
    if (!edge.back && b.y > a.y) {
      path = `M${x1},${y1} C${x1},${y1 + 30} ${x2},${y2 - 30} ${x2},${y2}`;
      mid = { x: (x1 + x2) / 2, y: (y1 + y2) / 2 };
    } else { // back to an earlier row: around the right-hand side
      const side = width - 150 + (edges.indexOf(edge) % 6) * 8;
      path = `M${a.x + NODE_W},${a.y + NODE_H / 2} C${side},${a.y} ${side},${b.y} ${b.x + NODE_W},${b.y + NODE_H / 2}`;
      mid = { x: side - 40, y: (a.y + b.y) / 2 };
    }
    add(edgeLayer, "path", { d: path, class: `edge ${edge.kind}`, "marker-end": "" });
    if (edge.trigger && !drawnTriggers.has(edge.trigger.name + edge.from)) {
      drawnTriggers.add(edge.trigger.name + edge.from);
      const t = edge.trigger;
      const group = add(triggerLayer, "g", { class: `trigger${t.ready ? "" : " not-ready"}`, "data-trigger": t.name });
      const label = t.name;
      const w = Math.min(8 + label.length * 6.2, 200);
      const stacked = labelsInto.get(edge.to) || 0;
      labelsInto.set(edge.to, stacked + 1);
      const sharing = edges.filter((e) => e.to === edge.to && e.trigger && !e.back).length;
      if (!edge.back && sharing > 1) mid.y += stacked * 18 - 9; // one above the other
      add(group, "rect", { x: mid.x - w / 2, y: mid.y - 8, width: w, height: 16, rx: 3 });
      add(group, "text", { x: mid.x, y: mid.y + 4, "text-anchor": "middle" }, label);
      add(group, "title", {}, `Trigger ${t.name}: ${t.ready ? "Ready" : "not Ready: " + t.reason}`);
    }
  }
  for (const [id, info] of nodes) {
    const p = place.get(id);
    const unconsumed = info.kind === "type" && info.data.unconsumed;
    const attributes = { class: `${info.kind}${unconsumed ? " unconsumed" : ""}` };
    if (info.kind === "function") attributes["data-function"] = info.label;
    else attributes["data-type"] = info.data.type || "";
    const group = add(nodeLayer, "g", attributes);
    add(group, "rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: info.kind === "type" ? 13 : 3 });
    add(group, "text", { x: p.x + NODE_W / 2, y: p.y + 17, "text-anchor": "middle" }, info.label);
    add(group, "title", {}, info.kind === "type"
      ? `${info.data.type}${unconsumed ? ": no Trigger delivers it (nobody consumes it)" : ""}`
      : `function ${info.label}`);
  }
  container.replaceChildren(svg);
}
