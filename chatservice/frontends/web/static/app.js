// The chat's web client: dependency-free ES modules, no build step.
//
// Everything another user can have typed reaches the page through
// textContent (the el() helper below), never as HTML. Conversations (the
// server's own, rooms, private talks) each keep a scrollback element of
// their own; the one shown is the current one.

import { COMMANDS, parseLine } from "./commands.js";
import { Connection } from "./connection.js";
import { describe } from "./errors.js";
import * as settings from "./settings.js";
import { $, el } from "./dom.js";

// What outlives a reload: the nickname chosen, whether it is registered,
// the rooms joined. Never a password.
const saved = {
  get(name, fallback) {
    try {
      const value = localStorage.getItem(`chat.${name}`);
      return value === null ? fallback : JSON.parse(value);
    } catch {
      return fallback;
    }
  },
  set(name, value) {
    try {
      localStorage.setItem(`chat.${name}`, JSON.stringify(value));
    } catch {
      // Private browsing: nothing is remembered.
    }
  },
};

const state = {
  me: null,
  // The password is kept in memory only, to log in again after a reconnect.
  credentials: null,
  loggingIn: null,
  conversations: new Map(),
  current: null,
  everConnected: false,
  offline: false,
  switchTo: null,
  namesAsked: new Set(),
  topicAsked: new Set(),
  // Settings and lists asked for by a command, to be shown as lines.
  settingsAsked: new Set(),
  listsAsked: new Set(),
  // The keys given to enter rooms, to enter them again after a reconnect.
  keys: new Map(),
  sent: [],
  sentAt: 0,
  draft: "",
};

const RECENT = 200;
// How near the top (in pixels) scrolling up asks for older lines, and how
// many a page holds.
const OLDER_MARGIN = 40;
const OLDER_PAGE = 50;
const fold = (name) => name.toLowerCase();

// Conversations

function keyOf(kind, name) {
  return kind === "server" ? "server" : `${kind}:${fold(name)}`;
}

function conversation(kind, name) {
  const key = keyOf(kind, name);
  let c = state.conversations.get(key);
  if (c) return c;
  c = {
    key,
    kind,
    name,
    log: el("div", "log"),
    unread: 0,
    mention: false,
    members: new Map(),
    topic: "",
    joined: false,
    rejoining: false,
    historyAsked: false,
    recent: [],
    // Older history: the cursor of the page before the oldest line shown
    // (null: none, or not known yet), whether a page is on its way, and
    // whether the beginning is shown.
    before: null,
    olderAsked: false,
    beginning: false,
    // Whether entering the room replayed its history, and the time of the
    // oldest line shown.
    replayed: false,
    firstTime: undefined,
    // A room's settings, bans and mutes, once asked for (null: not known).
    settings: null,
    bans: null,
    mutes: null,
  };
  c.log.hidden = true;
  // Scrolled to the top (or, when nothing scrolls, wheeled up): the page
  // before.
  c.log.addEventListener("scroll", () => {
    if (c.log.scrollTop <= OLDER_MARGIN) older(c);
  });
  c.log.addEventListener("wheel", (e) => {
    if (e.deltaY < 0 && c.log.scrollTop <= OLDER_MARGIN) older(c);
  });
  c.log.setAttribute("role", "log");
  c.log.dataset.conversation = key;
  $("logs").append(c.log);
  state.conversations.set(key, c);
  drawTabs();
  return c;
}

const server = () => conversation("server", location.host || "server");
const room = (name) => conversation("room", name);
const current = () => state.conversations.get(state.current) || server();

function select(key) {
  const c = state.conversations.get(key);
  if (!c) return;
  state.current = key;
  for (const other of state.conversations.values()) other.log.hidden = other !== c;
  c.unread = 0;
  c.mention = false;
  c.log.scrollTop = c.log.scrollHeight;
  document.body.classList.remove("show-side", "show-members");
  drawTabs();
  drawHeading();
  drawMembers();
  if (panel.shown) {
    if (c.kind === "room" && c.joined) panel.open(c);
    else panel.close();
  }
}

function remove(c) {
  state.conversations.delete(c.key);
  c.log.remove();
  if (state.current === c.key) {
    const next = [...state.conversations.values()].find((o) => o.kind === "room") || server();
    select(next.key);
  } else {
    drawTabs();
  }
}

function saveRooms() {
  const joined = [...state.conversations.values()].filter((c) => c.kind === "room" && c.joined);
  saved.set("rooms", joined.map((c) => c.name));
}

// Drawing

function drawTabs() {
  const tab = (c) => {
    const button = el("button", `tab ${c.kind}`);
    button.type = "button";
    button.dataset.conversation = c.key;
    button.append(el("span", "name", c.name));
    if (c.unread) button.append(el("span", c.mention ? "unread mention" : "unread", String(c.unread)));
    if (c.key === state.current) button.setAttribute("aria-current", "page");
    if (c.kind === "room" && !c.joined) button.classList.add("away");
    button.addEventListener("click", () => select(c.key));
    const item = el("li");
    item.append(button);
    return item;
  };
  const all = [...state.conversations.values()];
  $("rooms").replaceChildren(...all.filter((c) => c.kind !== "private").map(tab));
  $("privates").replaceChildren(...all.filter((c) => c.kind === "private").map(tab));
  const unread = all.reduce((n, c) => n + c.unread, 0);
  document.title = unread ? `(${unread}) chat` : "chat";
  $("menu").classList.toggle("has-unread", unread > 0);
}

function drawHeading() {
  const c = current();
  $("title").textContent = c.kind === "private" ? `${c.name} (private)` : c.name;
  $("topic").textContent = c.topic;
  $("topic").hidden = !c.topic;
  $("settings").hidden = c.kind !== "room" || !c.joined;
}

function rank(info) {
  return info.op ? 0 : info.voice ? 1 : 2;
}

function drawMembers() {
  const c = current();
  const list = $("member-list");
  if (c.kind !== "room") {
    $("members-title").textContent = c.kind === "private" ? "Private" : "Members";
    list.replaceChildren();
    return;
  }
  const members = [...c.members.entries()].sort(
    ([a, x], [b, y]) => rank(x) - rank(y) || fold(a).localeCompare(fold(b)),
  );
  $("members-title").textContent = `Members (${members.length})`;
  list.replaceChildren(
    ...members.map(([nick, info]) => {
      const item = el("li");
      const button = el("button", info.op ? "member op" : info.voice ? "member voiced" : "member");
      button.type = "button";
      button.title = info.op ? "operator" : info.voice ? "voiced" : "";
      button.append(el("span", "mode", info.op ? "@" : info.voice ? "+" : ""), el("span", "nick", nick));
      button.addEventListener("click", () => select(conversation("private", nick).key));
      item.append(button);
      return item;
    }),
  );
}

function drawMe() {
  $("me").textContent = state.me || "…";
  $("me").classList.toggle("logged-in", state.credentials !== null);
  $("logout").hidden = state.credentials === null;
}

function clock(time) {
  const when = new Date(time * 1000);
  const node = el("time", "", when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  node.dateTime = when.toISOString();
  node.title = when.toLocaleString();
  return node;
}

function nickClass(nick) {
  let hash = 0;
  for (const ch of fold(nick)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `nick c${hash % 8}`;
}

function mentions(text) {
  return state.me !== null && fold(text).includes(fold(state.me));
}

// A line: `parts` are [class, text] pairs, shown as text.
function lineNode(kind, parts, time) {
  const line = el("p", `line ${kind}`);
  line.append(clock(time));
  for (const [className, text] of parts) line.append(el("span", className, text));
  return line;
}

// Add a line to `c`.
function show(c, kind, parts, time = Date.now() / 1000, counts = false) {
  const line = lineNode(kind, parts, time);
  const log = c.log;
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  log.append(line);
  if (atEnd || log.hidden) log.scrollTop = log.scrollHeight;
  if (counts && (c.key !== state.current || document.hidden)) {
    c.unread += 1;
    if (c.kind === "private" || kind.includes("mention")) c.mention = true;
    drawTabs();
  }
  return line;
}

const meta = (c, text, time) => show(c, "meta", [["text", text]], time);
const problem = (c, text) => show(c, "error", [["text", `!!! ${text}`]]);

function remember(c, kind, nick, text) {
  c.recent.push(`${kind}\u0000${nick}\u0000${text}`);
  if (c.recent.length > RECENT) c.recent.splice(0, c.recent.length - RECENT);
}

function lineParts(kind, nick, text) {
  return kind === "action"
    ? [[nickClass(nick), `* ${nick}`], ["text", ` ${text}`]]
    : kind === "notice"
      ? [[nickClass(nick), `-${nick}-`], ["text", ` ${text}`]]
      : [[nickClass(nick), `<${nick}>`], ["text", ` ${text}`]];
}

function chatLine(c, kind, nick, text, time, { own = false, history = false } = {}) {
  const parts = lineParts(kind, nick, text);
  let classes = kind === "action" ? "said action" : kind === "notice" ? "said notice" : "said";
  if (own) classes += " own";
  if (history) classes += " history";
  if (!own && !history && mentions(text)) classes += " mention";
  // One's own lines are history once the server has them (see own()).
  if (kind !== "notice" && !own) remember(c, kind === "action" ? "action" : "message", nick, text);
  return show(c, classes, parts, time, !own && !history);
}

// Older history

// Ask for the page before the oldest line `c` shows, if there is one and
// none is on its way; at the beginning, say so once.
function older(c) {
  if (c.kind !== "room" || !c.joined || c.olderAsked || c.rejoining) return;
  if (c.before === null) {
    if (c.beginning || !c.replayed) return;
    c.beginning = true;
    prepend(c, [lineNode("meta beginning", [["text", "Beginning of history."]], c.firstTime ?? Date.now() / 1000)]);
    return;
  }
  c.olderAsked = true;
  connection
    .request({ type: "history", room: c.name, n: OLDER_PAGE, before: c.before })
    .catch((e) => {
      c.olderAsked = false;
      if (e.code === "disconnected") return;
      // A cursor from before the server restarted: what it pointed at
      // cannot be found again without showing lines twice.
      c.before = null;
      c.beginning = true;
      prepend(c, [lineNode("error", [["text", `!!! ${describe(e)}`]], Date.now() / 1000)]);
    });
}

// Put `nodes` above what `c` shows, keeping the lines in view where they
// were.
function prepend(c, nodes) {
  const log = c.log;
  const fromBottom = log.scrollHeight - log.scrollTop;
  log.prepend(...nodes);
  log.scrollTop = log.scrollHeight - fromBottom;
}

// A page of older lines came.
function olderPage(c, e) {
  c.olderAsked = false;
  c.before = e.before;
  const nodes = e.lines.map((l) =>
    lineNode(l.kind === "action" ? "said action history" : "said history", lineParts(l.kind, l.nick, l.text), l.time),
  );
  if (e.lines.length) c.firstTime = e.lines[0].time;
  if (c.before === null) {
    c.beginning = true;
    nodes.unshift(lineNode("meta beginning", [["text", "Beginning of history."]], c.firstTime ?? Date.now() / 1000));
  }
  prepend(c, nodes);
}

// How many of `lines`, from the start, are the last lines `c` shows: a
// room entered again after a reconnect replays what it shows already.
function overlap(c, lines) {
  const keys = lines.map((l) => `${l.kind}\u0000${l.nick}\u0000${l.text}`);
  for (let n = Math.min(keys.length, c.recent.length); n > 0; n--) {
    const tail = c.recent.slice(c.recent.length - n);
    if (tail.every((k, i) => k === keys[i])) return n;
  }
  return 0;
}

// Members

function setMember(c, nick, change) {
  const info = c.members.get(nick) || { op: false, voice: false };
  c.members.set(nick, { ...info, ...change });
  if (c.key === state.current) drawMembers();
  if (nick === state.me) panel.update(c);
}

// Whether the user runs the room of conversation `c`.
function operatorOf(c) {
  const info = c.members.get(state.me);
  return Boolean(info && info.op);
}

function dropMember(c, nick) {
  c.members.delete(nick);
  if (c.key === state.current) drawMembers();
}

function renameEverywhere(old, nick) {
  const was = state.conversations.get(keyOf("private", old));
  if (was && !state.conversations.has(keyOf("private", nick))) {
    state.conversations.delete(was.key);
    was.key = keyOf("private", nick);
    was.name = nick;
    was.log.dataset.conversation = was.key;
    state.conversations.set(was.key, was);
    if (state.current === keyOf("private", old)) state.current = was.key;
    drawTabs();
    drawHeading();
  }
}

// The server's events

const handlers = {
  welcome(e) {
    state.me = e.nick;
    drawMe();
    restore();
  },
  motd(e) {
    for (const text of e.lines) meta(server(), text);
  },
  said: (e) => chatLine(room(e.room), "message", e.nick, e.text, e.time),
  action: (e) => chatLine(room(e.room), "action", e.nick, e.text, e.time),
  notice: (e) => chatLine(room(e.room), "notice", e.nick, e.text, e.time),
  private(e) {
    const c = conversation("private", e.sender);
    chatLine(c, e.notice ? "notice" : "message", e.sender, e.text, e.time);
  },
  joined(e) {
    const c = room(e.room);
    setMember(c, e.nick, {});
    if (e.nick !== state.me) meta(c, `--> ${e.nick} joined`, e.time);
  },
  left(e) {
    const c = room(e.room);
    if (e.nick === state.me) {
      c.joined = false;
      saveRooms();
      remove(c);
      return;
    }
    dropMember(c, e.nick);
    meta(c, `<-- ${e.nick} left${e.reason ? ` (${e.reason})` : ""}`, e.time);
  },
  quit(e) {
    const c = room(e.room);
    dropMember(c, e.nick);
    meta(c, `<-- ${e.nick} quit (${e.reason})`, e.time);
  },
  renamed(e) {
    const c = room(e.room);
    const info = c.members.get(e.old) || {};
    c.members.delete(e.old);
    setMember(c, e.new, info);
    meta(c, `--- ${e.old} is now known as ${e.new}`, e.time);
    renameEverywhere(e.old, e.new);
  },
  kicked(e) {
    const c = room(e.room);
    meta(c, `<-- ${e.nick} was kicked by ${e.by}${e.reason ? ` (${e.reason})` : ""}`, e.time);
    if (e.nick === state.me) {
      c.joined = false;
      c.members.clear();
      saveRooms();
      drawTabs();
      if (panel.room === c) panel.close();
      if (c.key === state.current) drawHeading();
    }
    dropMember(c, e.nick);
  },
  opped(e) {
    setMember(room(e.room), e.nick, { op: true });
    meta(room(e.room), `--- ${e.by} made ${e.nick} an operator`, e.time);
  },
  deopped(e) {
    setMember(room(e.room), e.nick, { op: false });
    meta(room(e.room), `--- ${e.by} took operator status from ${e.nick}`, e.time);
  },
  voiced(e) {
    setMember(room(e.room), e.nick, { voice: true });
    meta(room(e.room), `--- ${e.by} gave ${e.nick} a voice`, e.time);
  },
  devoiced(e) {
    setMember(room(e.room), e.nick, { voice: false });
    meta(room(e.room), `--- ${e.by} took the voice of ${e.nick}`, e.time);
  },
  topic_set(e) {
    const c = room(e.room);
    c.topic = e.text;
    if (c.key === state.current) drawHeading();
    meta(c, e.text ? `--- ${e.nick} set the topic: ${e.text}` : `--- ${e.nick} cleared the topic`, e.time);
  },
  setting_changed(e) {
    const c = room(e.room);
    if (c.settings) c.settings = { ...c.settings, [e.setting]: e.value };
    meta(c, settings.settingMessage(e.nick, e.setting, e.value), e.time);
    panel.update(c);
  },
  room_settings(e) {
    const c = state.conversations.get(keyOf("room", e.room));
    if (c) {
      c.settings = e;
      panel.update(c);
    }
    if (state.settingsAsked.delete(fold(e.room))) meta(current(), `Settings of ${e.room}: ${settings.settingsSummary(e)}.`);
  },
  mask_added(e) {
    const c = room(e.room);
    const list = e.kind === "ban" ? "bans" : "mutes";
    c[list] = settings.listAdd(c[list], e.entry);
    meta(c, settings.maskAddedMessage(e), e.time);
    panel.update(c);
  },
  mask_removed(e) {
    const c = room(e.room);
    const list = e.kind === "ban" ? "bans" : "mutes";
    c[list] = settings.listRemove(c[list], e.mask);
    meta(c, `--- ${e.nick} lifted the ${settings.KIND_NAMES[e.kind]} on ${e.mask}`, e.time);
    panel.update(c);
  },
  mask_list(e) {
    const c = state.conversations.get(keyOf("room", e.room));
    if (c) {
      c[e.kind === "ban" ? "bans" : "mutes"] = e.entries;
      panel.update(c);
    }
    const name = settings.KIND_NAMES[e.kind];
    if (state.listsAsked.delete(`${e.kind}:${fold(e.room)}`)) {
      const where = current();
      meta(where, e.entries.length ? `${e.entries.length} ${name}(s) in ${e.room}:` : `No ${name}s in ${e.room}.`);
      for (const entry of e.entries) meta(where, `  ${settings.entryText(entry)}`);
    }
  },
  room_registered(e) {
    const c = room(e.room);
    if (c.settings) c.settings = { ...c.settings, founder: e.founder };
    meta(c, e.founder ? `--- ${e.nick} registered the room to ${e.founder}` : `--- ${e.nick} unregistered the room`, e.time);
    panel.update(c);
  },
  invited(e) {
    meta(current(), `${e.by} invites you to ${e.room}: /join ${e.room}`);
  },
  invite_sent(e) {
    meta(room(e.room), `You invited ${e.nick} to ${e.room}.`);
  },
  operator_unchanged(e) {
    meta(current(), `${e.nick} is ${e.operator ? "already" : "not"} an operator of ${e.room}.`);
  },
  entered(e) {
    const c = room(e.room);
    c.name = e.room;
    c.rejoining = c.joined || c.log.childElementCount > 0;
    c.joined = true;
    c.members.clear();
    saveRooms();
    // Its settings, for the panel; its lists when the panel opens.
    c.bans = null;
    c.mutes = null;
    connection.request({ type: "room_settings", room: e.room }).catch(() => {});
    if (!c.rejoining) meta(c, `You entered ${e.room} (${e.count} here).`);
    if (state.switchTo === fold(e.room) || current().kind === "server") {
      state.switchTo = null;
      select(c.key);
    } else {
      drawTabs();
      if (c.key === state.current) drawHeading();
    }
  },
  topic(e) {
    const c = room(e.room);
    const changed = c.topic !== e.text;
    c.topic = e.text;
    if (c.key === state.current) drawHeading();
    if (changed || !c.rejoining || state.topicAsked.delete(fold(e.room))) {
      meta(c, `Topic: ${e.text} (set by ${e.nick})`, e.time);
    }
  },
  no_topic(e) {
    const c = room(e.room);
    c.topic = "";
    if (c.key === state.current) drawHeading();
    if (state.topicAsked.delete(fold(e.room))) meta(c, "No topic is set.");
  },
  replay(e) {
    const c = room(e.room);
    if (c.olderAsked && e.before !== undefined && !c.historyAsked) {
      olderPage(c, e);
      return;
    }
    if (c.historyAsked) {
      c.historyAsked = false;
      meta(c, e.lines.length ? `Last ${e.lines.length} line(s) of ${e.room}:` : `No history in ${e.room}.`);
      for (const l of e.lines) chatLine(c, l.kind, l.nick, l.text, l.time, { history: true });
      if (e.lines.length) meta(c, `End of history of ${e.room}.`);
      return;
    }
    const seen = c.rejoining ? overlap(c, e.lines) : 0;
    for (const l of e.lines.slice(seen)) chatLine(c, l.kind, l.nick, l.text, l.time, { history: true });
    // Entering a room: where its older history begins. Entering it again
    // after a reconnect keeps the place reached by scrolling.
    if (!c.replayed) {
      c.replayed = true;
      c.before = e.before ?? null;
      if (e.lines.length) c.firstTime = e.lines[0].time;
    }
  },
  names(e) {
    const key = fold(e.room);
    const c = state.conversations.get(keyOf("room", e.room));
    if (c && c.joined) {
      const operators = new Set(e.operators);
      const voiced = new Set(e.voiced || []);
      c.members = new Map(e.nicks.map((n) => [n, { op: operators.has(n), voice: voiced.has(n) }]));
      // The last of what entering a room tells.
      c.rejoining = false;
      if (c.key === state.current) drawMembers();
    }
    if (state.namesAsked.delete(key)) {
      const ops = new Set(e.operators);
      meta(current(), `In ${e.room}: ${e.nicks.map((n) => (ops.has(n) ? `@${n}` : n)).join(" ")}`);
    }
  },
  rooms(e) {
    const list = e.rooms.map((r) => `${r.room} (${r.count})`).join(", ");
    meta(current(), list ? `Rooms: ${list}` : "No rooms yet; /join one.");
  },
  nick_changed(e) {
    state.me = e.nick;
    drawMe();
    meta(current(), `You are now known as ${e.nick}.`);
  },
  same_nick: (e) => meta(current(), `You are ${e.nick} already.`),
  displaced(e) {
    state.credentials = null;
    saved.set("registered", false);
    meta(current(), `The owner of ${e.nick} logged in elsewhere, so you get another name.`);
  },
  registered(e) {
    state.credentials = state.loggingIn;
    saved.set("nick", e.nick);
    saved.set("registered", true);
    drawMe();
    meta(current(), `Registered ${e.nick}; you are logged in.`);
  },
  logged_in(e) {
    state.credentials = state.loggingIn && { ...state.loggingIn, nick: e.nick };
    saved.set("nick", e.nick);
    saved.set("registered", true);
    drawMe();
    meta(current(), `Logged in as ${e.nick}.`);
  },
  logged_out() {
    state.credentials = null;
    saved.set("registered", false);
    drawMe();
    meta(current(), "Logged out.");
  },
  password_changed() {
    if (state.credentials && state.loggingIn) state.credentials.password = state.loggingIn.password;
    meta(current(), "Password changed.");
  },
  server_operator_up: () => meta(current(), "You are now a server operator."),
  server_operator_down: () => meta(current(), "You are no longer a server operator."),
  killed(e) {
    connection.stop();
    meta(current(), `You were disconnected by ${e.by} (${e.reason}). Click the status to come back.`);
  },
  kill_done: (e) => meta(current(), `${e.nick} was disconnected (${e.reason}).`),
  server_notice: (e) => meta(current(), `Notice to everyone from ${e.by}: ${e.text}`),
  server_ban_added(e) {
    const went = e.removed ? `; ${e.removed} disconnected` : "";
    meta(current(), `Server ban set: ${banText(e.entry)}${went}.`);
  },
  server_ban_removed: (e) => meta(current(), `Server ban on ${e.mask} lifted.`),
  server_ban_list(e) {
    if (!e.total) {
      meta(current(), "There are no server bans.");
      return;
    }
    meta(current(), `${e.total} server ban(s):`);
    for (const ban of e.entries) meta(current(), `  ${banText(ban)}`);
  },
  audit_log(e) {
    if (!e.entries.length) {
      meta(current(), "The audit log is empty.");
      return;
    }
    meta(current(), `Last ${e.entries.length} moderation action(s):`);
    for (const a of e.entries) {
      const parts = [stampOf(a.time), a.actor, a.action, a.target, a.room && `in ${a.room}`].filter(Boolean);
      meta(current(), `  ${parts.join(" ")}${a.detail ? `: ${a.detail}` : ""}`);
    }
  },
  goodbye() {
    connection.stop();
    meta(current(), "You left the chat. Click the status to come back.");
  },
  closing() {
    meta(current(), "The server is shutting down; this page reconnects when it is back.");
  },
  error(e) {
    // Banned: trying again would only be refused again.
    if (e.code === "server_banned") connection.stop();
    // A refusal of a request is told where the request was made.
    if (e.id === undefined) problem(current(), describe(e));
  },
};

function stampOf(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ");
}

function banText(ban) {
  const until = ban.expires === null ? "no expiry" : `until ${stampOf(ban.expires)}`;
  return `${ban.mask} (${until}; set by ${ban.by})${ban.reason ? `: ${ban.reason}` : ""}`;
}

function handle(event) {
  const handler = handlers[event.type];
  if (handler) handler(event);
}

// The connection

function setStatus(text, className) {
  $("status").textContent = text;
  $("status").className = className;
}

function onState(name, detail) {
  if (name === "connecting") {
    setStatus(state.everConnected ? "reconnecting…" : "connecting…", "connecting");
  } else if (name === "open") {
    setStatus("connected", "connected");
  } else if (name === "closed") {
    const seconds = Math.max(1, Math.round(detail.delay));
    setStatus(`offline: retrying in ${seconds} s`, "offline");
    if (!state.offline && state.everConnected) {
      state.offline = true;
      for (const c of state.conversations.values()) {
        if (c.kind === "room" && c.joined) c.members.clear();
      }
      drawMembers();
      meta(current(), "Disconnected from the server; reconnecting…");
    }
  } else if (name === "stopped") {
    setStatus("offline", "offline");
  }
}

// A new connection: the same name and rooms as before, then what was typed
// meanwhile.
function restore() {
  const reconnected = state.everConnected;
  state.everConnected = true;
  const failed = (where) => (e) => problem(where, describe(e));
  if (state.credentials) {
    state.loggingIn = state.credentials;
    connection
      .send({ type: "login", nick: state.credentials.nick, password: state.credentials.password })
      .catch(failed(server()));
  } else {
    const nick = saved.get("nick", null);
    if (nick && fold(nick) !== fold(state.me)) {
      if (saved.get("registered", false)) {
        openAccount(nick);
      } else {
        connection.send({ type: "nick", nick }).catch(failed(server()));
      }
    }
  }
  const rooms = reconnected
    ? [...state.conversations.values()].filter((c) => c.kind === "room" && c.joined).map((c) => c.name)
    : saved.get("rooms", []);
  for (const name of rooms) {
    const key = state.keys.get(fold(name));
    connection.send({ type: "join", room: name, ...(key ? { key } : {}) }).catch(failed(room(name)));
  }
  const held = connection.held;
  connection.setReady();
  if (reconnected) {
    state.offline = false;
    meta(current(), held ? `Reconnected; sending ${held} held line(s).` : "Reconnected.");
  }
  // Queued requests' lines are confirmed by their ok.
  for (const line of document.querySelectorAll(".line.held")) line.classList.remove("held");
}

const socketUrl = new URL("ws", location.href);
socketUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const connection = new Connection(socketUrl.href, handle, onState);
const panel = new settings.RoomPanel((request) => connection.request(request), operatorOf);

// What the user types

// Send `request`; a refusal is told in the conversation `c`.
function ask(request, c = current()) {
  const answer = connection.request(request);
  answer.catch((e) => problem(c, describe(e)));
  return answer;
}

// A line of one's own, shown at once, confirmed by the server's ok.
function own(c, kind, request) {
  const line = chatLine(c, kind, state.me || "you", request.text, Date.now() / 1000, { own: true });
  line.classList.add("pending");
  if (!connection.ready) line.classList.add("held");
  const nick = state.me;
  ask(request, c).then(
    () => {
      line.classList.remove("pending", "held");
      if (c.kind === "room") remember(c, kind, nick, request.text);
    },
    () => line.classList.replace("pending", "failed"),
  );
}

function perform(text) {
  const c = current();
  const parsed = parseLine(text, c);
  if (parsed.error) {
    problem(c, parsed.error);
    return;
  }
  if (parsed.local === "help") {
    meta(c, "Commands (as in the line protocol):");
    for (const [name, args, what] of COMMANDS) meta(c, `/${name}${args ? ` ${args}` : ""}: ${what}`);
    return;
  }
  if (parsed.local === "query") {
    select(conversation("private", parsed.nick).key);
    return;
  }
  if (parsed.local === "clear") {
    c.log.replaceChildren();
    return;
  }
  const request = parsed.request;
  switch (request.type) {
    case "say":
      own(c, "message", request);
      return;
    case "me":
      own(c, "action", request);
      return;
    case "msg": {
      const to = conversation("private", request.nick);
      if (to !== c) select(to.key);
      own(to, "message", request);
      return;
    }
    case "join":
      state.switchTo = fold(request.room);
      if (request.key) {
        ask(request, c).then(() => state.keys.set(fold(request.room), request.key));
        return;
      }
      break;
    case "room_settings":
      state.settingsAsked.add(fold(request.room));
      break;
    case "bans":
    case "mutes":
      state.listsAsked.add(`${request.type === "bans" ? "ban" : "quiet"}:${fold(request.room)}`);
      break;
    case "history":
      room(request.room).historyAsked = true;
      break;
    case "names":
      state.namesAsked.add(fold(request.room));
      break;
    case "topic":
      if (request.text === undefined) state.topicAsked.add(fold(request.room));
      break;
    case "login":
      state.loggingIn = { nick: request.nick, password: request.password };
      break;
    case "register":
      state.loggingIn = { nick: state.me, password: request.password };
      break;
    case "password":
      state.loggingIn = { nick: state.me, password: request.new };
      break;
    case "nick":
      ask(request, c).then(() => {
        saved.set("nick", request.nick);
        saved.set("registered", false);
      });
      return;
    default:
      break;
  }
  ask(request, c);
}

function rememberTyped(text) {
  if (state.sent[state.sent.length - 1] !== text) state.sent.push(text);
  if (state.sent.length > 100) state.sent.shift();
  state.sentAt = state.sent.length;
  state.draft = "";
}

$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("line");
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  rememberTyped(text);
  perform(text);
});

// Up and down walk through what was typed before; Tab completes a nickname.
$("line").addEventListener("keydown", (e) => {
  const input = $("line");
  if (e.key === "ArrowUp" && state.sentAt > 0) {
    if (state.sentAt === state.sent.length) state.draft = input.value;
    state.sentAt -= 1;
    input.value = state.sent[state.sentAt];
    e.preventDefault();
  } else if (e.key === "ArrowDown" && state.sentAt < state.sent.length) {
    state.sentAt += 1;
    input.value = state.sentAt === state.sent.length ? state.draft : state.sent[state.sentAt];
    e.preventDefault();
  } else if (e.key === "Tab" && input.value) {
    const before = input.value.slice(0, input.selectionStart);
    const word = before.split(" ").pop();
    if (!word) return;
    const match = [...current().members.keys()].find((n) => fold(n).startsWith(fold(word)));
    if (!match) return;
    e.preventDefault();
    const suffix = before.length === word.length ? ": " : " ";
    input.value = before.slice(0, before.length - word.length) + match + suffix + input.value.slice(before.length);
  }
});

$("join").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("join-room").value.trim();
  if (!name) return;
  $("join-room").value = "";
  perform(`/join ${name.split(/\s+/)[0]}`);
});

// The account panel: a nickname, log in, register.

function openAccount(nick) {
  const panel = $("account");
  panel.hidden = false;
  $("account-error").textContent = "";
  $("account-nick").value = nick || (state.me && !/^guest\d*$/i.test(state.me) ? state.me : "");
  (nick ? $("account-password") : $("account-nick")).focus();
}

function closeAccount() {
  $("account").hidden = true;
  $("account-password").value = "";
  saved.set("chose", true);
  $("line").focus();
}

function accountRequest(request) {
  $("account-error").textContent = "";
  return connection.request(request).catch((e) => {
    $("account-error").textContent = describe(e);
    throw e;
  });
}

$("me").addEventListener("click", () => {
  if ($("account").hidden) openAccount();
  else closeAccount();
});
$("keep").addEventListener("click", closeAccount);
$("use-nick").addEventListener("click", () => {
  const nick = $("account-nick").value.trim();
  if (!nick) return;
  accountRequest({ type: "nick", nick }).then(() => {
    saved.set("nick", nick);
    saved.set("registered", false);
    closeAccount();
  }, () => {});
});
$("account").addEventListener("submit", (e) => {
  e.preventDefault();
  const nick = $("account-nick").value.trim();
  const password = $("account-password").value;
  if (!nick || !password) {
    $("account-error").textContent = "A nickname and a password, please.";
    return;
  }
  state.loggingIn = { nick, password };
  accountRequest({ type: "login", nick, password }).then(closeAccount, () => {});
});
$("register").addEventListener("click", () => {
  const nick = $("account-nick").value.trim();
  const password = $("account-password").value;
  if (!password) {
    $("account-error").textContent = "Choose a password to register.";
    return;
  }
  const named = nick && nick !== state.me ? accountRequest({ type: "nick", nick }) : Promise.resolve();
  named
    .then(() => {
      state.loggingIn = { nick: nick || state.me, password };
      return accountRequest({ type: "register", password });
    })
    .then(closeAccount, () => {});
});
$("logout").addEventListener("click", () => {
  accountRequest({ type: "logout" }).then(closeAccount, () => {});
});

// The narrow layout's drawers, and the status that retries when clicked.
$("menu").addEventListener("click", () => {
  document.body.classList.remove("show-members");
  document.body.classList.toggle("show-side");
});
$("people").addEventListener("click", () => {
  document.body.classList.remove("show-side");
  document.body.classList.toggle("show-members");
});
$("status").addEventListener("click", () => connection.retryNow());
$("settings").addEventListener("click", () => {
  const c = current();
  if (panel.shown) panel.close();
  else if (c.kind === "room" && c.joined) panel.open(c);
});
window.addEventListener("online", () => connection.retryNow());
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    const c = current();
    c.unread = 0;
    c.mention = false;
    drawTabs();
  }
});

select(server().key);
drawMe();
if (!saved.get("chose", false)) openAccount();
connection.start();
