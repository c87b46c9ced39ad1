// The page's shared pieces: the API client, status line and DOM helpers. Every piece of data
// is written with textContent (never as HTML).

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

export { $, KEY, VISITOR, ApiError, api, say, fail, el, fmt, day };
