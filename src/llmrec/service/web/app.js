// The llmrec web page: plain ES modules against the v1 HTTP API, no build step, no network
// beyond this server. Every piece of data is written with textContent (never as HTML).

const KEY = "llmrec.key";
const VISITOR = "llmrec.visitor";
const $ = (id) => document.getElementById(id);

// ---- API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    Object.assign(this, { status, code, field });
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The server is not reachable: is `llmrec serve` running?");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const e = body && body.error ? body.error : { code: "error", message: response.statusText };
    throw new ApiError(response.status, e.code, e.message, e.field);
  }
  return body;
}

function explain(e) {
  if (e.status === 401) return "The API key is missing or not valid: enter one above (`llmrec keys create --role write`).";
  if (e.status === 403) return `This key is not allowed to do that (${e.message}). A write key can send feedback and add items.`;
  if (e.status === 429) return "Too many requests for this key: wait a second and try again.";
  return e.field ? `${e.message} (field: ${e.field})` : e.message;
}

function say(message, kind = "info") {
  const el = $("status");
  el.textContent = message;
  el.dataset.kind = kind;
}

function fail(e) {
  say(e instanceof ApiError ? explain(e) : String(e), "error");
}

// ---- small DOM helpers ---------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const fmt = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const day = (ts) => new Date(ts * 1000).toISOString().slice(0, 10);

// ---- key and health ------------------------------------------------------------------------
function takeKeyFromUrl() {
  // `llmrec serve --demo` prints a URL with #key=…: the fragment never reaches the server
  const m = location.hash.match(/key=([^&]+)/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#explore");
  }
}

async function health() {
  try {
    const h = await api("/healthz");
    $("health").textContent =
      `${h.model_version} · ${h.users.toLocaleString()} users · ${h.items.toLocaleString()} items · ${h.events.toLocaleString()} events`;
    $("health").dataset.kind = "ok";
    return true;
  } catch (e) {
    $("health").textContent = "server down";
    $("health").dataset.kind = "error";
    fail(e);
    return false;
  }
}

function keyStatus() {
  const has = Boolean(sessionStorage.getItem(KEY));
  $("key").placeholder = has ? "key in use (this session)" : "lrk_…";
  return has;
}

// ---- explore -------------------------------------------------------------------------------
const state = { user: null, visitor: false, latest: null, shown: [] };

async function loadContext() {
  try {
    const values = await api("/v1/context");
    for (const [field, id] of [["device", "ctx-device"], ["scenario", "ctx-scenario"]]) {
      const select = $(id);
      select.replaceChildren(el("option", { value: "", text: "any" }));
      for (const v of values[field]) select.append(el("option", { value: v, text: v }));
      select.disabled = values[field].length === 0;
      select.title = values[field].length ? "" : "no events carry this context yet";
    }
  } catch (e) {
    if (e.status !== 401) fail(e);
  }
}

async function searchUsers(query) {
  const list = $("user-hits");
  try {
    const { users } = await api(`/v1/users?query=${encodeURIComponent(query)}&limit=12`);
    list.replaceChildren();
    if (!users.length) list.append(el("li", { class: "empty", text: `No user matches “${query}”.` }));
    for (const u of users) {
      list.append(el("li", {}, el("button", {
        type: "button", class: "link", "data-user": u.user_id,
        text: `user ${u.user_id} · ${u.events} events`,
        onclick: () => chooseUser(u.user_id, false),
      })));
    }
  } catch (e) {
    fail(e);
  }
}

function newVisitor() {
  const id = `visitor-${crypto.randomUUID().slice(0, 8)}`;
  sessionStorage.setItem(VISITOR, id);
  chooseUser(id, true);
}

async function chooseUser(userId, visitor) {
  state.user = userId;
  state.visitor = visitor;
  state.shown = [];
  say("");
  await showUser();
  await showRecommendations();
}

async function showUser() {
  const card = $("user-card");
  state.latest = null;
  try {
    const u = await api(`/v1/users/${encodeURIComponent(state.user)}?limit=30`);
    state.latest = u.history.length ? u.history[0].timestamp : null;
    const profile = Object.entries(u.profile);
    card.replaceChildren(
      el("p", { class: "who", text: `${state.visitor ? "Visitor" : "User"} ${u.user_id} · ${u.events} events` }),
      profile.length
        ? el("dl", { class: "profile" }, ...profile.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]))
        : el("p", { class: "note", text: "No profile fields." }),
      el("h4", { text: "History, newest first" }),
      historyList(u.history),
    );
  } catch (e) {
    if (e.status === 404) {
      card.replaceChildren(
        el("p", { class: "who", text: `${state.visitor ? "New visitor" : "Unknown user"} ${state.user}` }),
        el("p", { class: "empty", text: "No history yet: the list below is cold start (what is popular in this context, and new items by their text). Feedback creates the history." }),
      );
    } else {
      card.replaceChildren(el("p", { class: "empty", text: "Could not load this user." }));
      fail(e);
    }
  }
}

function historyList(events) {
  if (!events.length) return el("p", { class: "empty", text: "No events." });
  const list = el("ol", { class: "history" });
  for (const h of events) {
    const what = h.event === "rate" ? `rated ${fmt(h.value, 0)}★` : h.event;
    list.append(el("li", {},
      el("span", { class: `event event-${h.event}`, text: what }), " ",
      el("span", { class: "title", text: h.title }), " ",
      el("time", { datetime: new Date(h.timestamp * 1000).toISOString(), text: day(h.timestamp) })));
  }
  return list;
}

function requestContext() {
  const params = new URLSearchParams({ user_id: state.user, k: $("ctx-k").value, explain: "true" });
  if ($("ctx-device").value) params.set("device", $("ctx-device").value);
  if ($("ctx-scenario").value) params.set("scenario", $("ctx-scenario").value);
  const hour = $("ctx-hour").value;
  if (hour) {
    // the chosen hour on the day of the user's latest activity (today for a new visitor)
    const base = state.latest ? new Date(state.latest * 1000) : new Date();
    base.setUTCHours(Number(hour), 0, 0, 0);
    params.set("timestamp", String(Math.floor(base.getTime() / 1000)));
  }
  return params;
}

async function showRecommendations() {
  if (!state.user) return;
  const list = $("recs");
  const before = new Set(state.shown);
  try {
    const r = await api(`/v1/recommendations?${requestContext()}`);
    list.replaceChildren();
    const fresh = before.size ? r.items.filter((i) => !before.has(i.item_id)).length : 0;
    $("recs-note").textContent = r.items.length
      ? `${r.items.length} items from ${r.model_version}` + (fresh ? ` · ${fresh} new since your feedback` : "")
      : "Nothing to recommend for this user.";
    r.items.forEach((item, n) => list.append(recommendation(item, n, before)));
    state.shown = r.items.map((i) => i.item_id);
  } catch (e) {
    list.replaceChildren();
    $("recs-note").textContent = "";
    fail(e);
  }
}

function recommendation(item, n, before) {
  const isNew = before.size > 0 && !before.has(item.item_id);
  const feedback = (event, label, cls) => el("button", {
    type: "button", class: `fb ${cls}`, text: label,
    "aria-label": `${label}: ${item.title}`,
    onclick: () => sendFeedback(item, event),
  });
  return el("li", { class: isNew ? "rec new" : "rec", "data-item": item.item_id },
    el("div", { class: "rec-head" },
      el("span", { class: "rank", text: String(n + 1) }),
      el("span", { class: "title", text: item.title }),
      isNew ? el("span", { class: "badge new-badge", text: "new" }) : "",
    ),
    el("div", { class: "meta" },
      el("span", { class: "badge source", title: "the retriever that proposed it", text: item.source || "?" }),
      el("span", { class: "score", text: `score ${fmt(item.score, 3)}` }),
      item.explored ? el("span", {
        class: "badge explored",
        title: `exploration: shown in place of the ranker's item (probability ${fmt(item.propensity, 3)})`,
        text: "explored",
      }) : "",
    ),
    item.explanation ? el("p", { class: "why" },
      el("span", { text: item.explanation }),
      el("span", {
        class: "by",
        title: item.explanation_source === "llm"
          ? "written by the language model, checked against the evidence"
          : "template: the language model is off, failed a check or was not ready in time",
        text: item.explanation_source === "llm" ? " · LLM" : " · template",
      }),
    ) : "",
    el("div", { class: "actions" },
      feedback("like", "Like", "like"),
      feedback("dislike", "Dislike", "dislike"),
      feedback("view", "Watched", "view"),
    ),
  );
}

async function sendFeedback(item, event) {
  try {
    await api("/v1/events", { method: "POST", body: { user_id: state.user, item_id: item.item_id, event } });
    say(`${event === "view" ? "watched" : event} sent for “${item.title}”; the list is updated.`, "ok");
    await showRecommendations();
    await showUser();
  } catch (e) {
    fail(e);
  }
}

// ---- items ---------------------------------------------------------------------------------
async function searchItems(query) {
  const body = $("item-hits");
  try {
    const { items } = await api(`/v1/items?query=${encodeURIComponent(query)}&limit=20`);
    body.replaceChildren();
    if (!items.length) {
      body.append(el("tr", {}, el("td", { colspan: "5", class: "empty", text: `No item matches “${query}”.` })));
    }
    for (const i of items) {
      body.append(el("tr", { "data-item": i.item_id },
        el("td", { text: i.title }),
        el("td", { text: i.year ?? "–" }),
        el("td", { text: (i.genres || []).join(", ") }),
        el("td", { text: String(i.events) }),
        el("td", {}, el("button", { type: "button", class: "quiet", text: "similar",
          "aria-label": `items similar to ${i.title}`, onclick: () => showSimilar(i.item_id, i.title) })),
      ));
    }
  } catch (e) {
    fail(e);
  }
}

async function showSimilar(itemId, title) {
  const list = $("similar");
  try {
    const r = await api(`/v1/items/${encodeURIComponent(itemId)}/similar?k=10`);
    $("similar-note").textContent = `Nearest to “${title}” by text:`;
    list.replaceChildren(...r.items.map((i) =>
      el("li", { "data-item": i.item_id }, el("span", { class: "title", text: i.title }), " ",
        el("span", { class: "score", text: fmt(i.score, 3) }))));
  } catch (e) {
    fail(e);
  }
}

async function addItem(event) {
  event.preventDefault();
  const id = $("new-id").value.trim();
  const title = $("new-title").value.trim();
  const body = { title };
  const text = $("new-text").value.trim();
  if (text) body.text = text;
  const genres = $("new-genres").value.split(",").map((g) => g.trim()).filter(Boolean);
  if (genres.length) body.genres = genres;
  if ($("new-year").value) body.year = Number($("new-year").value);
  try {
    const r = await api(`/v1/items/${encodeURIComponent(id)}`, { method: "PUT", body });
    say(`${r.created ? "Added" : "Updated"} “${title}”: recommendable now (cold start by its text).`, "ok");
    await showSimilar(id, title);
  } catch (e) {
    fail(e);
  }
}

// ---- reports -------------------------------------------------------------------------------
const CHARTS = [
  ["Accuracy", ["ndcg@10", "recall@10", "mrr@10"]],
  ["Coverage", ["coverage@10"]],
  ["Novelty", ["novelty@10"]],
  ["Diversity", ["diversity@10"]],
  ["Popularity bias (lower is less biased)", ["arp@10", "gini@10"]],
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
  const charts = el("div", { class: "charts" }, ...CHARTS.map(([title, ms]) => barChart(title, ms, r.models)));
  return el("section", { class: "report panel", "aria-label": `report ${r.name}` },
    el("h3", { text: r.name }), el("div", { class: "scroll" }, table), charts);
}

function barChart(title, metrics, models) {
  const ms = metrics.filter((m) => models.some((x) => m in x.metrics));
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
  ms.forEach((m, j) => {
    add("rect", { x: label + j * 80, y: height - 12, width: 10, height: 10, class: `bar bar-${j}` });
    add("text", { x: label + j * 80 + 13, y: height - 3, class: "val" }, m);
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

// ---- views and start -----------------------------------------------------------------------
function showView() {
  const name = (location.hash.replace("#", "") || "explore").split("&")[0];
  const view = ["explore", "items", "reports"].includes(name) ? name : "explore";
  for (const v of ["explore", "items", "reports"]) {
    $(`view-${v}`).hidden = v !== view;
    document.querySelector(`nav a[data-view="${v}"]`).setAttribute("aria-current", v === view ? "page" : "false");
  }
  if (view === "reports") showReports();
  say("");
}

async function start() {
  takeKeyFromUrl();
  keyStatus();
  window.addEventListener("hashchange", showView);
  showView();
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key").value = "";
    keyStatus();
    say("Key saved for this browser session.", "ok");
    await loadContext();
    if (state.user) await chooseUser(state.user, state.visitor);
    if (!$("view-reports").hidden) showReports();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    keyStatus();
    say("Key forgotten.");
  });
  $("user-search").addEventListener("submit", (e) => {
    e.preventDefault();
    searchUsers($("user-query").value.trim());
  });
  $("new-visitor").addEventListener("click", newVisitor);
  for (const id of ["ctx-device", "ctx-hour", "ctx-scenario", "ctx-k"]) {
    $(id).addEventListener("change", () => { state.shown = []; showRecommendations(); });
  }
  $("item-search").addEventListener("submit", (e) => {
    e.preventDefault();
    searchItems($("item-query").value.trim());
  });
  $("item-form").addEventListener("submit", addItem);
  if (!(await health())) return;
  if (!keyStatus()) {
    say("Enter an API key to start (`llmrec keys create --role write`, or the key `make demo` printed).");
    return;
  }
  await loadContext();
  await searchUsers("");
}

start();
