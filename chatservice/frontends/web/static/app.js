// The chat's web client: a first, dependency-free version. Everything
// shown goes through textContent, never HTML.

const log = document.getElementById("log");
const roomsNav = document.getElementById("rooms");
const status = document.getElementById("status");
const meSpan = document.getElementById("me");
const input = document.getElementById("line");

let socket = null;
let current = null;
const rooms = new Set();
let nextId = 1;

function show(text, kind = "", time = null) {
  const p = document.createElement("p");
  if (kind) p.className = kind;
  if (time !== null) {
    const t = document.createElement("time");
    t.textContent = new Date(time * 1000).toLocaleTimeString();
    p.append(t);
  }
  p.append(document.createTextNode(text));
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(p);
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function drawRooms() {
  roomsNav.replaceChildren(...[...rooms].map((room) => {
    const b = document.createElement("button");
    b.textContent = room;
    if (room === current) b.className = "current";
    b.addEventListener("click", () => { current = room; drawRooms(); });
    return b;
  }));
}

function send(request) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ ...request, id: nextId++ }));
  } else {
    show("Not connected.", "error");
  }
}

const handlers = {
  welcome: (e) => { meSpan.textContent = e.nick; send({ type: "join", room: current || "lobby" }); },
  said: (e) => show(`[${e.room}] <${e.nick}> ${e.text}`, "", e.time),
  action: (e) => show(`[${e.room}] * ${e.nick} ${e.text}`, "", e.time),
  notice: (e) => show(`[${e.room}] -${e.nick}- ${e.text}`, "", e.time),
  private: (e) => show(`*${e.sender}* ${e.text}`, "", e.time),
  joined: (e) => show(`[${e.room}] --> ${e.nick} joined`, "meta", e.time),
  left: (e) => {
    show(`[${e.room}] <-- ${e.nick} left`, "meta", e.time);
    if (e.nick === meSpan.textContent) { rooms.delete(e.room); if (current === e.room) current = [...rooms][0] || null; drawRooms(); }
  },
  quit: (e) => show(`[${e.room}] <-- ${e.nick} quit (${e.reason})`, "meta", e.time),
  renamed: (e) => show(`[${e.room}] --- ${e.old} is now known as ${e.new}`, "meta", e.time),
  nick_changed: (e) => { meSpan.textContent = e.nick; show(`You are now ${e.nick}.`, "meta"); },
  entered: (e) => { rooms.add(e.room); current = e.room; drawRooms(); show(`You entered ${e.room} (${e.count} here).`, "meta"); },
  topic: (e) => show(`[${e.room}] topic: ${e.text}`, "meta"),
  topic_set: (e) => show(`[${e.room}] ${e.nick} set the topic: ${e.text}`, "meta", e.time),
  replay: (e) => e.lines.forEach((l) => show(`[${e.room}] ${l.kind === "action" ? "* " + l.nick : "<" + l.nick + ">"} ${l.text}`, "", l.time)),
  names: (e) => show(`[${e.room}] here: ${e.nicks.join(", ")}`, "meta"),
  rooms: (e) => show("Rooms: " + e.rooms.map((r) => `${r.room} (${r.count})`).join(", "), "meta"),
  motd: (e) => e.lines.forEach((l) => show(l, "meta")),
  error: (e) => show(`Error: ${e.code}`, "error"),
  closing: () => show("The server is shutting down.", "meta"),
  ok: () => {},
};

function handle(event) {
  const handler = handlers[event.type];
  if (handler) handler(event);
  else show(`(${event.type}) ${JSON.stringify(event)}`, "meta");
}

// Slash commands, as in the line protocol, turned into requests.
function request(line) {
  if (!line.startsWith("/") || line.startsWith("//")) {
    return { type: "say", room: current, text: line.startsWith("//") ? line.slice(1) : line };
  }
  const [name, ...words] = line.slice(1).split(" ");
  const rest = words.join(" ");
  switch (name.toLowerCase()) {
    case "join": return { type: "join", room: rest };
    case "part": return { type: "part", room: rest || current };
    case "nick": return { type: "nick", nick: rest };
    case "me": return { type: "me", room: current, text: rest };
    case "msg": return { type: "msg", nick: words[0], text: words.slice(1).join(" ") };
    case "who": return { type: "names", room: rest || current };
    case "rooms": return { type: "rooms" };
    case "topic": return rest ? { type: "topic", room: current, text: rest === "-" ? "" : rest } : { type: "topic", room: current };
    case "history": return { type: "history", room: current, n: parseInt(rest || "50", 10) };
    case "register": return { type: "register", password: rest };
    case "login": return { type: "login", nick: words[0], password: words[1] };
    case "logout": return { type: "logout" };
    case "quit": return { type: "quit", message: rest };
    default: show(`Unknown command /${name}.`, "error"); return null;
  }
}

document.getElementById("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const line = input.value;
  if (!line.trim()) return;
  input.value = "";
  const r = request(line);
  if (r) {
    send(r);
    if (r.type === "say") show(`[${r.room}] <${meSpan.textContent}> ${r.text}`);
  }
});

function connect() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(url);
  socket.addEventListener("open", () => { status.textContent = "connected"; });
  socket.addEventListener("message", (m) => handle(JSON.parse(m.data)));
  socket.addEventListener("close", () => {
    status.textContent = "disconnected; reconnecting…";
    rooms.clear();
    drawRooms();
    setTimeout(connect, 2000 + Math.random() * 3000);
  });
}

connect();
