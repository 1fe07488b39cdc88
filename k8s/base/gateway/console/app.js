// Switchboard console: talks to the mesh only through the gateway's REST routes
// (grpc_json_transcoder). Server streams arrive as newline-delimited JSON read
// live with fetch(); errors are google.rpc.Status JSON. No framework, no build.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", user: "", roles: [], rooms: new Map(), room: "", lastSeq: new Map(), streams: [] };

// ---- HTTP -----------------------------------------------------------------

function showError(err) {
  const box = $("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

class ApiError extends Error {
  constructor(status, body) {
    super(`${status}: ${(body && body.message) || "request failed"}`.trim());
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${state.token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return parseAnswer(response.status, response.ok, await response.text());
}

// Errors from a service are google.rpc.Status JSON; Envoy's own replies (401, 503) are text.
function parseAnswer(status, ok, text) {
  let data;
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!ok) throw new ApiError(status, data);
  return data;
}

// Reads a server stream line by line until it ends or `signal` aborts.
async function stream(method, path, body, onItem, signal) {
  const response = await fetch(path, {
    method,
    signal,
    headers: { "content-type": "application/json", authorization: `Bearer ${state.token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) parseAnswer(response.status, false, await response.text());
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) onItem(JSON.parse(line));
    }
  }
}

// Keeps a stream open: reconnects after a pause until `stop()` is called.
function follow(name, open) {
  const controller = new AbortController();
  state.streams.push(controller);
  (async () => {
    while (!controller.signal.aborted) {
      try {
        await open(controller.signal);
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err instanceof ApiError && err.status !== 503) { showError(`${name}: ${err.message}`); return; }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return controller;
}

// ---- sign in --------------------------------------------------------------

function decodeClaims(token) {
  const part = token.split(".")[1] || "";
  return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
}

function signIn(token) {
  const claims = decodeClaims(token.trim());
  state.token = token.trim();
  state.user = claims.sub;
  state.roles = claims.roles || [];
  sessionStorage.setItem("switchboard.token", state.token);
  $("whoami").textContent = `${state.user} (${state.roles.join(", ")})`;
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  showError(null);
  startConsole();
}

function signOut() {
  sessionStorage.removeItem("switchboard.token");
  location.reload();
}

function renderSignIn() {
  const config = window.SWITCHBOARD || { devUsers: [] };
  $("dev-note").hidden = !config.devOnly;
  for (const dev of config.devUsers) {
    const button = document.createElement("button");
    button.textContent = `Sign in as ${dev.user} (${dev.roles.join(", ")})`;
    button.dataset.user = dev.user;
    button.addEventListener("click", () => signIn(dev.token));
    $("dev-users").append(button);
  }
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    try { signIn($("token-input").value); } catch (err) { showError("not a JWT: " + err.message); }
  });
  $("sign-out").addEventListener("click", signOut);
}

// ---- chat -----------------------------------------------------------------

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of state.rooms.values()) {
    const item = document.createElement("li");
    item.textContent = `${room.displayName || room.id} (${room.kind.replace("ROOM_KIND_", "").toLowerCase()})`;
    item.dataset.roomId = room.id;
    item.addEventListener("click", () => openRoom(room.id).catch(showError));
    list.append(item);
  }
}

async function loadRooms() {
  const data = await api("GET", "/v1/rooms?pageSize=100");
  for (const room of data.rooms || []) state.rooms.set(room.id, room);
  renderRooms();
}

function appendMessage(message) {
  const seq = Number(message.sequence);
  if (seq <= (state.lastSeq.get(message.roomId) || 0)) return; // replayed twice: show once
  state.lastSeq.set(message.roomId, seq);
  if (message.roomId !== state.room) return;
  const item = document.createElement("li");
  item.className = message.kind === "MESSAGE_KIND_SYSTEM" ? "system" : "user";
  item.textContent = message.kind === "MESSAGE_KIND_SYSTEM" ? message.body : `${message.senderId}: ${message.body}`;
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
}

async function openRoom(roomId) {
  state.room = roomId;
  state.lastSeq.set(roomId, 0);
  $("room").hidden = false;
  $("room-id").textContent = roomId;
  $("room-title").textContent = (state.rooms.get(roomId) || {}).displayName || "";
  $("messages").replaceChildren();
  const data = await api("GET", `/v1/rooms/${encodeURIComponent(roomId)}/messages?pageSize=100`);
  const messages = (data.messages || []).slice().sort((a, b) => Number(a.sequence) - Number(b.sequence));
  for (const message of messages) appendMessage(message);
  subscribeRooms();
}

// One stream for all the caller's rooms; resumes from the last sequence seen. Opening a
// room restarts it with that room's position, so nothing sent in between is missed.
let chatStream = null;
function subscribeRooms() {
  if (chatStream) chatStream.abort();
  chatStream = follow("chat", (signal) => {
    const positions = [...state.lastSeq].map(([roomId, seq]) => ({ roomId, afterSequence: String(seq) }));
    return stream("POST", "/v1/rooms:subscribe", { positions }, (event) => {
      if (event.message) appendMessage(event.message);
      if (event.roomSubscribed && !state.rooms.has(event.roomSubscribed.roomId)) loadRooms().catch(showError);
    }, signal);
  });
}

function wireChat() {
  $("room-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await api("POST", "/v1/rooms", {
        kind: "ROOM_KIND_GROUP", displayName: $("room-name").value, requestId: crypto.randomUUID(),
      });
      state.rooms.set(data.room.id, data.room);
      renderRooms();
      await openRoom(data.room.id);
    } catch (err) { showError(err); }
  });
  $("join-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await api("POST", `/v1/rooms/${encodeURIComponent($("join-id").value.trim())}:join`, {});
      state.rooms.set(data.room.id, data.room);
      renderRooms();
      await openRoom(data.room.id);
    } catch (err) { showError(err); }
  });
  $("message-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await api("POST", `/v1/rooms/${encodeURIComponent(state.room)}/messages`, {
        body: $("message-body").value, clientMessageId: crypto.randomUUID(), channel: "CHANNEL_CHAT",
      });
      appendMessage(data.message);
      $("message-body").value = "";
    } catch (err) { showError(err); }
  });
}

// ---- paid session ---------------------------------------------------------

const sessionView = { id: "", watch: null, deadline: 0, state: "", timer: 0 };

function renderCountdown() {
  const left = Math.max(0, Math.round((sessionView.deadline - Date.now()) / 1000));
  const paused = sessionView.state === "SESSION_STATE_PAUSED_FOR_RECHARGE";
  const label = {
    SESSION_STATE_ACTIVE: "active",
    SESSION_STATE_PAUSED_FOR_RECHARGE: "paused for recharge",
    SESSION_STATE_ENDED: "ended",
    SESSION_STATE_EXPIRED: "expired",
  }[sessionView.state] || sessionView.state;
  $("session-state").textContent = label;
  $("session-state").className = paused ? "paused" : "";
  $("session-countdown").textContent = sessionView.state === "SESSION_STATE_ACTIVE" ? `${left} s left` : "";
}

// The server owns the clock: count down from its remaining_seconds, never from ours alone.
function onSessionUpdate(update) {
  const session = update.session || {};
  sessionView.state = session.state || sessionView.state;
  sessionView.deadline = Date.now() + Number(update.remainingSeconds || 0) * 1000;
  $("session-warning").hidden = update.kind !== "SESSION_UPDATE_KIND_PAUSE_WARNING";
  if (sessionView.state !== "SESSION_STATE_ACTIVE") $("session-warning").hidden = true;
  renderCountdown();
}

function watchSession(sessionId) {
  if (sessionView.watch) sessionView.watch.abort();
  sessionView.id = sessionId;
  $("session-view").hidden = false;
  $("session-id").textContent = sessionId;
  clearInterval(sessionView.timer);
  sessionView.timer = setInterval(renderCountdown, 250);
  sessionView.watch = follow("session", (signal) =>
    stream("GET", `/v1/sessions/${encodeURIComponent(sessionId)}:watch`, undefined, onSessionUpdate, signal));
}

async function loadSessions() {
  const data = await api("GET", "/v1/sessions?pageSize=20");
  const list = $("sessions");
  list.replaceChildren();
  for (const session of data.sessions || []) {
    const item = document.createElement("li");
    item.textContent = `${session.id}: ${session.customerId} ↔ ${session.advisorId}, ${session.state}`;
    item.dataset.sessionId = session.id;
    item.addEventListener("click", () => watchSession(session.id));
    list.append(item);
  }
}

function wireSession() {
  $("session-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await api("POST", "/v1/sessions", {
        advisorId: $("session-advisor").value, prepaidSeconds: $("session-seconds").value,
        requestId: crypto.randomUUID(),
      });
      watchSession(data.session.id);
      if (data.session.roomId) { await loadRooms(); await openRoom(data.session.roomId); }
    } catch (err) { showError(err); }
  });
  $("sessions-refresh").addEventListener("click", () => loadSessions().catch(showError));
  $("recharge-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/v1/sessions/${encodeURIComponent(sessionView.id)}:recharge`, {
        seconds: $("recharge-seconds").value, requestId: crypto.randomUUID(),
      });
    } catch (err) { showError(err); }
  });
  $("session-end").addEventListener("click", () =>
    api("POST", `/v1/sessions/${encodeURIComponent(sessionView.id)}:end`, {}).catch(showError));
}

// ---- jobs -----------------------------------------------------------------

function renderJob(job) {
  let item = document.querySelector(`#job-list li[data-job-id="${CSS.escape(job.id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.jobId = job.id;
    $("job-list").prepend(item);
  }
  const progress = job.progress ? ` ${Math.round(job.progress * 100)}%` : "";
  item.textContent = `${job.definition} ${job.id}: ${job.status.replace("JOB_STATUS_", "")}${progress}` +
    (job.error ? ` (${job.error})` : "") + (job.result ? ` → ${JSON.stringify(job.result)}` : "");
}

function watchJob(jobId) {
  const watch = follow("job", (signal) =>
    stream("GET", `/v1/jobs/${encodeURIComponent(jobId)}:watch`, undefined, (update) => {
      renderJob(update.job);
      if (/SUCCEEDED|FAILED|CANCELLED/.test(update.job.status)) watch.abort();
    }, signal));
}

async function loadJobs() {
  const defs = await api("GET", "/v1/jobDefinitions?pageSize=100");
  $("job-definition").replaceChildren(...(defs.jobDefinitions || []).map((d) => new Option(d.name, d.name)));
  const jobs = await api("GET", "/v1/jobs?pageSize=20");
  for (const job of (jobs.jobs || []).reverse()) renderJob(job);
}

function wireJobs() {
  $("job-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await api("POST", "/v1/jobs", {
        definition: $("job-definition").value, parameters: JSON.parse($("job-parameters").value || "{}"),
        idempotencyKey: crypto.randomUUID(),
      });
      renderJob(data.job);
      watchJob(data.job.id);
    } catch (err) { showError(err); }
  });
}

// ---- orders and statistics ------------------------------------------------

const money = (m) => (m ? `${(Number(m.amountMinor) / 100).toFixed(2)} ${m.currencyCode}` : "");
const today = () => new Date().toISOString().slice(0, 10);

function renderStats(stats) {
  if (!stats) return;
  $("stats").textContent = `${stats.date}: ${stats.ordersPlaced} placed, ${stats.ordersCancelled} cancelled, ` +
    `revenue ${(stats.revenue || []).map(money).join(" + ") || "0"}`;
}

function watchStats() {
  const date = today();
  api("GET", `/v1/stats/daily/${date}`).then((d) => renderStats(d.stats)).catch(() => {});
  follow("stats", (signal) =>
    stream("GET", `/v1/stats/daily/${date}:watch`, undefined, (update) => renderStats(update.stats), signal));
}

function wireOrders() {
  $("order-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const currency = $("order-currency").value;
      const data = await api("POST", "/v1/orders", {
        idempotencyKey: crypto.randomUUID(),
        lines: [{
          sku: $("order-sku").value, quantity: $("order-quantity").value,
          unitPrice: { currencyCode: currency, amountMinor: String(Math.round(Number($("order-price").value) * 100)) },
        }],
      });
      const item = document.createElement("li");
      item.textContent = `${data.order.id}: ${money(data.order.total)} ${data.order.status}`;
      $("order-list").prepend(item);
    } catch (err) { showError(err); }
  });
}

// ---- start ----------------------------------------------------------------

function startConsole() {
  const roles = new Set(state.roles);
  loadRooms().catch(showError).finally(() => { if (!chatStream) subscribeRooms(); });
  loadSessions().catch(() => {});
  loadJobs().catch(() => {});
  // Statistics are for staff; customers still see their orders.
  $("orders").querySelector("#stats").hidden = !(roles.has("admin") || roles.has("operator"));
  if (roles.has("admin") || roles.has("operator")) watchStats();
}

wireChat();
wireSession();
wireJobs();
wireOrders();
renderSignIn();
const saved = sessionStorage.getItem("switchboard.token");
if (saved) signIn(saved);
