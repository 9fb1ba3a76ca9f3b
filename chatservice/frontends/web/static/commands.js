// The line protocol's slash commands, typed as a line user types them,
// turned into the WebSocket protocol's typed requests (docs/protocol.md).
// Pure functions: no DOM, no socket.

// What /help lists, as the line protocol's /help words it.
export const COMMANDS = [
  ["nick", "NAME", "Change your nickname."],
  ["join", "ROOM [KEY]", "Enter ROOM (creating it if needed) and talk there; KEY if it has one."],
  ["part", "[ROOM]", "Leave ROOM, or the room you are looking at."],
  ["rooms", "", "List the rooms and how many are in each."],
  ["who", "[ROOM]", "List who is in ROOM, or in this room."],
  ["topic", "[TEXT]", "Show the topic, or (as an operator) set it; '/topic -' clears it."],
  ["kick", "NICK [REASON]", "Put NICK out of this room (operators only)."],
  ["op", "NICK", "Make NICK an operator of this room (operators only)."],
  ["deop", "NICK", "Take operator status in this room from NICK (operators only)."],
  ["voice", "NICK", "Let NICK speak in this room when it is moderated (operators only)."],
  ["devoice", "NICK", "Take the voice of NICK in this room (operators only)."],
  ["ban", "MASK [DURATION] [REASON]", "Ban MASK (nick, nick!user@host, $a:account) from this room, for DURATION (10m, 2h, 7d; default for ever); members it matches are put out (operators only)."],
  ["unban", "MASK", "Lift the ban on MASK in this room (operators only)."],
  ["bans", "[ROOM]", "List the bans of this room, or of ROOM."],
  ["mute", "MASK [DURATION] [REASON]", "Keep MASK from speaking in this room, for DURATION (operators only)."],
  ["unmute", "MASK", "Lift the mute on MASK in this room (operators only)."],
  ["mutes", "[ROOM]", "List the mutes of this room, or of ROOM."],
  ["invite", "NICK [ROOM]", "Invite NICK into this room (or ROOM), past its invite-only setting."],
  ["room", "info|set|register|unregister", "'/room info' shows this room's settings; '/room set invite|moderated|secret|topiclock|external on|off', '/room set key WORD|off', '/room set limit N|off' change them (operators only); '/room register' keeps the room for your account, '/room unregister' lets it go."],
  ["msg", "NICK TEXT", "Send TEXT privately to NICK, in a tab of its own."],
  ["query", "NICK", "Open a private conversation with NICK."],
  ["me", "ACTION", "Describe an action: '* you ACTION'."],
  ["history", "[N]", "Show the last N (default 50) lines said in this room."],
  ["register", "PASSWORD", "Register your nickname with PASSWORD and log in."],
  ["login", "NICK PASSWORD", "Log in as the registered NICK."],
  ["logout", "", "Log out."],
  ["password", "OLD NEW", "Change your password from OLD to NEW."],
  ["oper", "NAME PASSWORD", "Become a server operator as the operator account NAME."],
  ["kill", "NICK [REASON]", "Disconnect NICK from the server (server operators only)."],
  ["wall", "TEXT", "Send TEXT to everyone connected (server operators only)."],
  ["sban", "MASK [DURATION] [REASON]", "Ban an address or an account ($a:NAME) from the server (server operators only)."],
  ["unsban", "MASK", "Lift the server ban on MASK (server operators only)."],
  ["sbans", "", "List the server bans (server operators only)."],
  ["audit", "[N]", "Show the last N (default 20, at most 200) moderation actions (server operators only)."],
  ["clear", "", "Clear this conversation's scrollback (here only)."],
  ["help", "", "List the commands."],
  ["quit", "[MESSAGE]", "Leave the chat; your rooms see MESSAGE."],
];

const USAGE = Object.fromEntries(COMMANDS.map(([name, args]) => [name, `/${name} ${args}`.trim()]));

function usage(name) {
  return { error: `Usage: ${USAGE[name]}` };
}

// Whether the word after a mask is meant as how long a ban or mute lasts,
// as the line protocol reads it: a duration (30s, 10m, 2h, 7d, 4w, a number
// of seconds, forever), or a word that starts like a number (-5m, 10x),
// which the server then refuses rather than take as a reason.
export function looksLikeDuration(word) {
  return /^-?\d/.test(word) || /^(forever|permanent|never)$/i.test(word);
}

// The words of '/room set' (as the line protocol spells them), each the
// setting it changes and how its value is read.
const ON = /^(on|yes|true)$/i;
const OFF = /^(off|no|false)$/i;
const flag = (setting, inverse = false) => (value) =>
  ON.test(value) ? { setting, value: !inverse } : OFF.test(value) ? { setting, value: inverse } : null;
const SETTINGS = {
  invite: flag("invite_only"),
  moderated: flag("moderated"),
  secret: flag("secret"),
  topiclock: flag("topic_locked"),
  external: flag("no_external", true),
  key: (value) => ({ setting: "key", value: OFF.test(value) ? null : value }),
  limit: (value) => {
    if (OFF.test(value)) return { setting: "limit", value: null };
    const n = Number(value);
    return /^\d+$/.test(value) && Number.isSafeInteger(n) && n > 0 ? { setting: "limit", value: n } : null;
  },
};
const SET_USAGE =
  "Usage: /room set invite|moderated|secret|topiclock|external on|off, /room set key WORD|off, /room set limit N|off";

// A ban or a mute: MASK [DURATION] [REASON].
function maskRequest(type, words, rest) {
  const request = { type, mask: words[0] };
  let after = rest.slice(words[0].length).trim();
  if (words[1] && looksLikeDuration(words[1])) {
    request.duration = words[1];
    after = after.slice(words[1].length).trim();
  }
  if (after) request.reason = after;
  return request;
}

// What a typed line asks for, in the conversation `here` ({kind: "room" |
// "private" | "server", name}): one of
//   {request}       a request to send;
//   {local, ...}    something the client does itself (help, query, clear);
//   {error}         a usage message, nothing sent.
export function parseLine(line, here) {
  const room = here && here.kind === "room" ? here.name : null;
  if (!line.startsWith("/") || line.startsWith("//")) {
    const text = line.startsWith("//") ? line.slice(1) : line;
    if (here && here.kind === "private") return { request: { type: "msg", nick: here.name, text } };
    if (!room) return { error: "Join a room first: /join ROOM" };
    return { request: { type: "say", room, text } };
  }
  const space = line.indexOf(" ");
  const name = (space < 0 ? line.slice(1) : line.slice(1, space)).toLowerCase();
  const rest = space < 0 ? "" : line.slice(space + 1).trim();
  const words = rest ? rest.split(/\s+/) : [];
  const needRoom = (request) => (room ? { request } : { error: `/${name} needs a room: switch to one first.` });
  switch (name) {
    case "nick":
      return words.length === 1 ? { request: { type: "nick", nick: words[0] } } : usage(name);
    case "join":
      if (words.length === 2) return { request: { type: "join", room: words[0], key: words[1] } };
      return words.length === 1 ? { request: { type: "join", room: words[0] } } : usage(name);
    case "part":
      if (words[0]) return { request: { type: "part", room: words[0] } };
      return needRoom({ type: "part", room });
    case "rooms":
      return { request: { type: "rooms" } };
    case "who":
      if (words[0]) return { request: { type: "names", room: words[0] } };
      return needRoom({ type: "names", room });
    case "topic":
      if (!rest) return needRoom({ type: "topic", room });
      return needRoom({ type: "topic", room, text: rest === "-" ? "" : rest });
    case "kick": {
      if (!words[0]) return usage(name);
      const reason = rest.slice(words[0].length).trim();
      return needRoom({ type: "kick", room, nick: words[0], ...(reason ? { reason } : {}) });
    }
    case "op":
    case "deop":
      return words.length === 1 ? needRoom({ type: name, room, nick: words[0] }) : usage(name);
    case "voice":
    case "devoice":
      return words.length === 1 ? needRoom({ type: name, room, nick: words[0] }) : usage(name);
    case "ban":
    case "mute":
      return words[0] ? needRoom({ room, ...maskRequest(name, words, rest) }) : usage(name);
    case "unban":
    case "unmute":
      return words.length === 1 ? needRoom({ type: name, room, mask: words[0] }) : usage(name);
    case "bans":
    case "mutes":
      if (words.length > 1) return usage(name);
      return words[0] ? { request: { type: name, room: words[0] } } : needRoom({ type: name, room });
    case "invite":
      if (words.length === 2) return { request: { type: "invite", room: words[1], nick: words[0] } };
      return words.length === 1 ? needRoom({ type: "invite", room, nick: words[0] }) : usage(name);
    case "room": {
      const sub = (words[0] || "").toLowerCase();
      if (sub === "info" && words.length <= 2) {
        return words[1] ? { request: { type: "room_settings", room: words[1] } } : needRoom({ type: "room_settings", room });
      }
      if ((sub === "register" || sub === "unregister") && words.length <= 2) {
        const type = `${sub}_room`;
        return words[1] ? { request: { type, room: words[1] } } : needRoom({ type, room });
      }
      if (sub === "set") {
        const word = (words[1] || "").toLowerCase();
        const read = words.length === 3 && Object.hasOwn(SETTINGS, word) && SETTINGS[word];
        const change = read && read(words[2]);
        return change ? needRoom({ type: "set", room, ...change }) : { error: SET_USAGE };
      }
      return usage(name);
    }
    case "msg": {
      if (words.length < 2) return usage(name);
      return { request: { type: "msg", nick: words[0], text: rest.slice(words[0].length).trim() } };
    }
    case "query":
      return words.length === 1 ? { local: "query", nick: words[0] } : usage(name);
    case "me":
      if (!rest) return usage(name);
      if (here && here.kind === "private") return { error: "Actions are for rooms." };
      return needRoom({ type: "me", room, text: rest });
    case "history": {
      if (!rest) return needRoom({ type: "history", room });
      const n = Number(rest);
      return Number.isInteger(n) && n > 0 ? needRoom({ type: "history", room, n }) : usage(name);
    }
    case "register":
      return words.length === 1 ? { request: { type: "register", password: words[0] } } : usage(name);
    case "login":
      return words.length === 2 ? { request: { type: "login", nick: words[0], password: words[1] } } : usage(name);
    case "logout":
      return { request: { type: "logout" } };
    case "password":
      return words.length === 2 ? { request: { type: "password", old: words[0], new: words[1] } } : usage(name);
    case "oper":
      return words.length === 2 ? { request: { type: "oper", name: words[0], password: words[1] } } : usage(name);
    case "kill": {
      if (!words[0]) return usage(name);
      const reason = rest.slice(words[0].length).trim();
      return { request: { type: "kill", nick: words[0], ...(reason ? { reason } : {}) } };
    }
    case "wall":
      return rest ? { request: { type: "wall", text: rest } } : usage(name);
    case "sban":
      // The word after the mask is read as /ban reads it.
      return words[0] ? { request: maskRequest("server_ban", words, rest) } : usage(name);
    case "unsban":
      return words.length === 1 ? { request: { type: "server_unban", mask: words[0] } } : usage(name);
    case "sbans":
      return { request: { type: "server_bans" } };
    case "audit": {
      if (!rest) return { request: { type: "audit" } };
      const n = Number(rest);
      return Number.isInteger(n) && n >= 1 && n <= 200 ? { request: { type: "audit", n } } : usage(name);
    }
    case "quit":
      return { request: { type: "quit", ...(rest ? { message: rest } : {}) } };
    case "help":
      return { local: "help" };
    case "clear":
      return { local: "clear" };
    default:
      return { error: `Unknown command /${name}; /help lists them.` };
  }
}
