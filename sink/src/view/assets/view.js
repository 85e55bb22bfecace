// The meshtap live view: polls /v1/live every two seconds and redraws the panels (tables,
// sparklines and the service graph as SVG). No framework, nothing fetched but /v1/live.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fixed(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}
const percent = (share) => (share === null || share === undefined ? "–" : (share * 100).toFixed(1) + "%");
const ms = (value) => (value === null || value === undefined ? "–" : fixed(value, 1) + " ms");

function bytes(perSecond) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = perSecond;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return value.toFixed(unit === 0 ? 0 : 1) + " " + units[unit];
}

// A small trend line of `values` (nulls leave gaps), scaled to its own maximum.
function sparkline(values, kind) {
  const width = 90;
  const height = 20;
  const svg = el("svg:svg", { class: "spark " + kind, width, height, viewBox: `0 0 ${width} ${height}` });
  const numbers = values.filter((v) => v !== null);
  if (numbers.length === 0) return svg;
  const max = Math.max(...numbers) || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  let path = "";
  let pen = "M";
  values.forEach((value, i) => {
    if (value === null) {
      pen = "M";
      return;
    }
    const y = height - 2 - (value / max) * (height - 4);
    path += `${pen}${(i * step).toFixed(1)},${y.toFixed(1)} `;
    pen = "L";
  });
  svg.append(el("svg:path", { d: path.trim() }));
  return svg;
}

function fillRows(table, rows, columns) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { class: "empty", colspan: columns }, "nothing yet")));
  }
  for (const cells of rows) {
    body.append(el("tr", {}, ...cells));
  }
}

// A waypoint reports for ambient workloads; its rows and edges are marked as such.
const isAmbient = (reporter) => reporter === "waypoint";

function reporterCell(reporter) {
  return isAmbient(reporter)
    ? el("td", {}, el("span", { class: "badge" }, "ambient"), " waypoint")
    : el("td", { class: "muted" }, reporter);
}

function renderServices(doc) {
  $("window").textContent = `rates over the last ${doc.window_seconds}s`;
  fillRows("services", doc.services.map((s) => [
    el("td", {}, s.service),
    reporterCell(s.reporter),
    el("td", { class: "num" }, fixed(s.request_rate, 2)),
    el("td", {}, sparkline(s.trend.rate, "rate")),
    el("td", { class: "num" + (s.error_rate > 0 ? " bad" : "") }, percent(s.error_rate)),
    el("td", {}, sparkline(s.trend.error_rate, "errors")),
    el("td", { class: "num" }, ms(s.p50_ms)),
    el("td", { class: "num" }, ms(s.p90_ms)),
    el("td", { class: "num" }, ms(s.p99_ms)),
    el("td", {}, sparkline(s.trend.p99_ms, "latency")),
  ]), 10);
}

// The graph's node of a source workload: the service it serves when its name starts with
// the service's (reviews-v1.default serves reviews.default.svc…), else the workload itself.
function nodeOfWorkload(workload, services) {
  const [name, namespace] = workload.split(".");
  for (const service of services) {
    const [host, serviceNamespace] = service.split(".");
    if (serviceNamespace === namespace && (name === host || name.startsWith(host + "-"))) return service;
  }
  return workload;
}

// A node as the graph labels it: `name.namespace`, or `unknown` for a caller without a sidecar
// (Istio reports its workload and namespace as `unknown`).
function shortName(node) {
  const parts = node.split(".");
  if (parts[0] === "unknown" && (parts.length === 1 || parts[1] === "unknown")) return "unknown";
  return parts.length > 1 ? `${parts[0]}.${parts[1]}` : node;
}

// Layers by longest path from the nodes nothing calls (bounded: cycles stop growing).
function layers(nodes, links) {
  const layer = new Map(nodes.map((n) => [n, 0]));
  for (let round = 0; round < nodes.length; round += 1) {
    let changed = false;
    for (const { from, to } of links) {
      if (from !== to && layer.get(to) < layer.get(from) + 1 && layer.get(from) + 1 < nodes.length) {
        layer.set(to, layer.get(from) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

function renderGraph(doc) {
  const svg = $("graph");
  svg.replaceChildren();
  const services = new Set(doc.edges.map((e) => e.destination));
  const links = doc.edges.map((e) => ({ ...e, from: nodeOfWorkload(e.source, services), to: e.destination }));
  const nodes = [...new Set(links.flatMap((l) => [l.from, l.to]))].sort();
  if (nodes.length === 0) {
    svg.append(el("svg:text", { x: 10, y: 24, class: "empty" }, "no requests yet"));
    return;
  }
  const layer = layers(nodes, links);
  const columns = Math.max(...layer.values()) + 1;
  const byColumn = Array.from({ length: columns }, () => []);
  nodes.forEach((n) => byColumn[layer.get(n)].push(n));
  const width = svg.clientWidth || 900;
  const height = Math.max(160, Math.max(...byColumn.map((c) => c.length)) * 56 + 20);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const box = { w: 170, h: 28 };
  const gap = columns > 1 ? (width - box.w - 20) / (columns - 1) : 0;
  const at = new Map();
  byColumn.forEach((column, c) => column.forEach((node, r) => {
    const y = ((r + 1) * height) / (column.length + 1) - box.h / 2;
    at.set(node, { x: 10 + c * gap, y });
  }));
  for (const link of links) {
    const a = at.get(link.from);
    const b = at.get(link.to);
    const x1 = a.x + box.w;
    const y1 = a.y + box.h / 2;
    const x2 = b.x;
    const y2 = b.y + box.h / 2;
    const mid = (x1 + x2) / 2;
    const bad = link.error_rate > 0;
    const label = `${fixed(link.request_rate, 1)}/s` + (bad ? ` · ${percent(link.error_rate)}` : "");
    const kind = "edge" + (bad ? " bad" : "") + (isAmbient(link.reporter) ? " ambient" : "");
    svg.append(el("svg:g", { class: kind, "data-from": link.source, "data-to": link.destination, "data-reporter": link.reporter },
      el("svg:path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
        "stroke-width": Math.min(6, 1 + Math.log1p(link.request_rate)) }),
      el("svg:text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, label)));
  }
  for (const node of nodes) {
    const { x, y } = at.get(node);
    const kind = services.has(node) ? "node" : "node source-only";
    svg.append(el("svg:g", { class: kind, "data-node": node },
      el("svg:title", {}, node),
      el("svg:rect", { x, y, width: box.w, height: box.h }),
      el("svg:text", { x: x + 8, y: y + 18 }, shortName(node))));
  }
}

function renderTcp(doc) {
  fillRows("tcp", doc.tcp.map((t) => [
    el("td", {}, t.service),
    el("td", { class: "num" }, bytes(t.sent_bytes_rate)),
    el("td", { class: "num" }, bytes(t.received_bytes_rate)),
    el("td", { class: "num" }, fixed(t.opened_rate, 2)),
    el("td", { class: "num" }, fixed(t.closed_rate, 2)),
  ]), 5);
}

function renderAmbient(doc) {
  fillRows("ambient", doc.ambient_l4.map((p) => [
    el("td", {}, shortName(p.source)),
    el("td", {}, shortName(p.destination)),
    el("td", { class: "muted" }, p.services.join(", ")),
    el("td", {}, `${p.reporter} ztunnel`),
    el("td", { class: "num" }, fixed(p.opened_rate, 2)),
    el("td", { class: "num" }, bytes(p.received_bytes_rate)),
    el("td", { class: "num" }, bytes(p.sent_bytes_rate)),
  ]), 7);
}

function keyValues(pairs) {
  return el("div", { class: "kv" }, ...pairs.flatMap(([key, value]) => [el("span", { class: "muted" }, key), value]));
}

function renderControlPlane(doc) {
  const plane = doc.control_plane;
  const target = $("control-plane");
  if (plane.connected_proxies === null && plane.pushes.length === 0) {
    target.replaceChildren(el("p", { class: "empty" }, "no istiod scraped"));
    return;
  }
  const faults = plane.faults.map((f) =>
    [f.name, el("span", { class: f.increase > 0 ? "bad" : "ok" }, `${fixed(f.increase, 0)} in window (${fixed(f.total, 0)} total)`)]);
  const pushes = el("table", { id: "pushes" },
    el("thead", {}, el("tr", {}, el("th", {}, "push type"), el("th", { class: "num" }, "pushes/s"), el("th", { class: "num" }, "total"))),
    el("tbody", {}, ...plane.pushes.map((p) => el("tr", {},
      el("td", {}, p.name), el("td", { class: "num" }, fixed(p.rate, 2)), el("td", { class: "num" }, fixed(p.total, 0))))));
  target.replaceChildren(
    keyValues([
      ["connected proxies", el("span", {}, fixed(plane.connected_proxies, 0))],
      ["convergence p50 / p99", el("span", {}, `${fixed(plane.convergence_p50_seconds, 3)} s / ${fixed(plane.convergence_p99_seconds, 3)} s`)],
      ["pushes/s trend", sparkline(doc.pushes_trend, "rate")],
      ...faults,
    ]),
    pushes);
}

function endpointTable(title, rows, unit) {
  if (rows.length === 0) return el("p", { class: "empty" }, `no ${title} endpoint`);
  return el("table", { class: "endpoints" },
    el("thead", {}, el("tr", {}, ...[title, `queued ${unit}`, "spool", "lag", "sent", "failed", "retried", "dropped"]
      .map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, r.endpoint),
      el("td", { class: "num" }, fixed(r.queued, 0)),
      el("td", { class: "num" }, bytes(r.spool_bytes)),
      el("td", { class: "num" }, r.lag_seconds === null ? "–" : fixed(r.lag_seconds, 1) + " s"),
      el("td", { class: "num" }, fixed(r.sent, 0)),
      el("td", { class: "num" + (r.failed > 0 ? " bad" : "") }, fixed(r.failed, 0)),
      el("td", { class: "num" }, fixed(r.retried, 0)),
      el("td", { class: "num" + (r.dropped > 0 ? " bad" : "") }, fixed(r.dropped, 0))))));
}

function renderPipeline(doc) {
  const p = doc.pipeline;
  const targets = doc.scrape_targets.length === 0
    ? el("p", { class: "empty" }, "no scrape targets")
    : el("table", { id: "targets" },
      el("thead", {}, el("tr", {}, el("th", {}, "scrape job"), el("th", {}, "instance"), el("th", {}, "up"))),
      el("tbody", {}, ...doc.scrape_targets.map((t) => el("tr", {},
        el("td", {}, t.job), el("td", {}, t.instance),
        el("td", { class: t.up ? "ok" : "bad" }, t.up ? "up" : "down")))));
  $("pipeline").replaceChildren(
    keyValues([
      ["reports accepted / refused", el("span", {}, `${fixed(p.reports_accepted, 0)} / ${fixed(p.reports_refused, 0)}`)],
      ["sources not kept (view.max_sources)", el("span", {}, doc.sources_refused)],
      ["rows over the caps (services, edges, ambient pairs)",
        el("span", {}, `${doc.dropped.services}, ${doc.dropped.edges}, ${doc.dropped.ambient_pairs}`)],
    ]),
    endpointTable("remote-write", p.remote_write, "samples"),
    endpointTable("Loki", p.loki, "entries"),
    targets);
}

function renderLogs(doc) {
  const select = $("log-service");
  const chosen = select.value;
  const choices = new Set(doc.log_services);
  if (chosen) choices.add(chosen);
  select.replaceChildren(el("option", { value: "" }, "all"),
    ...[...choices].sort().map((s) => el("option", { value: s }, s)));
  select.value = chosen;
  fillRows("logs", doc.logs.map((l) => [
    el("td", { class: "muted" }, new Date(l.timestamp_ms).toISOString().slice(11, 23)),
    el("td", {}, l.origin),
    el("td", {}, `${l.namespace}/${l.pod}`),
    el("td", {}, l.service || "–"),
    el("td", { class: "num" + (l.status >= 500 ? " bad" : "") }, l.status === null ? "–" : l.status),
    el("td", {}, l.line),
  ]), 6);
}

let timer = null;

async function poll() {
  clearTimeout(timer);
  const query = new URLSearchParams({ log_service: $("log-service").value, log_status: $("log-status").value });
  try {
    const response = await fetch(`/v1/live?${query}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const doc = await response.json();
    renderServices(doc);
    renderGraph(doc);
    renderTcp(doc);
    renderAmbient(doc);
    renderControlPlane(doc);
    renderPipeline(doc);
    renderLogs(doc);
    $("status").textContent = `updated ${new Date(doc.generated_ms).toLocaleTimeString()}`;
    document.body.dataset.updated = String(doc.generated_ms);
  } catch (error) {
    $("status").textContent = `cannot reach the sink (${error.message}); retrying`;
  }
  timer = setTimeout(poll, POLL_MS);
}

$("log-service").addEventListener("change", poll);
$("log-status").addEventListener("change", poll);
poll();
