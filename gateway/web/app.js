// Switchboard console: talks to the mesh only through the gateway's REST routes
// (grpc_json_transcoder). Server streams arrive as newline-delimited JSON read
// live with fetch(); errors are google.rpc.Status JSON. No framework, no build.
// Every request body carries only fields of its proto request message (JSON names in
// lowerCamelCase): the gateway refuses unknown fields.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", user: "", roles: new Set(), rooms: new Map(), room: "", lastSeq: new Map(), streams: [] };

// ---- small helpers --------------------------------------------------------

// RFC 3339 with up to nine fraction digits; Date.parse is only specified for three.
const parseTime = (text) => (text ? Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1")) : NaN);
const shortId = (id) => String(id || "").slice(0, 8);
const enumLabel = (value, prefix) => String(value || "").replace(prefix, "").replace(/_/g, " ").toLowerCase();
const hasRole = (...roles) => roles.some((role) => state.roles.has(role));

// ---- HTTP -----------------------------------------------------------------

// The banner stays until the next action succeeds or the person dismisses it.
function showError(err) {
  $("error-text").textContent = err ? String(err.message || err) : "";
  $("error").hidden = !err;
}

class ApiError extends Error {
  constructor(status, body) {
    super(`${status}: ${(body && body.message) || "request failed"}`.trim());
    this.status = status;
    this.code = body && body.code;
  }
}

// Runs a person's action: its error goes to the banner, its success clears the banner.
async function act(action) {
  try {
    await action();
    showError(null);
  } catch (err) {
    showError(err);
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

// Errors are google.rpc.Status JSON; anything else (a proxy in between) is kept as text.
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

// Keeps a stream open: reconnects after a pause until it is aborted.
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

// Lists show the newest first whatever order the answers (a list read, a create, a
// stream) arrive in.
function placeNewestFirst(list, item, createTime) {
  const time = parseTime(createTime) || Date.now();
  item.dataset.time = String(time);
  const next = [...list.children].find((other) => Number(other.dataset.time) < time);
  list.insertBefore(item, next || null);
}

// Coalesces bursts of "something changed" into one reload.
function debounced(reload, ms = 200) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => reload().catch(showError), ms);
  };
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
  state.roles = new Set(claims.roles || []);
  sessionStorage.setItem("switchboard.token", state.token);
  $("whoami").textContent = `${state.user} (${[...state.roles].join(", ")})`;
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
  $("error-dismiss").addEventListener("click", () => showError(null));
}

// ---- chat -----------------------------------------------------------------

// Unread counts of rooms that are not open, from live messages of others.
const unread = new Map();

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  const rooms = [...state.rooms.values()].sort((a, b) => Number(b.lastSequence || 0) - Number(a.lastSequence || 0));
  for (const room of rooms) {
    const item = document.createElement("li");
    item.textContent = `${room.displayName || room.id} (${enumLabel(room.kind, "ROOM_KIND_")})`;
    item.dataset.roomId = room.id;
    item.classList.toggle("open", room.id === state.room);
    const count = unread.get(room.id) || 0;
    if (count) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = `${count} new`;
      item.append(badge);
    }
    item.addEventListener("click", () => act(() => openRoom(room.id)));
    list.append(item);
  }
}

// Sessions change state in their room (system messages) and their rooms appear when
// they start: both refresh the list of sessions.
const sessionsChanged = debounced(() => loadSessions());

async function loadRooms() {
  const data = await api("GET", "/v1/rooms?pageSize=100");
  const known = new Set(state.rooms.keys());
  state.rooms = new Map((data.rooms || []).map((room) => [room.id, room]));
  renderRooms();
  renderAudience();
  if ([...state.rooms.values()].some((r) => !known.has(r.id) && r.kind === "ROOM_KIND_SESSION")) sessionsChanged();
}

// Forgets a room the caller left or was removed from: its position would be refused.
function dropRoom(roomId) {
  state.rooms.delete(roomId);
  state.lastSeq.delete(roomId);
  unread.delete(roomId);
  if (state.room === roomId) {
    state.room = "";
    $("room").hidden = true;
  }
  renderRooms();
}

function renderAudience() {
  const select = $("message-audience");
  const chosen = select.value;
  const room = state.rooms.get(state.room);
  const others = ((room && room.memberIds) || []).filter((id) => id !== state.user);
  select.replaceChildren(new Option("everyone", ""), ...others.map((id) => new Option(`only ${id}`, id)));
  select.value = others.includes(chosen) ? chosen : "";
}

function describeMessage(message) {
  if (message.kind === "MESSAGE_KIND_SYSTEM") return message.body;
  const audience = message.audience || {};
  const private_ = audience.kind === "AUDIENCE_KIND_MEMBER" || audience.kind === "AUDIENCE_KIND_MEMBERS";
  const to = private_ ? ` → ${(audience.recipientIds || []).join(", ")}` : "";
  return `${message.senderId}${to}: ${message.body}`;
}

// Shows each message once, in sequence order, whichever path (history, stream, the
// send's answer) brought it first.
function appendMessage(message, live = false) {
  const seq = Number(message.sequence);
  const room = state.rooms.get(message.roomId);
  if (room && seq > Number(room.lastSequence || 0)) room.lastSequence = String(seq);
  state.lastSeq.set(message.roomId, Math.max(seq, state.lastSeq.get(message.roomId) || 0));
  if (message.kind === "MESSAGE_KIND_SYSTEM" && String(message.systemEventType || "").startsWith("session.")) {
    sessionsChanged();
  }
  if (message.roomId !== state.room) {
    if (live && message.senderId !== state.user) unread.set(message.roomId, (unread.get(message.roomId) || 0) + 1);
    renderRooms();
    return;
  }
  const list = $("messages");
  if (list.querySelector(`li[data-seq="${seq}"]`)) return;
  if (room && message.senderId && !(room.memberIds || []).includes(message.senderId)) {
    refreshRoom(message.roomId).catch(() => {});
  }
  const item = document.createElement("li");
  item.dataset.seq = String(seq);
  const private_ = /MEMBERS?$/.test((message.audience || {}).kind || "");
  item.className = message.kind === "MESSAGE_KIND_SYSTEM" ? "system" : private_ ? "user private" : "user";
  item.textContent = describeMessage(message);
  let after = list.lastElementChild;
  while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
  if (after) after.after(item); else list.prepend(item);
  item.scrollIntoView({ block: "nearest" });
  renderRooms();
}

// The members change when someone joins: the audience choice follows.
async function refreshRoom(roomId) {
  const data = await api("GET", `/v1/rooms/${encodeURIComponent(roomId)}`);
  state.rooms.set(roomId, data.room);
  if (roomId === state.room) renderAudience();
}

async function openRoom(roomId) {
  state.room = roomId;
  unread.delete(roomId);
  state.lastSeq.set(roomId, 0);
  const room = state.rooms.get(roomId) || {};
  $("room").hidden = false;
  $("room-id").textContent = roomId;
  $("room-title").textContent = room.displayName || "";
  $("room-leave").hidden = room.kind !== "ROOM_KIND_GROUP";
  $("messages").replaceChildren();
  renderRooms();
  renderAudience();
  const data = await api("GET", `/v1/rooms/${encodeURIComponent(roomId)}/messages?pageSize=100`);
  for (const message of data.messages || []) appendMessage(message);
  subscribeRooms();
}

// One stream for all the caller's rooms; resumes from the last sequence seen. Opening a
// room restarts it with that room's position, so nothing sent in between is missed.
let chatStream = null;
function subscribeRooms() {
  if (chatStream) chatStream.abort();
  chatStream = follow("chat", (signal) => {
    const positions = [...state.lastSeq].map(([roomId, seq]) => ({ roomId, afterSequence: String(seq) }));
    return stream("POST", "/v1/rooms:subscribe", { positions }, onChatEvent, signal);
  });
}

function onChatEvent(event) {
  if (event.message) appendMessage(event.message, true);
  if (event.roomSubscribed) {
    // The replay up to last_sequence is complete: a reconnect resumes from there.
    const { roomId, lastSequence } = event.roomSubscribed;
    state.lastSeq.set(roomId, Math.max(Number(lastSequence || 0), state.lastSeq.get(roomId) || 0));
    if (!state.rooms.has(roomId)) loadRooms().catch(showError);
  }
  if (event.roomUnsubscribed) dropRoom(event.roomUnsubscribed.roomId);
}

function chosenAudience() {
  const recipient = $("message-audience").value;
  // Always explicit: an unset audience is refused rather than broadcast.
  return recipient ? { kind: "AUDIENCE_KIND_MEMBER", recipientIds: [recipient] } : { kind: "AUDIENCE_KIND_ROOM" };
}

function wireChat() {
  $("room-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", "/v1/rooms", {
        kind: "ROOM_KIND_GROUP", displayName: $("room-name").value, requestId: crypto.randomUUID(),
      });
      state.rooms.set(data.room.id, data.room);
      $("room-name").value = "";
      await openRoom(data.room.id);
    });
  });
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", `/v1/rooms/${encodeURIComponent($("join-id").value.trim())}:join`, {});
      state.rooms.set(data.room.id, data.room);
      $("join-id").value = "";
      await openRoom(data.room.id);
    });
  });
  $("room-leave").addEventListener("click", () => act(async () => {
    const roomId = state.room;
    await api("POST", `/v1/rooms/${encodeURIComponent(roomId)}:leave`, {});
    dropRoom(roomId);
    subscribeRooms();
  }));
  $("message-audience").addEventListener("focus", () => {
    if (state.room) refreshRoom(state.room).catch(() => {});
  });
  $("message-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", `/v1/rooms/${encodeURIComponent(state.room)}/messages`, {
        body: $("message-body").value, clientMessageId: crypto.randomUUID(), channel: "CHANNEL_CHAT",
        audience: chosenAudience(),
      });
      appendMessage(data.message);
      $("message-body").value = "";
    });
  });
}

// ---- paid session ---------------------------------------------------------

const ACTIVE = "SESSION_STATE_ACTIVE";
const TERMINAL_SESSION = new Set(["SESSION_STATE_ENDED", "SESSION_STATE_EXPIRED"]);
const SESSION_LABELS = {
  SESSION_STATE_ACTIVE: "active",
  SESSION_STATE_PAUSED_FOR_RECHARGE: "paused for recharge",
  SESSION_STATE_ENDED: "ended",
  SESSION_STATE_EXPIRED: "expired",
};
const sessionLabel = (value) => SESSION_LABELS[value] || enumLabel(value, "SESSION_STATE_");

// `warned` stays set from the warning until the paid time or the state changes
// (recharge, resume, pause, end): a person must be able to read it and act on it.
const sessionView = { id: "", session: null, watch: null, deadline: 0, warned: false, paidUntil: NaN, timer: 0 };
const sessions = new Map();

function renderCountdown() {
  const session = sessionView.session || {};
  const left = Math.max(0, Math.round((sessionView.deadline - Date.now()) / 1000));
  const active = session.state === ACTIVE;
  $("session-state").textContent = sessionLabel(session.state);
  $("session-state").className = session.state === "SESSION_STATE_PAUSED_FOR_RECHARGE" ? "paused" : "";
  $("session-countdown").textContent = active ? `${left} s left` : "";
  $("session-warning").hidden = !(active && sessionView.warned);
  const open = !TERMINAL_SESSION.has(session.state);
  $("recharge-form").hidden = !(open && (session.customerId === state.user || hasRole("admin")));
  $("session-end").hidden = !open;
}

// Whether the server's clock has reached warn_at. `serverTime` comes with watch
// updates; an RPC answer has only remaining_seconds, from which paid_until gives it.
function warningDue(session, remainingSeconds, serverTime) {
  const warnAt = parseTime(session.warnAt);
  const paidUntil = parseTime(session.paidUntil);
  if (Number.isNaN(warnAt) || Number.isNaN(paidUntil) || warnAt >= paidUntil) return false;
  const now = Number.isNaN(parseTime(serverTime)) ? paidUntil - Number(remainingSeconds || 0) * 1000 : parseTime(serverTime);
  return now >= warnAt;
}

// The server owns the clock: count down from its remaining_seconds, never from ours alone.
function showSession(session, kind, remainingSeconds, serverTime) {
  upsertSession(session);
  if (session.id !== sessionView.id) return;
  const paidUntil = parseTime(session.paidUntil);
  if (paidUntil !== sessionView.paidUntil || session.state !== ACTIVE) sessionView.warned = false;
  sessionView.paidUntil = paidUntil;
  if (kind === "SESSION_UPDATE_KIND_PAUSE_WARNING" || warningDue(session, remainingSeconds, serverTime)) {
    sessionView.warned = session.state === ACTIVE;
  }
  sessionView.session = session;
  sessionView.deadline = Date.now() + Number(remainingSeconds || 0) * 1000;
  renderCountdown();
  if (TERMINAL_SESSION.has(session.state) && sessionView.watch) {
    sessionView.watch.abort(); // the server ends the stream too: no reconnect loop
    sessionView.watch = null;
  }
}

function onSessionUpdate(update) {
  if (update.session) showSession(update.session, update.kind, update.remainingSeconds, update.serverTime);
}

function watchSession(sessionId) {
  if (sessionView.watch) sessionView.watch.abort();
  if (sessionView.id !== sessionId) Object.assign(sessionView, { session: null, warned: false, paidUntil: NaN });
  sessionView.id = sessionId;
  $("session-view").hidden = false;
  $("session-id").textContent = sessionId;
  const known = sessions.get(sessionId);
  if (known) showSession(known, "", known.remainingSeconds, "");
  clearInterval(sessionView.timer);
  sessionView.timer = setInterval(renderCountdown, 250);
  sessionView.watch = follow("session", (signal) =>
    stream("GET", `/v1/sessions/${encodeURIComponent(sessionId)}:watch`, undefined, onSessionUpdate, signal));
}

function renderSessionItem(item, session) {
  item.textContent = `${session.customerId} ↔ ${session.advisorId}: ${sessionLabel(session.state)} (${shortId(session.id)})`;
  item.title = session.id;
  item.dataset.state = session.state;
}

// Puts the session's latest known state into the list (new sessions first).
function upsertSession(session) {
  sessions.set(session.id, session);
  let item = document.querySelector(`#sessions li[data-session-id="${CSS.escape(session.id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.sessionId = session.id;
    item.addEventListener("click", () => watchSession(session.id));
    placeNewestFirst($("sessions"), item, session.createTime);
  }
  renderSessionItem(item, session);
}

async function loadSessions() {
  const data = await api("GET", "/v1/sessions?pageSize=20");
  for (const session of data.sessions || []) {
    // The watched session's own stream is fresher than a list read.
    if (session.id === sessionView.id && sessionView.session && Number(sessionView.session.version) > Number(session.version)) continue;
    upsertSession(session);
  }
}

function wireSession() {
  $("session-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", "/v1/sessions", {
        advisorId: $("session-advisor").value.trim(), prepaidSeconds: String($("session-seconds").value),
        requestId: crypto.randomUUID(),
      });
      upsertSession(data.session);
      watchSession(data.session.id);
      if (data.session.roomId) {
        await loadRooms();
        await openRoom(data.session.roomId);
      }
    });
  });
  $("sessions-refresh").addEventListener("click", () => act(() => loadSessions()));
  $("recharge-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", `/v1/sessions/${encodeURIComponent(sessionView.id)}:recharge`, {
        seconds: String($("recharge-seconds").value), requestId: crypto.randomUUID(),
      });
      showSession(data.session, "", data.session.remainingSeconds, "");
    });
  });
  $("session-end").addEventListener("click", () => act(async () => {
    const data = await api("POST", `/v1/sessions/${encodeURIComponent(sessionView.id)}:end`, {});
    showSession(data.session, "", 0, "");
  }));
}

// ---- jobs -----------------------------------------------------------------

const TERMINAL_JOB = /SUCCEEDED|FAILED|CANCELLED$/;
const jobWatches = new Map();

// `progress` is already a percentage (0 to 100, registration.v1.Job.progress).
function describeJob(job) {
  const status = enumLabel(job.status, "JOB_STATUS_");
  const running = job.status === "JOB_STATUS_RUNNING" || job.status === "JOB_STATUS_SUCCEEDED";
  const progress = running || Number(job.progress) > 0 ? ` ${Math.round(Number(job.progress || 0))}%` : "";
  const result = job.result && Object.keys(job.result).length ? ` → ${JSON.stringify(job.result)}` : "";
  return `${job.definition} ${shortId(job.id)}: ${status}${progress}${job.error ? ` (${job.error})` : ""}${result}`;
}

function renderJob(job) {
  let item = document.querySelector(`#job-list li[data-job-id="${CSS.escape(job.id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.jobId = job.id;
    const text = document.createElement("span");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => act(async () => {
      const data = await api("POST", `/v1/jobs/${encodeURIComponent(job.id)}:cancel`, {});
      renderJob(data.job);
    }));
    item.append(text, cancel);
    placeNewestFirst($("job-list"), item, job.createTime);
  }
  // A stale snapshot (an older sequence) never overwrites a newer one.
  if (Number(item.dataset.sequence || -1) > Number(job.sequence || 0)) return;
  item.dataset.sequence = String(job.sequence || 0);
  item.dataset.status = job.status;
  item.querySelector("span").textContent = describeJob(job);
  item.querySelector("button").hidden = TERMINAL_JOB.test(job.status) || job.status === "JOB_STATUS_CANCELLING" ||
    job.ownerId !== state.user && !hasRole("admin");
  if (!TERMINAL_JOB.test(job.status)) watchJob(job.id);
}

// A browser keeps at most six HTTP/1.1 connections per origin and every open stream
// holds one: the chat, session and statistics streams plus this many job watches leave
// room for ordinary requests. Unfinished jobs beyond it are polled until a slot frees.
const MAX_JOB_WATCHES = 2;
const JOB_POLL_MS = 2000;

// One watch per unfinished job (within the budget), closed at its terminal status.
function watchJob(jobId) {
  if (jobWatches.has(jobId)) return;
  if (jobWatches.size >= MAX_JOB_WATCHES) { pollJobs(); return; }
  const watch = follow("job", (signal) =>
    stream("GET", `/v1/jobs/${encodeURIComponent(jobId)}:watch`, undefined, (update) => {
      renderJob(update.job);
      if (TERMINAL_JOB.test(update.job.status)) { watch.abort(); jobWatches.delete(jobId); }
    }, signal));
  jobWatches.set(jobId, watch);
}

// Refreshes the list while some unfinished job has no watch; stops when none is left.
let jobPoll = 0;
function pollJobs() {
  if (jobPoll) return;
  jobPoll = setInterval(() => {
    const unwatched = [...document.querySelectorAll("#job-list li")]
      .some((li) => !TERMINAL_JOB.test(li.dataset.status) && !jobWatches.has(li.dataset.jobId));
    if (!unwatched) { clearInterval(jobPoll); jobPoll = 0; return; }
    api("GET", "/v1/jobs?pageSize=50").then((data) => (data.jobs || []).forEach(renderJob)).catch(showError);
  }, JOB_POLL_MS);
}

async function loadJobs() {
  const defs = await api("GET", "/v1/jobDefinitions?pageSize=100");
  const definitions = defs.jobDefinitions || [];
  $("job-definition").replaceChildren(...definitions.map((d) => new Option(d.name, d.name)));
  const hint = () => {
    const d = definitions.find((x) => x.name === $("job-definition").value);
    $("job-parameters").placeholder = d ? JSON.stringify(Object.fromEntries((d.parameters || []).map((p) => [p.name, p.type === "PARAMETER_TYPE_STRING" ? "" : 1]))) : "{}";
  };
  $("job-definition").addEventListener("change", hint);
  hint();
  const jobs = await api("GET", "/v1/jobs?pageSize=20");
  for (const job of jobs.jobs || []) renderJob(job);
}

function wireJobs() {
  $("job-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const data = await api("POST", "/v1/jobs", {
        definition: $("job-definition").value, parameters: JSON.parse($("job-parameters").value || "{}"),
        idempotencyKey: crypto.randomUUID(),
      });
      renderJob(data.job);
    });
  });
}

// ---- orders and statistics ------------------------------------------------

// Minor units per major unit from the currency's ISO 4217 exponent (EUR 2, JPY 0, BHD 3).
const exponent = (currency) => {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch { return 2; }
};
const money = (m) => {
  if (!m || !m.currencyCode) return "";
  const digits = exponent(m.currencyCode);
  return `${(Number(m.amountMinor || 0) / 10 ** digits).toFixed(digits)} ${m.currencyCode}`;
};
// "Today" is the person's own day: the browser's IANA zone and its local date.
const timeZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const today = () => new Intl.DateTimeFormat("en-CA", { timeZone: timeZone() }).format(new Date());

function renderStats(stats) {
  if (!stats) return;
  $("stats").textContent = `${stats.date} (${stats.timeZone}): ${stats.ordersPlaced} placed, ${stats.ordersCancelled} cancelled, ` +
    `revenue ${(stats.revenue || []).map(money).join(" + ") || "0"}`;
}

function watchStats() {
  const day = `${today()}?timeZone=${encodeURIComponent(timeZone())}`;
  api("GET", `/v1/stats/daily/${day}`).then((d) => renderStats(d.stats)).catch(showError);
  follow("stats", (signal) =>
    stream("GET", `/v1/stats/daily/${day.replace("?", ":watch?")}`, undefined, (u) => renderStats(u.stats), signal));
}

function renderOrder(order) {
  let item = document.querySelector(`#order-list li[data-order-id="${CSS.escape(order.id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.orderId = order.id;
    const text = document.createElement("span");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => act(async () => {
      const data = await api("POST", `/v1/orders/${encodeURIComponent(order.id)}:cancel`, {});
      renderOrder(data.order);
    }));
    item.append(text, cancel);
    placeNewestFirst($("order-list"), item, order.createTime);
  }
  const lines = (order.lines || []).map((l) => `${l.quantity} x ${l.sku}`).join(", ");
  item.dataset.status = order.status;
  item.querySelector("span").textContent =
    `${shortId(order.id)}: ${lines}, ${money(order.total)}, ${enumLabel(order.status, "ORDER_STATUS_")}`;
  item.querySelector("button").hidden = order.status !== "ORDER_STATUS_PLACED" || !hasRole("customer", "admin");
}

async function loadOrders() {
  const data = await api("GET", "/v1/orders?pageSize=20");
  for (const order of data.orders || []) renderOrder(order);
}

function wireOrders() {
  $("order-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const currency = $("order-currency").value;
      const minor = Math.round(Number($("order-price").value) * 10 ** exponent(currency));
      const data = await api("POST", "/v1/orders", {
        idempotencyKey: crypto.randomUUID(),
        lines: [{
          sku: $("order-sku").value.trim(), quantity: String($("order-quantity").value),
          unitPrice: { currencyCode: currency, amountMinor: String(minor) },
        }],
      });
      renderOrder(data.order);
    });
  });
}

// ---- start ----------------------------------------------------------------

// Each part shows only to the roles its RPCs admit (the proto access rules).
function showParts() {
  $("chat").hidden = !hasRole("customer", "advisor", "admin");
  $("session").hidden = !hasRole("customer", "advisor", "admin", "operator");
  $("session-form").hidden = !hasRole("customer");
  $("jobs").hidden = !hasRole("customer", "advisor", "admin", "operator");
  $("job-form").hidden = !hasRole("customer", "advisor", "admin");
  $("orders").hidden = !hasRole("customer", "admin", "operator");
  $("order-form").hidden = !hasRole("customer");
  $("stats").hidden = !hasRole("admin", "operator");
}

function startConsole() {
  showParts();
  if (!$("chat").hidden) loadRooms().catch(showError).finally(() => { if (!chatStream) subscribeRooms(); });
  if (!$("session").hidden) loadSessions().catch(showError);
  if (!$("jobs").hidden) loadJobs().catch(showError);
  if (!$("orders").hidden) loadOrders().catch(showError);
  if (!$("stats").hidden) watchStats();
}

wireChat();
wireSession();
wireJobs();
wireOrders();
renderSignIn();
const saved = sessionStorage.getItem("switchboard.token");
if (saved) signIn(saved);
