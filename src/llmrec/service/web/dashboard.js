// The Dashboard view: events and active users per day, lists served since the server started,
// click-through of logged impressions, and the model versions answering (GET /v1/activity).
import { $, api, el, fail } from "./core.js";

const NS = "http://www.w3.org/2000/svg";

async function showDashboard() {
  const summary = $("dash-summary");
  const charts = $("dash-charts");
  try {
    const a = await api(`/v1/activity?days=${encodeURIComponent($("dash-days").value)}`);
    const served = a.lists_served;
    const total = served.cache + served.scored + served.query;
    const versions = Object.entries(a.model_versions)
      .map(([v, share]) => `${v} (${Math.round(share * 100)}% of users)`).join(" · ");
    const events = a.days.reduce((n, d) => n + d.events, 0);
    const rows = [
      ["model", versions],
      ["events", `${events.toLocaleString()} in the ${a.days.length} days shown`],
      ["lists served", `${total.toLocaleString()} since the server started (${served.cache.toLocaleString()} from the cache, ${served.scored.toLocaleString()} scored, ${served.query.toLocaleString()} asked in words)`],
    ];
    if (a.impressions.length) {
      const shown = a.impressions.reduce((n, d) => n + d.shown, 0);
      const clicked = a.impressions.reduce((n, d) => n + d.clicked, 0);
      rows.push(["click-through", `${(100 * clicked / Math.max(shown, 1)).toFixed(2)}% of ${shown.toLocaleString()} shown items`]);
    }
    summary.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    const out = [
      dayChart("Events per day", a.days, (d) => d.events, 0),
      dayChart("Active users per day", a.days, (d) => d.users, 1),
    ];
    if (a.impressions.length) {
      out.push(dayChart("Lists shown per day", a.impressions, (d) => d.lists, 2));
      out.push(dayChart("Click-through per day (%)", a.impressions,
        (d) => (d.shown ? (100 * d.clicked) / d.shown : 0), 0, 1));
    } else {
      out.push(el("p", { class: "empty",
        text: "No impressions logged: serve with --explore, or start an A/B test (PUT /v1/admin/ab), to see click-through." }));
    }
    charts.replaceChildren(...out);
  } catch (e) {
    charts.replaceChildren(el("p", { class: "empty", text: "Activity could not be loaded." }));
    fail(e);
  }
}

function dayChart(title, days, value, colour, digits = 0) {
  const figure = el("figure", { class: "chart" }, el("figcaption", { text: title }));
  const width = 320, height = 140, left = 34, bottom = 16;
  const values = days.map(value);
  const max = Math.max(...values, 0) || 1;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const peak = values.length ? Math.max(...values) : 0;
  svg.setAttribute("aria-label", `${title}: ${days.length} days, at most ${peak.toFixed(digits)}`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const plotW = width - left - 4, plotH = height - bottom - 8;
  const step = plotW / Math.max(days.length, 1);
  add("text", { x: 0, y: 12, class: "val" }, max.toFixed(digits));
  add("text", { x: 0, y: plotH + 8, class: "val" }, "0");
  days.forEach((d, i) => {
    const h = (plotH * values[i]) / max;
    const bar = add("rect", { x: left + i * step, y: 8 + plotH - h, width: Math.max(1, step - 1), height: h, class: `bar bar-${colour}` });
    const t = document.createElementNS(NS, "title");
    t.textContent = `${d.day}: ${values[i].toFixed(digits)}`;
    bar.append(t);
  });
  if (days.length) {
    add("text", { x: left, y: height - 2, class: "lbl" }, days[0].day);
    add("text", { x: width - 4, y: height - 2, class: "lbl", "text-anchor": "end" }, days[days.length - 1].day);
  }
  figure.append(svg);
  return figure;
}

function wireDashboard() {
  $("dash-days").addEventListener("change", showDashboard);
  $("dash-refresh").addEventListener("click", showDashboard);
}

wireDashboard();

export { showDashboard };
