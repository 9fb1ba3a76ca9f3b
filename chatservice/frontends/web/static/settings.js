// A room's settings and its lists of bans and mutes: how their events read,
// and the panel (opened from the room heading) that shows them and lets an
// operator change them. The panel draws what the page knows of the room
// (asked with room_settings, bans and mutes; kept up to date by
// setting_changed, mask_added, mask_removed and room_registered) and turns
// its controls into the same requests the slash commands make.

import { describe } from "./errors.js";
import { $, el } from "./dom.js";

// The flags, as the panel and the messages name them. Outside messages are
// shown as allowed or not: the setting says "no_external".
const FLAG_NAMES = {
  invite_only: "invite only",
  moderated: "moderated",
  secret: "secret",
  topic_locked: "topic locked",
};

// How a change of each flag reads, on and off: the line protocol's words
// (chatservice/frontends/line/wire.py).
const FLAG_WORDS = {
  invite_only: ["made the room invite only", "opened the room to all"],
  moderated: ["made the room moderated: only operators and voices speak", "let everyone speak"],
  no_external: ["closed the room to outside messages", "opened the room to outside messages"],
  secret: ["made the room secret", "made the room public"],
  topic_locked: ["let only operators set the topic", "let anyone set the topic"],
};

// How a change of setting reads: "--- ann made the room invite only".
export function settingMessage(nick, setting, value) {
  let done;
  if (setting === "key") done = value === null ? "removed the key" : `set the key to ${value}`;
  else if (setting === "limit") done = value === null ? "removed the member limit" : `limited the room to ${value} members`;
  else if (Object.hasOwn(FLAG_WORDS, setting)) done = FLAG_WORDS[setting][value ? 0 : 1];
  else done = `set ${setting} to ${value}`;
  return `--- ${nick} ${done}`;
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// One entry of a list: "ann!*@* (by bob, until 12/05 10:00): spam".
export function entryText(entry) {
  const until = entry.expires === null ? "" : `, until ${when(entry.expires)}`;
  return `${entry.mask} (by ${entry.by}${until})${entry.reason ? `: ${entry.reason}` : ""}`;
}

// How a new entry reads: "--- bob banned ann!*@* (until 12/05 10:00): spam".
export function maskAddedMessage(e) {
  const until = e.entry.expires === null ? "" : ` (until ${when(e.entry.expires)})`;
  const reason = e.entry.reason ? `: ${e.entry.reason}` : "";
  return `--- ${e.nick} ${e.kind === "ban" ? "banned" : "muted"} ${e.entry.mask}${until}${reason}`;
}

export const KIND_NAMES = { ban: "ban", quiet: "mute" };

// The settings, as one line: "invite only, key, limit 10; registered to ann".
export function settingsSummary(s) {
  const parts = Object.entries(FLAG_NAMES)
    .filter(([setting]) => s[setting])
    .map(([, name]) => name);
  if (!s.no_external) parts.push("outside messages allowed");
  if (s.key !== null) parts.push(`key ${s.key}`);
  if (s.limit !== null) parts.push(`limit ${s.limit}`);
  const listed = parts.length ? parts.join(", ") : "none set";
  return `${listed}; ${s.founder ? `registered to ${s.founder}` : "not registered"}`;
}

// A conversation's lists: put `entry` in (in place of the same mask), or
// take `mask` out. A list not asked for yet stays unknown (null).
export function listAdd(list, entry) {
  if (!list) return list;
  return [...list.filter((e) => e.mask !== entry.mask), entry];
}

export function listRemove(list, mask) {
  return list ? list.filter((e) => e.mask !== mask) : list;
}

export class RoomPanel {
  // ask(request): send a request, a Promise of its ok (rejected with its
  // error); operator(c): whether the user runs the room of conversation c.
  constructor(ask, operator) {
    this.ask = ask;
    this.operator = operator;
    this.room = null;
    this.panel = $("room-panel");
    for (const box of this.panel.querySelectorAll("input[data-setting]")) {
      box.addEventListener("change", () => {
        const value = box.dataset.inverse ? !box.checked : box.checked;
        this.set(box.dataset.setting, value);
      });
    }
    $("panel-close").addEventListener("click", () => this.close());
    $("panel-key").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("panel-key-value").value.trim();
      if (key && this.operator(this.room)) this.set("key", key);
    });
    $("panel-key-clear").addEventListener("click", () => this.set("key", null));
    $("panel-limit").addEventListener("submit", (e) => {
      e.preventDefault();
      const n = Number($("panel-limit-value").value);
      if (!this.operator(this.room)) return;
      if (Number.isSafeInteger(n) && n > 0) this.set("limit", n);
      else this.problem("A limit is a whole number above 0.");
    });
    $("panel-limit-clear").addEventListener("click", () => this.set("limit", null));
    for (const type of ["ban", "mute"]) {
      $(`panel-${type}-add`).addEventListener("submit", (e) => {
        e.preventDefault();
        const mask = $(`panel-${type}-mask`).value.trim();
        const duration = $(`panel-${type}-duration`).value.trim();
        if (!mask) return;
        this.request({ type, room: this.room.name, mask, ...(duration ? { duration } : {}) }).then(() => {
          $(`panel-${type}-mask`).value = "";
          $(`panel-${type}-duration`).value = "";
        });
      });
    }
    $("panel-register").addEventListener("click", () => this.request({ type: "register_room", room: this.room.name }));
    $("panel-unregister").addEventListener("click", () => this.request({ type: "unregister_room", room: this.room.name }));
  }

  get shown() {
    return !this.panel.hidden;
  }

  // Show the panel for the room of conversation `c`, asking afresh for its
  // settings and lists.
  open(c) {
    this.room = c;
    this.panel.hidden = false;
    $("panel-error").textContent = "";
    $("settings").setAttribute("aria-expanded", "true");
    this.refresh();
    this.draw();
  }

  refresh() {
    const c = this.room;
    if (!c || !c.joined) return;
    const quiet = () => {};
    this.ask({ type: "room_settings", room: c.name }).catch(quiet);
    this.ask({ type: "bans", room: c.name }).catch(quiet);
    this.ask({ type: "mutes", room: c.name }).catch(quiet);
  }

  close() {
    this.panel.hidden = true;
    this.room = null;
    $("settings").setAttribute("aria-expanded", "false");
  }

  problem(text) {
    $("panel-error").textContent = text;
  }

  request(request) {
    this.problem("");
    const answer = this.ask(request);
    answer.catch((e) => this.problem(describe(e)));
    return answer;
  }

  set(setting, value) {
    // The controls show what the server says, not what was clicked.
    this.request({ type: "set", room: this.room.name, setting, value }).catch(() => this.draw());
  }

  // Draw the panel again if it shows the conversation `c` (or any, if
  // none is given).
  update(c) {
    if (this.shown && (!c || c === this.room)) this.draw();
  }

  draw() {
    const c = this.room;
    if (!c) return;
    const s = c.settings;
    const operator = this.operator(c);
    $("panel-title").textContent = `Settings of ${c.name}`;
    $("panel-founder").textContent = s ? (s.founder ? `Registered to ${s.founder}` : "Not registered") : "…";
    for (const box of this.panel.querySelectorAll("input[data-setting]")) {
      const value = s ? s[box.dataset.setting] : false;
      box.checked = box.dataset.inverse ? !value : Boolean(value);
      box.disabled = !operator || !s;
    }
    const key = $("panel-key-value");
    if (document.activeElement !== key) key.value = s && s.key !== null ? s.key : "";
    key.placeholder = s && s.key === null ? "no key" : "";
    const limit = $("panel-limit-value");
    if (document.activeElement !== limit) limit.value = s && s.limit !== null ? String(s.limit) : "";
    limit.placeholder = s && s.limit === null ? "no limit" : "";
    // Who does not run the room sees the values, and nothing to change them.
    key.readOnly = !operator;
    limit.readOnly = !operator;
    for (const id of ["panel-ban-add", "panel-mute-add", "panel-key-clear", "panel-limit-clear"]) {
      $(id).hidden = !operator;
    }
    for (const button of this.panel.querySelectorAll(".values form button")) button.hidden = !operator;
    this.drawList("ban", "panel-bans", c.bans, operator);
    this.drawList("quiet", "panel-mutes", c.mutes, operator);
    $("panel-register").hidden = !s || s.founder !== null || !operator;
    $("panel-unregister").hidden = !s || s.founder === null;
  }

  drawList(kind, id, entries, operator) {
    const list = $(id);
    if (!entries) {
      list.replaceChildren(el("li", "empty", "…"));
      return;
    }
    if (!entries.length) {
      list.replaceChildren(el("li", "empty", kind === "ban" ? "No bans." : "No mutes."));
      return;
    }
    list.replaceChildren(
      ...entries.map((entry) => {
        const item = el("li", "entry");
        item.dataset.mask = entry.mask;
        item.append(el("span", "text", entryText(entry)));
        if (operator) {
          const remove = el("button", "remove", "Remove");
          remove.type = "button";
          remove.title = `Lift the ${KIND_NAMES[kind]} on ${entry.mask}`;
          remove.addEventListener("click", () =>
            this.request({ type: kind === "ban" ? "unban" : "unmute", room: this.room.name, mask: entry.mask }),
          );
          item.append(remove);
        }
        return item;
      }),
    );
  }
}
