// The llmrec web page: plain ES modules against the v1 HTTP API, no build step, no network
// beyond this server. Every piece of data is written with textContent (never as HTML).

import { $, KEY, VISITOR, api, say, fail, el, fmt, day } from "./core.js";
import { showReports } from "./reports.js";
import { showDashboard } from "./dashboard.js";

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
const state = { user: null, visitor: false, latest: null, shown: [], conversation: null };

// hints quote the served catalogue (not MovieLens words); the "view" button says the verb
const VIEW_VERBS = { movie: "Watched", film: "Watched", show: "Watched", video: "Watched",
  book: "Read", article: "Read", post: "Read", story: "Read", news: "Read",
  song: "Listened", track: "Listened", album: "Listened", podcast: "Listened" };
const hints = { ask: "Ask in words", view: "Viewed" };

function applyHints(noun, ex) {
  hints.view = VIEW_VERBS[noun] || "Viewed";
  const like = ex.title ? `like ${ex.title}` : `the kind of ${noun} you want`;
  hints.ask = `Ask in words: ${like}` + (ex.genres.length ? `, no ${ex.genres[ex.genres.length - 1]}` : "");
  if (!state.conversation) $("ask-q").placeholder = hints.ask;
  if (ex.user) $("user-query").placeholder = `user id, e.g. ${ex.user}`;
  if (ex.title) $("item-query").placeholder = `title or id, e.g. ${ex.title}`;
  $("new-id").placeholder = `e.g. new-${noun}-1`;
  if (ex.genres.length) $("new-genres").placeholder = ex.genres.join(", ");
}

async function loadContext() {
  try {
    const values = await api("/v1/context");
    applyHints(values.item_noun || "item", values.examples || { genres: [] });
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
  resetAsk();
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
  if (state.conversation) return ask("");  // the conversation's list, after feedback too
  const before = new Set(state.shown);
  try {
    showList(await api(`/v1/recommendations?${requestContext()}`), before);
  } catch (e) {
    $("recs").replaceChildren();
    $("recs-note").textContent = "";
    fail(e);
  }
}

function showList(r, before) {
  const list = $("recs");
  list.replaceChildren();
  const fresh = before.size ? r.items.filter((i) => !before.has(i.item_id)).length : 0;
  const empty = r.query?.reason ? `Nothing matches: ${r.query.reason}.` : "Nothing to recommend for this user.";
  $("recs-note").textContent = r.items.length
    ? `${r.items.length} items from ${r.model_version}` + (fresh ? ` · ${fresh} new since your last step` : "")
    : empty;
  r.items.forEach((item, n) => list.append(recommendation(item, n, before)));
  state.shown = r.items.map((i) => i.item_id);
}

// ---- asking in words: a conversation whose follow-ups refine the request --------------------
async function ask(q, remove = []) {
  if (!state.user) {
    say("Choose a user or a new visitor first.");
    return;
  }
  const before = new Set(state.shown);
  const body = { user_id: state.user, q, k: Number($("ctx-k").value), remove };
  if (state.conversation) body.conversation_id = state.conversation;
  try {
    const r = await api("/v1/recommendations", { method: "POST", body });
    state.conversation = r.conversation_id;
    showChips(r.query);
    showList(r, before);
    $("ask-q").value = "";
    $("ask-q").placeholder = "Follow up: more like the second one, no horror, older";
    $("ask-clear").hidden = false;
  } catch (e) {
    if (e.status === 404 && state.conversation) {
      resetAsk();
      say("That conversation has expired: ask again.", "error");
      return;
    }
    fail(e);
  }
}

const CHIP_LABELS = { years: "years", genre: "genre", "not-genre": "no", like: "like", not: "not" };

function showChips(query) {
  const chips = $("ask-chips");
  chips.replaceChildren(...query.constraints.map((c) => {
    const label = `${CHIP_LABELS[c.kind] || c.kind}: ${c.value}`;
    return el("li", {}, el("button", {
      type: "button", class: "chip", "data-kind": c.kind, text: `${label} ×`,
      "aria-label": `remove ${label}`, onclick: () => ask("", [c]),
    }));
  }));
  if (query.intent) {
    chips.append(el("li", {}, el("span", {
      class: "chip words", title: "matched by text against the items", text: `words: ${query.intent}`,
    })));
  }
  chips.hidden = !chips.children.length;
}

function resetAsk() {
  state.conversation = null;
  $("ask-chips").replaceChildren();
  $("ask-chips").hidden = true;
  $("ask-clear").hidden = true;
  $("ask-q").value = "";
  $("ask-q").placeholder = hints.ask;
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
        title: {
          llm: "written by the language model, checked against the evidence",
          query: "what the item matches: the request's constraints, its anchor, your history",
        }[item.explanation_source] || "template: the language model is off, failed a check or was not ready in time",
        text: { llm: " · LLM", query: " · your request" }[item.explanation_source] || " · template",
      }),
    ) : "",
    el("div", { class: "actions" },
      feedback("like", "Like", "like"),
      feedback("dislike", "Dislike", "dislike"),
      feedback("view", hints.view, "view"),
    ),
  );
}

async function sendFeedback(item, event) {
  try {
    await api("/v1/events", { method: "POST", body: { user_id: state.user, item_id: item.item_id, event } });
    say(`${event === "view" ? hints.view.toLowerCase() : event} sent for “${item.title}”; the list is updated.`, "ok");
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

// ---- views and start -----------------------------------------------------------------------
function showView() {
  const name = (location.hash.replace("#", "") || "explore").split("&")[0];
  const views = ["explore", "items", "reports", "dashboard"];
  const view = views.includes(name) ? name : "explore";
  for (const v of views) {
    $(`view-${v}`).hidden = v !== view;
    document.querySelector(`nav a[data-view="${v}"]`).setAttribute("aria-current", v === view ? "page" : "false");
  }
  if (view === "reports") showReports();
  if (view === "dashboard") showDashboard();
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
    await searchUsers($("user-query").value.trim());  // the list fills at once, not on a search
    if (state.user) await chooseUser(state.user, state.visitor);
    if (!$("view-reports").hidden) showReports();
    if (!$("view-dashboard").hidden) showDashboard();
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
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("ask-q").value.trim();
    if (q || state.conversation) ask(q);
  });
  $("ask-clear").addEventListener("click", () => { resetAsk(); showRecommendations(); });
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
