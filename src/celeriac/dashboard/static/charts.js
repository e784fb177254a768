// celeriac dashboard: line and bar charts, and the workflow graph, drawn as SVG.
//
// No library: a chart is redrawn whole from its data each time the page polls (a few
// hundred elements at most), which keeps the code short. Every chart is sized to its
// container and redrawn when the container changes size. The drawn data is summarised in
// data-* attributes of the <svg> (data-sum, data-points) so tests can tell when it changed.

const SVG = "http://www.w3.org/2000/svg";

export const PALETTE = [
  "#2f6fa7", "#d9822b", "#3d9a5d", "#8a5cb8", "#c4473d", "#1c8c8c", "#a88c24", "#5b6b7c",
];
export const STATE_COLOURS = {
  SUCCESS: "#3d9a5d", FAILURE: "#c4473d", STARTED: "#2f6fa7", RETRY: "#d9822b",
  REVOKED: "#8a5cb8", REJECTED: "#8a5cb8", RECEIVED: "#8c97a3", PENDING: "#b7c0c9",
};

/** An SVG element with attributes; children may be nodes or strings. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function title(text) {
  return svg("title", {}, text);
}

/**
 * Round steps of 1, 2 or 5 times a power of ten, about `count` of them from 0 to max;
 * whole numbers only when `integer` (counts of tasks or messages).
 */
export function niceTicks(max, count = 5, integer = false) {
  if (!(max > 0)) return [0, 1];
  const raw = integer ? Math.max(max / count, 1) : max / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const multiples = integer && power < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  const step = multiples.map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(start, end, count) {
  const span = Math.max(end - start, 60);
  const step = TIME_STEPS.find((s) => span / s <= count) || 86400;
  const offset = new Date().getTimezoneOffset() * 60; // ticks on local round minutes
  const ticks = [];
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) {
    ticks.push(t);
  }
  return ticks;
}

function two(n) {
  return String(n).padStart(2, "0");
}

export function clock(t) {
  const d = new Date(t * 1000);
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** A number short enough for an axis: 1.2k, 3.4M, 0.25. */
export function shortNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 10 || a === 0) return String(Math.round(v));
  if (a >= 1) return String(+v.toFixed(1));
  return String(+v.toPrecision(2));
}

function frame(el) {
  const width = Math.max(el.clientWidth, 240);
  const height = Math.max(el.clientHeight, 140);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    preserveAspectRatio: "none",
  });
  return { root, width, height };
}

function nothing(el, root, width, height, message) {
  root.append(svg("text", {
    class: "nodata", x: width / 2, y: height / 2, "text-anchor": "middle",
  }, message || "No data yet"));
  root.dataset.sum = "0";
  root.dataset.points = "0";
  el.replaceChildren(root);
}

function legend(root, names, colours, width) {
  const group = svg("g", { class: "legend" });
  let x = width;
  const items = names.map((name, i) => ({ name, colour: colours[i] })).reverse();
  for (const { name, colour } of items) {
    const textWidth = Math.min(name.length, 28) * 6.6 + 26;
    x -= textWidth;
    group.append(
      svg("rect", { x, y: 2, width: 10, height: 10, rx: 2, fill: colour }),
      svg("text", { x: x + 14, y: 11 }, name.length > 28 ? `${name.slice(0, 27)}…` : name),
    );
  }
  root.append(group);
}

function remember(el, draw) {
  // redraw on resize, once per element
  el._draw = draw;
  if (!el._observed && typeof ResizeObserver !== "undefined") {
    let lastWidth = el.clientWidth;
    new ResizeObserver(() => {
      if (el.clientWidth !== lastWidth) {
        lastWidth = el.clientWidth;
        el._draw();
      }
    }).observe(el);
    el._observed = true;
  }
  draw();
}

function yAxis(root, ticks, y, left, right, format) {
  const grid = svg("g", { class: "grid" });
  const axis = svg("g", { class: "axis" });
  for (const tick of ticks) {
    const ty = y(tick);
    grid.append(svg("line", { x1: left, x2: right, y1: ty, y2: ty }));
    axis.append(svg("text", { x: left - 6, y: ty + 4, "text-anchor": "end" }, format(tick)));
  }
  root.append(grid, axis);
}

/**
 * A time-series chart.
 *
 * options.series: [{name, points: [[t, value or null], ...], colour?}]
 * options.bars: draw stacked bars (one per point time) instead of lines
 * options.start, options.end: the time window (seconds); default: the data's
 * options.format: how values are written on the axis and in tooltips
 * options.integer: the values are counts (whole ticks)
 */
export function timeChart(el, options) {
  remember(el, () => drawTime(el, options));
}

function drawTime(el, options) {
  const { root, width, height } = frame(el);
  const series = (options.series || []).filter((s) => s.points && s.points.length);
  const format = options.format || shortNumber;
  const colours = series.map((s, i) => s.colour || PALETTE[i % PALETTE.length]);
  let sum = 0;
  let points = 0;
  const times = new Set();
  let max = 0;
  const stackTotals = new Map();
  for (const s of series) {
    for (const [t, v] of s.points) {
      times.add(t);
      points += 1;
      if (v === null || v === undefined) continue;
      sum += v;
      if (options.bars) stackTotals.set(t, (stackTotals.get(t) || 0) + v);
      else max = Math.max(max, v);
    }
  }
  if (options.bars) for (const total of stackTotals.values()) max = Math.max(max, total);
  if (!series.length) {
    nothing(el, root, width, height, options.empty);
    return;
  }
  const sorted = [...times].sort((a, b) => a - b);
  const step = options.step || (sorted.length > 1 ? sorted[1] - sorted[0] : 60);
  const start = options.start ?? sorted[0];
  const last = sorted[sorted.length - 1] + (options.bars ? step : 0); // a bar spans its bucket
  const end = Math.max(options.end ?? last, last);
  const ticks = niceTicks(max || 1, 4, options.integer);
  const top = ticks[ticks.length - 1];
  const left = 44;
  const right = width - 8;
  const upper = 20;
  const lower = height - 22;
  const x = (t) => left + ((t - start) / Math.max(end - start, 1)) * (right - left);
  const y = (v) => lower - (v / top) * (lower - upper);

  yAxis(root, ticks, y, left, right, format);
  const axis = svg("g", { class: "axis" });
  axis.append(svg("line", { x1: left, x2: right, y1: lower, y2: lower }));
  for (const t of timeTicks(start, end, Math.max(2, Math.floor((right - left) / 80)))) {
    axis.append(
      svg("line", { x1: x(t), x2: x(t), y1: lower, y2: lower + 4 }),
      svg("text", { x: x(t), y: lower + 16, "text-anchor": "middle" }, clock(t)),
    );
  }
  root.append(axis);

  const plot = svg("g", { class: "plot" });
  if (options.bars) {
    const barWidth = Math.max(1, ((right - left) * step) / Math.max(end - start, 1) - 1);
    const stacked = new Map();
    series.forEach((s, i) => {
      for (const [t, v] of s.points) {
        if (!v || t + step <= start) continue;
        const base = stacked.get(t) || 0;
        stacked.set(t, base + v);
        const from = Math.max(x(t) + 0.5, left); // a bucket begun before the window: its part in it
        plot.append(svg("rect", {
          x: from, width: Math.max(Math.min(x(t) + 0.5 + barWidth, right) - from, 1),
          y: y(base + v), height: Math.max(y(base) - y(base + v), 1), fill: colours[i],
        }, title(`${clock(t)} ${s.name}: ${format(v)}`)));
      }
    });
  } else {
    series.forEach((s, i) => {
      let d = "";
      let pen = false;
      for (const [t, v] of [...s.points].sort((a, b) => a[0] - b[0])) {
        if (v === null || v === undefined) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      plot.append(svg("path", {
        d, fill: "none", stroke: colours[i], "stroke-width": 2, "stroke-linejoin": "round",
      }));
      if (s.points.length <= 90) {
        for (const [t, v] of s.points) {
          if (v === null || v === undefined) continue;
          plot.append(svg("circle", { cx: x(t), cy: y(v), r: 2.5, fill: colours[i] },
            title(`${clock(t)} ${s.name}: ${format(v)}`)));
        }
      }
    });
  }
  root.append(plot);
  legend(root, series.map((s) => s.name), colours, width);
  root.dataset.sum = String(sum);
  root.dataset.points = String(points);
  el.replaceChildren(root);
}

/**
 * Grouped bars by category: options.categories (names), options.series
 * [{name, values: [one per category]}], options.format.
 */
export function barChart(el, options) {
  remember(el, () => drawBars(el, options));
}

function drawBars(el, options) {
  const { root, width, height } = frame(el);
  const categories = options.categories || [];
  const series = options.series || [];
  const format = options.format || shortNumber;
  if (!categories.length) {
    nothing(el, root, width, height, options.empty);
    return;
  }
  const colours = series.map((s, i) => s.colour || PALETTE[i % PALETTE.length]);
  let max = 0;
  let sum = 0;
  for (const s of series) {
    for (const v of s.values) {
      if (v === null || v === undefined) continue;
      max = Math.max(max, v);
      sum += v;
    }
  }
  const ticks = niceTicks(max || 1, 4);
  const top = ticks[ticks.length - 1];
  const left = 48;
  const right = width - 8;
  const upper = 20;
  const lower = height - 24;
  const y = (v) => lower - (v / top) * (lower - upper);
  yAxis(root, ticks, y, left, right, format);
  const band = (right - left) / categories.length;
  const inner = Math.min(band * 0.8, 36 * series.length);
  const barWidth = inner / Math.max(series.length, 1);
  const axis = svg("g", { class: "axis" });
  axis.append(svg("line", { x1: left, x2: right, y1: lower, y2: lower }));
  const plot = svg("g", { class: "plot" });
  categories.forEach((name, c) => {
    const x0 = left + band * c + (band - inner) / 2;
    const maxChars = Math.max(4, Math.floor(band / 6.5));
    const label = name.length > maxChars ? `…${name.slice(name.length - maxChars + 1)}` : name;
    axis.append(svg("text", { x: left + band * c + band / 2, y: lower + 16, "text-anchor": "middle" },
      label, title(name)));
    series.forEach((s, i) => {
      const v = s.values[c];
      if (v === null || v === undefined) return;
      plot.append(svg("rect", {
        x: x0 + barWidth * i + 1, width: Math.max(barWidth - 2, 1),
        y: y(v), height: Math.max(lower - y(v), 1), fill: colours[i], rx: 1.5,
      }, title(`${name} ${s.name}: ${format(v)}`)));
    });
  });
  root.append(axis, plot);
  legend(root, series.map((s) => s.name), colours, width);
  root.dataset.sum = String(sum);
  root.dataset.points = String(categories.length);
  el.replaceChildren(root);
}

/**
 * A workflow drawn left to right: graph.nodes [{id, name, state}], graph.edges
 * [{from, to, kind}]. A node is placed in the column of its longest path from a node
 * with no incoming edge; `link(id)` gives a node's URL and `current` is outlined.
 */
export function workflowGraph(el, graph, link, current) {
  const nodes = graph.nodes || [];
  const edges = (graph.edges || []).filter((e) => e.from !== e.to);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const incoming = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) if (incoming.has(e.to) && byId.has(e.from)) incoming.get(e.to).push(e.from);
  const column = new Map();
  const depth = (id, seen) => {
    if (column.has(id)) return column.get(id);
    if (seen.has(id)) return 0; // a cycle: stop here
    seen.add(id);
    const parents = incoming.get(id) || [];
    const d = parents.length ? Math.max(...parents.map((p) => depth(p, seen) + 1)) : 0;
    column.set(id, d);
    return d;
  };
  for (const n of nodes) depth(n.id, new Set());
  const columns = [];
  for (const n of nodes) {
    const c = column.get(n.id);
    (columns[c] = columns[c] || []).push(n);
  }
  const nodeW = 170;
  const nodeH = 44;
  const gapX = 70;
  const gapY = 14;
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const width = Math.max(columns.length * (nodeW + gapX) - gapX + 20, 200);
  const height = rows * (nodeH + gapY) - gapY + 20;
  const place = new Map();
  columns.forEach((members, c) => {
    if (!members) return;
    const offset = ((rows - members.length) * (nodeH + gapY)) / 2;
    members.forEach((n, r) => {
      place.set(n.id, { x: 10 + c * (nodeW + gapX), y: 10 + offset + r * (nodeH + gapY) });
    });
  });
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  root.append(svg("defs", {}, svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse",
  }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8c97a3" }))));
  for (const e of edges) {
    const a = place.get(e.from);
    const b = place.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + nodeW;
    const y1 = a.y + nodeH / 2;
    const x2 = b.x;
    const y2 = b.y + nodeH / 2;
    const mid = (x1 + x2) / 2;
    root.append(svg("path", {
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, fill: "none",
      stroke: "#8c97a3", "stroke-width": 1.5, "marker-end": "url(#arrow)",
      class: "edge", "data-kind": e.kind,
    }, title(e.kind || "")));
  }
  for (const n of nodes) {
    const p = place.get(n.id);
    const colour = STATE_COLOURS[n.state] || "#5b6b7c";
    const name = n.name || "?";
    const short = name.length > 24 ? `…${name.slice(name.length - 23)}` : name;
    const box = svg("g", { class: "node", "data-id": n.id, "data-state": n.state || "" },
      title(`${name}\n${n.id}\n${n.state || ""}`),
      svg("rect", {
        x: p.x, y: p.y, width: nodeW, height: nodeH, rx: 6, fill: "#fff",
        stroke: n.id === current ? "#1d2430" : "#c5ccd5", "stroke-width": n.id === current ? 2 : 1,
      }),
      svg("rect", { x: p.x, y: p.y, width: 6, height: nodeH, rx: 3, fill: colour }),
      svg("text", { class: "name", x: p.x + 14, y: p.y + 18 }, short),
      svg("text", { class: "id", x: p.x + 14, y: p.y + 34 },
        `${String(n.id).slice(0, 8)}… ${n.state || ""}`),
    );
    if (n.id !== current && link) {
      const a = svg("a", { href: link(n.id) });
      a.append(box);
      root.append(a);
    } else {
      root.append(box);
    }
  }
  root.dataset.nodes = String(nodes.length);
  el.replaceChildren(root);
}
