// How each refusal reads: the line protocol's wording (its wire.py), for
// the WebSocket protocol's error events.

// What a store_unavailable error stopped.
const UNAVAILABLE = { login: "Logging in", register: "Registering", password: "Changing the password" };

const REASONS = {
  invalid_name: (e) => `Invalid ${e.what === "nickname" ? "nickname" : "room name"}: ${e.reason}.`,
  nick_taken: (e) => `The nickname ${e.nick} is taken.`,
  nick_registered: (e) => `The nickname ${e.nick} is registered; if it is yours, log in.`,
  no_such_nick: (e) => `No such nickname: ${e.nick}.`,
  no_such_room: (e) => `No such room: ${e.room}.`,
  not_in_room: (e) => `You are not in ${e.room}.`,
  no_room: () => "You are not in any room; /join one first.",
  not_operator: (e) => `You are not an operator of ${e.room}.`,
  target_not_in_room: (e) => `${e.nick} is not in ${e.room}.`,
  banned: (e) => `You are banned from ${e.room}${e.reason ? ` (${e.reason})` : ""}.`,
  invite_only: (e) => `${e.room} is invite only: ask an operator there for an invitation.`,
  bad_key: (e) => `${e.room} has a key: /join ${e.room} KEY.`,
  room_full: (e) => `${e.room} is full.`,
  cannot_speak: (e) =>
    e.why === "muted"
      ? `You are muted in ${e.room}.`
      : e.why === "moderated"
        ? `${e.room} is moderated: only operators and voiced members speak.`
        : `You are banned from ${e.room}.`,
  bad_mask: (e) => `Not a mask: ${e.mask} (${e.reason}).`,
  bad_setting: (e) => `${e.setting} cannot be set to ${e.value}.`,
  bad_duration: (e) => `Not a duration: ${e.duration} (say 30s, 10m, 2h, 7d, up to ten years, or forever).`,
  list_full: (e) => `The ${e.kind === "quiet" ? "mute" : "ban"} list of ${e.room} is full (${e.limit}); remove one first.`,
  no_such_mask: (e) => `${e.mask} is not ${e.kind === "quiet" ? "muted" : "banned"} in ${e.room}.`,
  already_in_room: (e) => `${e.nick} is in ${e.room} already.`,
  banned_nick: (e) => `The nickname ${e.nick} is banned in ${e.room}.`,
  room_not_registered: (e) => `${e.room} is not registered.`,
  room_already_registered: (e) => `${e.room} is registered to ${e.founder} already.`,
  not_founder: (e) => `Only the founder of ${e.room} may do that.`,
  bad_field: (e) => `Bad ${e.field}: expected ${e.expected}.`,
  topic_too_long: (e) => `Topic too long (the limit is ${e.limit} characters); it was not set.`,
  no_history: () => "This server keeps no history.",
  bad_cursor: () => "Older history cannot be found from here (the server restarted); reload the page to see it.",
  no_accounts: () => "This server keeps no accounts.",
  bad_password: (e) => `A password must be ${e.shortest} to ${e.longest} characters, with no spaces.`,
  already_registered: (e) => `${e.nick} is registered already.`,
  registered_meanwhile: (e) => `${e.nick} was registered by someone else meanwhile.`,
  guest_nick: () => "Guest nicknames cannot be registered: choose a nickname first.",
  not_registered: (e) => `${e.nick} is not registered.`,
  already_logged_in: (e) => `You are logged in as ${e.nick} already.`,
  wrong_password: (e) => (e.nick ? `Wrong password for ${e.nick}.` : "Wrong password; the password is unchanged."),
  not_logged_in: (e) =>
    e.to === "logout" ? "You are not logged in." : e.to === "register_room" ? "Log in first: a room is registered to an account." : "Log in first.",
  too_many_failures: (e) => `Too many failed logins; try again in ${e.wait} s.`,
  busy: () => "Your last account command is still being worked on.",
  not_saved: () => "That was not saved; try again later.",
  store_unavailable: (e) =>
    `${UNAVAILABLE[e.what] ?? "That"} is not possible now: the account database cannot be reached. Try again later.`,
  failed: () => "That failed; try again later.",
  not_server_operator: (e) => `${e.name} is not a server operator.`,
  no_privileges: () => "Only server operators may do that; see /oper.",
  no_text: () => "There is no text to send.",
  server_banned: (e) => (e.reason ? `You are banned from this server (${e.reason}).` : "You are banned from this server."),
  no_such_server_ban: (e) => `There is no server ban on ${e.mask}.`,
  server_bans_full: (e) => `The server ban list is full (${e.limit} bans); lift one first.`,
  line_too_long: (e) => `Line too long (the limit is ${e.limit} bytes); it was dropped.`,
  excess_flood: () => "Excess flood: too many lines too fast; disconnected.",
  idle_timeout: (e) => `No input for ${e.seconds} seconds; disconnected.`,
  server_full: (e) => `The server is full (${e.limit} connections); trying again later.`,
  too_many_from_address: (e) => `Too many connections from your address (the limit is ${e.limit}).`,
  disconnected: () => "Not confirmed: the connection was lost.",
};

export function describe(error) {
  const reason = REASONS[error.code];
  if (reason) return reason(error);
  const fields = Object.entries(error)
    .filter(([k]) => !["type", "code", "id"].includes(k))
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
  return `Refused: ${error.code}${fields ? ` (${fields})` : ""}.`;
}
