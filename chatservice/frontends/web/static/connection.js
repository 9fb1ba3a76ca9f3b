// The WebSocket to the chat server, kept open: it reconnects by itself,
// backing off (1 s, 2 s, 4 s ... at most 30 s, with jitter) while the
// server is away, and holds what the user asks for while offline until the
// page says the new connection is ready (logged in, rooms joined again).

const BACKOFF_MAX = 30;

export class Connection {
  // onEvent(event): every event the server sends, parsed.
  // onState(state, detail): "connecting", "open", "closed" ({delay, code}
  // seconds until the next try), "stopped".
  constructor(url, onEvent, onState) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState;
    this.socket = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject}
    this.outbox = []; // [request, resolve, reject] held until ready
  }

  start() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) return;
    this.onState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("message", (m) => {
      if (socket !== this.socket) return;
      let event;
      try {
        event = JSON.parse(m.data);
      } catch {
        return;
      }
      this.attempt = 0;
      this._answer(event);
      this.onEvent(event);
    });
    socket.addEventListener("open", () => {
      if (socket === this.socket) this.onState("open");
    });
    socket.addEventListener("close", (e) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.ready = false;
      for (const { reject } of this.pending.values()) reject({ code: "disconnected" });
      this.pending.clear();
      if (this.stopped) {
        this.onState("stopped", { code: e.code });
        return;
      }
      const base = Math.min(BACKOFF_MAX, 2 ** this.attempt);
      this.attempt += 1;
      const delay = base * (0.8 + Math.random() * 0.4);
      this.onState("closed", { delay, code: e.code });
      this.timer = setTimeout(() => this.start(), delay * 1000);
    });
  }

  // No more reconnecting (the user quit); start() begins again.
  stop() {
    this.stopped = true;
  }

  // Try now rather than at the end of the backoff.
  retryNow() {
    if (!this.socket) this.start();
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  // Send `request` now if the connection is open (a request that sets the
  // connection up), or hold it: a Promise of its `ok`, rejected with its
  // `error` event.
  send(request) {
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject({ code: "disconnected" });
        return;
      }
      this._send(request, resolve, reject);
    });
  }

  // Send `request` once the connection is ready, in the order asked.
  request(request) {
    return new Promise((resolve, reject) => {
      if (this.ready && this.open) this._send(request, resolve, reject);
      else this.outbox.push([request, resolve, reject]);
    });
  }

  // The new connection is set up: send what was held.
  setReady() {
    this.ready = true;
    const held = this.outbox;
    this.outbox = [];
    for (const [request, resolve, reject] of held) this._send(request, resolve, reject);
  }

  get held() {
    return this.outbox.length;
  }

  _send(request, resolve, reject) {
    const id = this.nextId++;
    this.pending.set(id, { resolve, reject });
    this.socket.send(JSON.stringify({ ...request, id }));
  }

  _answer(event) {
    if (event.id === undefined || (event.type !== "ok" && event.type !== "error")) return;
    const waiting = this.pending.get(event.id);
    if (!waiting) return;
    this.pending.delete(event.id);
    if (event.type === "ok") waiting.resolve(event);
    else waiting.reject(event);
  }
}
