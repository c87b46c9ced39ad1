// The Reports view: the evaluation reports the server found, as tables and bar charts.
import { $, api, day, el, fail, fmt } from "./core.js";

// ---- reports -------------------------------------------------------------------------------
const CHARTS = [
  ["Accuracy", ["ndcg@10", "recall@10", "mrr@10"]],
  ["Coverage", ["coverage@10"]],
  ["Novelty", ["novelty@10"]],
  ["Diversity", ["diversity@10"]],
  ["Popularity bias (lower is less biased)", ["arp@10", "gini@10"]],
  ["Exposure of head / torso / tail items", ["exposure@10 head", "exposure@10 torso", "exposure@10 tail"], ["head", "torso", "tail"]],
  ["Miscalibration and unfair exposure (lower is better)", ["miscalibration@10", "EE-L@10", "AWRF@10"], ["miscal.", "EE-L", "AWRF"]],
];

async function showReports() {
  const root = $("reports");
  try {
    const doc = await api("/v1/reports");
    root.replaceChildren();
    for (const p of doc.problems) {
      root.append(el("p", { class: "error", text: `${p.file}: ${p.message}` }));
    }
    if (!doc.reports.length) {
      root.append(el("p", { class: "empty",
        text: `No evaluation reports in ${doc.folder}. Run: llmrec eval --dataset ml-100k --model all,ranker` }));
      return;
    }
    const warm = doc.reports.filter((r) => !r.protocol.startsWith("cold"));
    const cold = doc.reports.filter((r) => r.protocol.startsWith("cold"));
    for (const r of warm) root.append(reportSection(r, doc.metrics));
    root.append(coldTable(cold));
  } catch (e) {
    root.replaceChildren(el("p", { class: "empty", text: "Reports could not be loaded." }));
    fail(e);
  }
}

function reportSection(r, metrics) {
  const shown = metrics.filter((m) => r.models.some((x) => m in x.metrics));
  // popularity bias: lower is better; every other metric: higher
  const lower = (m) => m.startsWith("arp") || m.startsWith("gini");
  const best = Object.fromEntries(shown.map((m) => {
    const vs = r.models.map((x) => x.metrics[m]).filter((v) => v !== undefined);
    return [m, lower(m) ? Math.min(...vs) : Math.max(...vs)];
  }));
  const table = el("table", { class: "table metrics" },
    el("caption", { text: `${r.dataset} · ${r.protocol} · ${r.n_users ?? "?"} test users · ${r.n_items ?? "?"} items · ${day(r.modified)}` }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "model" }), ...shown.map((m) => el("th", { scope: "col", text: m })))),
    el("tbody", {}, ...r.models.map((x) => el("tr", {},
      el("th", { scope: "row", text: x.model }),
      ...shown.map((m) => el("td", { class: x.metrics[m] === best[m] ? "best" : "", text: fmt(x.metrics[m], m.startsWith("arp") ? 1 : 4) })),
    ))),
  );
  const charts = el("div", { class: "charts" }, ...CHARTS.map(([title, ms, names]) => barChart(title, ms, r.models, names)));
  const section = el("section", { class: "report panel", "aria-label": `report ${r.name}` },
    el("h3", { text: r.name }), el("div", { class: "scroll" }, table), charts);
  const groups = groupTable(r.models);
  if (groups) section.append(groups);
  const curves = TRADEOFFS.map(([name, m, title]) => lineChart(title, name, m, r.models)).filter(Boolean);
  if (curves.length) section.append(el("div", { class: "charts" }, ...curves));
  return section;
}

// llmrec eval --tradeoffs: NDCG@10 against what each reranker buys, strength 0 to 0.9
const TRADEOFFS = [
  ["mmr", "diversity@10", "Trade-off: MMR (diversity@10 →)"],
  ["calibrated", "miscalibration@10", "Trade-off: calibrated (← miscalibration@10)"],
  ["tail", "exposure@10 tail", "Trade-off: tail boost (tail exposure@10 →)"],
];

// Tableau 10 and two more: distinct for 12 models, dashed beyond
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#7f7f7f", "#17becf", "#1b1b1b"];

function lineChart(title, name, metric, models) {
  const lines = models.map((x, i) => [x, i, (x.tradeoffs?.[name] ?? []).filter((p) => metric in p)])
    .filter(([, , pts]) => pts.length > 1);
  if (!lines.length) return null;
  const NS = "http://www.w3.org/2000/svg";
  const width = 320, height = 200, left = 38, bottom = 28, top = 8, right = 8;
  const all = lines.flatMap(([, , pts]) => pts);
  const range = (vs) => { const lo = Math.min(...vs), hi = Math.max(...vs); return [lo, hi > lo ? hi : lo + 1e-9]; };
  const [x0, x1] = range(all.map((p) => p[metric]));
  const [y0, y1] = range(all.map((p) => p["ndcg@10"]));
  const X = (v) => left + ((width - left - right) * (v - x0)) / (x1 - x0);
  const Y = (v) => top + ((height - top - bottom) * (y1 - v)) / (y1 - y0);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 14 * Math.ceil(lines.length / 3)}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: NDCG@10 against ${metric} per model`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
  };
  add("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" });
  add("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" });
  add("text", { x: left, y: height - bottom + 12, class: "val" }, fmt(x0, 3));
  add("text", { x: width - right, y: height - bottom + 12, class: "val", "text-anchor": "end" }, fmt(x1, 3));
  add("text", { x: (left + width) / 2, y: height - 4, class: "val", "text-anchor": "middle" }, metric);
  add("text", { x: 2, y: top + 8, class: "val" }, fmt(y1, 3));
  add("text", { x: 2, y: height - bottom, class: "val" }, fmt(y0, 3));
  lines.forEach(([x, i, pts], j) => {  // i: the model's colour, j: its legend slot
    const colour = PALETTE[i % PALETTE.length];
    add("polyline", { points: pts.map((p) => `${X(p[metric]).toFixed(1)},${Y(p["ndcg@10"]).toFixed(1)}`).join(" "),
      fill: "none", stroke: colour, "stroke-width": 1.5, class: "curve",
      "stroke-dasharray": i >= PALETTE.length ? "4 2" : "none" });
    add("circle", { cx: X(pts[0][metric]), cy: Y(pts[0]["ndcg@10"]), r: 2.5, fill: colour });
    add("rect", { x: left + (j % 3) * 95, y: height + 4 + 14 * Math.floor(j / 3), width: 10, height: 3, fill: colour });
    add("text", { x: left + (j % 3) * 95 + 13, y: height + 9 + 14 * Math.floor(j / 3), class: "val" }, x.model);
  });
  return el("figure", { class: "chart" }, el("figcaption", { text: title }), svg);
}

// NDCG@10 per user group (llmrec eval --groups): one row per model and attribute
function groupTable(models) {
  const rows = models.flatMap((x) => Object.entries(x.groups ?? {}).map(([attr, g]) => [x, attr, g]));
  if (!rows.length) return null;
  const gap = (g) => `${fmt(g.gap)} [${fmt(g.interval[0])}, ${fmt(g.interval[1])}]`;
  return el("div", { class: "scroll" }, el("table", { class: "table metrics groups" },
    el("caption", { text: "NDCG@10 by user group: best minus worst group, 95% bootstrap interval, permutation p" }),
    el("thead", {}, el("tr", {}, ...["model", "attribute", "groups (users)", "gap", "p"].map((t) => el("th", { scope: "col", text: t })))),
    el("tbody", {}, ...rows.map(([x, attr, g]) => el("tr", {},
      el("th", { scope: "row", text: x.model }),
      el("td", { text: attr }),
      el("td", { class: "wrap", text: Object.entries(g.groups).map(([k, v]) => `${k} ${fmt(v["ndcg@10"])} (${v.users ?? "?"})`).join(" · ") || "no group of 20+ users" }),
      // fewer than two groups of 20+ users: nothing to compare
      ...(Object.keys(g.groups).length < 2 ? [el("td", { text: "–" }), el("td", { text: "–" })] : [
        el("td", { class: g.p !== null && g.p < 0.05 ? "flag" : "", text: gap(g) }),
        el("td", { text: g.p === null ? "–" : g.p.toPrecision(2) }),
      ]),
    ))),
  ));
}

function barChart(title, metrics, models, names) {
  const keep = metrics.map((m, j) => [m, names?.[j] ?? m]).filter(([m]) => models.some((x) => m in x.metrics));
  const ms = keep.map(([m]) => m);
  const figure = el("figure", { class: "chart" }, el("figcaption", { text: title }));
  if (!ms.length) return figure;
  const NS = "http://www.w3.org/2000/svg";
  const rowH = 14, label = 80, width = 320;
  const height = models.length * ms.length * rowH + models.length * 6 + 20;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${ms.join(", ")} per model`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
  };
  let y = 4;
  for (const x of models) {
    add("text", { x: 0, y: y + rowH * ms.length / 2 + 4, class: "lbl" }, x.model);
    ms.forEach((m, j) => {
      const max = Math.max(...models.map((o) => o.metrics[m] ?? 0)) || 1;
      const v = x.metrics[m] ?? 0;
      const w = Math.max(1, ((width - label - 50) * v) / max);
      add("rect", { x: label, y, width: w, height: rowH - 3, class: `bar bar-${j}` });
      add("text", { x: label + w + 3, y: y + rowH - 4, class: "val" }, fmt(v, m.startsWith("arp") ? 0 : 3));
      y += rowH;
    });
    y += 6;
  }
  keep.forEach(([, name], j) => {
    add("rect", { x: label + j * 80, y: height - 12, width: 10, height: 10, class: `bar bar-${j}` });
    add("text", { x: label + j * 80 + 13, y: height - 3, class: "val" }, name);
  });
  figure.append(svg);
  return figure;
}

function coldTable(cold) {
  const section = el("section", { class: "report panel", "aria-label": "cold start" }, el("h3", { text: "Cold start" }));
  if (!cold.length) {
    section.append(el("p", { class: "empty",
      text: "No cold-start report yet. Run: llmrec eval --dataset ml-100k --model pop,ease,content,hybrid --protocol cold-items (and --protocol cold-users)." }));
    return section;
  }
  const cols = cold.flatMap((r) => ["ndcg@10", "recall@10"].map((m) => [r, m]));
  const models = [...new Set(cold.flatMap((r) => r.models.map((x) => x.model)))];
  const value = (r, model, m) => r.models.find((x) => x.model === model)?.metrics[m];
  section.append(el("div", { class: "scroll" }, el("table", { class: "table metrics" },
    el("caption", { text: "items or users held out of training (see README: protocols)" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "model" }),
      ...cols.map(([r, m]) => el("th", { scope: "col", text: `${r.dataset} ${r.protocol} ${m}` })))),
    el("tbody", {}, ...models.map((model) => el("tr", {}, el("th", { scope: "row", text: model }),
      ...cols.map(([r, m]) => el("td", { text: fmt(value(r, model, m)) }))))),
  )));
  return section;
}

export { showReports };
