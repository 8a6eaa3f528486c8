// Connection owns at most one live transport to a progressd server at a
// time: a WebSocket on /ws, or, when WebSocket cannot connect, a
// Server-Sent Events stream on /api/v1/events. It keeps the server
// subscribed to exactly the channels it is given (add/remove: the caller
// counts references), reconnects with full-jitter backoff, resubscribes
// after every reconnect, and reports its state.
//
// It does not keep snapshots: every update goes to onUpdate, and the
// caller's JobStore decides by seq what is newer.

import { fullJitter, type BackoffOptions } from "./backoff.js";
import {
  realTimers,
  toWebSocketUrl,
  type EventSourceCtor,
  type EventSourceLike,
  type FetchLike,
  type Timers,
  type WebSocketCtor,
  type WebSocketLike,
} from "./env.js";
import { identityKey } from "./jwt.js";
import { CLOSE_CODES } from "./protocol.gen.js";
import type {
  ChannelError,
  ClientFrame,
  ConnectionReason,
  ConnectionStatus,
  JobSnapshot,
  LogLine,
  ProtocolError,
  ServerFrame,
  TransportKind,
} from "./types.js";

/**
 * WebSocket close codes by name: those the server sends (their meaning and
 * what to do on each are in CLOSE_CODES, generated from the server's
 * table) and the two a client sees locally (1000, 1006).
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  Abnormal: 1006,
  TooLarge: 1009,
  Unauthorized: 4001,
  TooSlow: 4008,
  TooManyConnections: 4029,
} as const;

/** One row of the server's close-code table. */
type CloseRow = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

export interface ConnectionOptions {
  /** Base URL of the server, absolute, no trailing slash. */
  server: string;
  token?: string | null;
  /** Sent as ?client_id= so the server can count duplicate connections of one page. */
  clientId?: string;
  /** Transports in order of preference. Default ["websocket", "sse"]. */
  transports?: TransportKind[];
  /** WebSocket constructor; default globalThis.WebSocket; null: none. */
  WebSocket?: WebSocketCtor | null;
  /** EventSource constructor; default globalThis.EventSource; null: none. */
  EventSource?: EventSourceCtor | null;
  /** Used to learn why an SSE stream was refused (401 or not). */
  fetch?: FetchLike | null;
  random?: () => number;
  timers?: Timers;
  backoff?: BackoffOptions;
  /** Fires "online" when the network comes back; default window. */
  onlineTarget?: EventTarget | null;
  /** WebSocket attempts that fail before opening, in a row, before SSE is tried. Default 2. */
  wsFailuresBeforeSse?: number;
  /** Ping the server after this long without a frame; 0: never. Default 25 s. */
  heartbeatMs?: number;
  /** A ping unanswered this long means the connection is dead. Default 10 s. */
  heartbeatTimeoutMs?: number;
  /** How long to wait for a closing socket before opening the next. Default 3 s. */
  closeTimeoutMs?: number;
  /** Channel changes on SSE within this window reopen the stream once. Default 30 ms. */
  sseDebounceMs?: number;
  /** Close the connection after this long with nothing subscribed. Default 2 s. */
  idleCloseMs?: number;
  /** Smallest delay after 4029 too many connections. Default: the server's table (5 s). */
  tooManyConnsMinMs?: number;
}

export interface ConnectionEvents {
  onUpdate?(channel: string, job: JobSnapshot): void;
  /** Lines of a logs: channel; truncated: the server dropped lines before them. */
  onLog?(channel: string, lines: LogLine[], truncated: boolean): void;
  /**
   * The n of the last line held for a logs: channel, sent as "after" with
   * every subscribe (a reconnect resumes there); undefined: every kept line.
   */
  logAfter?(channel: string): number | undefined;
  onStatus?(status: ConnectionStatus): void;
  onChannelError?(e: ChannelError): void;
}

/** One transport instance; its handlers act only while it is current. */
interface Tx {
  id: number;
  kind: TransportKind;
  ws?: WebSocketLike;
  es?: EventSourceLike;
  url: string;
  /** SSE: the stream's channels (its URL but the resume points), to tell whether a change needs a new stream. */
  channelsKey?: string;
  /** The socket opened (WebSocket) or the stream answered 200 (SSE). */
  opened: boolean;
  /** The server answered a request without refusing the connection. */
  healthy: boolean;
  /** Channels subscribed on this transport. */
  wire: Set<string>;
  pending: Map<number, { op: ClientFrame["op"]; channel?: string; token?: string }>;
  done: boolean;
  closed: Promise<void>;
  markClosed: () => void;
  lastRecv: number;
  heartbeat?: unknown;
  pingDeadline?: unknown;
}

type Phase = "idle" | "connecting" | "live" | "waiting" | "blocked" | "disposed";

export class Connection {
  private readonly server: string;
  private token: string | null;
  private readonly clientId?: string;
  private readonly transports: TransportKind[];
  private readonly WS: WebSocketCtor | null;
  private readonly ES: EventSourceCtor | null;
  private readonly fetchFn: FetchLike | null;
  private readonly random: () => number;
  private readonly timers: Timers;
  private readonly backoff: BackoffOptions;
  private readonly onlineTarget: EventTarget | null;
  private readonly wsFailuresBeforeSse: number;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly sseDebounceMs: number;
  private readonly idleCloseMs: number;
  private readonly tooManyConnsMinMs: number;

  private readonly desired = new Set<string>();
  private phase: Phase = "idle";
  private current: Tx | null = null;
  /** Resolved when the last transport has closed: the next waits for it. */
  private closing: Promise<void> = Promise.resolve();
  private txSeq = 0;
  private reqSeq = 0;
  private attempt = 0;
  private everOpened = false;
  private wsFailStreak = 0;
  private lastKind: TransportKind | null = null;
  private retryTimer: unknown = null;
  private idleTimer: unknown = null;
  private sseTimer: unknown = null;
  private connectQueued = false;
  private status: ConnectionStatus = { state: "closed", transport: null, reason: "idle", attempt: 0, role: "solo" };
  private readonly onOnline = () => this.networkBack();

  constructor(
    opts: ConnectionOptions,
    private readonly events: ConnectionEvents = {},
  ) {
    this.server = opts.server;
    this.token = opts.token ?? null;
    this.clientId = opts.clientId;
    this.transports = opts.transports ?? ["websocket", "sse"];
    const g = globalThis as unknown as { WebSocket?: WebSocketCtor; EventSource?: EventSourceCtor; fetch?: FetchLike };
    this.WS = opts.WebSocket === undefined ? (g.WebSocket ?? null) : opts.WebSocket;
    this.ES = opts.EventSource === undefined ? (g.EventSource ?? null) : opts.EventSource;
    this.fetchFn = opts.fetch === undefined ? (g.fetch ? g.fetch.bind(globalThis) : null) : opts.fetch;
    this.random = opts.random ?? Math.random;
    this.timers = opts.timers ?? realTimers;
    this.backoff = opts.backoff ?? {};
    this.onlineTarget =
      opts.onlineTarget === undefined ? (typeof window !== "undefined" ? window : null) : opts.onlineTarget;
    this.wsFailuresBeforeSse = opts.wsFailuresBeforeSse ?? 2;
    this.heartbeatMs = opts.heartbeatMs ?? 25_000;
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? 10_000;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 3_000;
    this.sseDebounceMs = opts.sseDebounceMs ?? 30;
    this.idleCloseMs = opts.idleCloseMs ?? 2_000;
    this.tooManyConnsMinMs = opts.tooManyConnsMinMs ?? CLOSE_CODES[CloseCode.TooManyConnections].minDelayMs;
    this.onlineTarget?.addEventListener("online", this.onOnline);
  }

  getStatus(): ConnectionStatus {
    return this.status;
  }

  getToken(): string | null {
    return this.token;
  }

  /** The channels the server is asked to keep this connection subscribed to. */
  channels(): ReadonlySet<string> {
    return this.desired;
  }

  /** Asks the server for a channel (idempotent). */
  add(channel: string): void {
    if (this.phase === "disposed" || this.desired.has(channel)) return;
    this.desired.add(channel);
    this.cancelIdle();
    const tx = this.current;
    if (tx && !tx.done && tx.kind === "websocket" && tx.opened) this.wsSubscribe(tx, channel);
    else if (tx && !tx.done && tx.kind === "sse") this.scheduleSseReopen();
    else if (this.phase === "idle") this.queueConnect();
  }

  /** Drops a channel (idempotent). */
  remove(channel: string): void {
    if (!this.desired.delete(channel)) return;
    const tx = this.current;
    if (tx && !tx.done && tx.kind === "websocket" && tx.opened && tx.wire.delete(channel)) {
      this.send(tx, { op: "unsubscribe", id: this.nextId(tx, "unsubscribe", channel), channel });
    } else if (tx && !tx.done && tx.kind === "sse") {
      this.scheduleSseReopen();
    }
    if (this.desired.size === 0) this.scheduleIdle();
  }

  /**
   * Sets the token. A refreshed token of the same user on an open
   * WebSocket is sent as an auth frame (no reconnect); any other change
   * closes the current connection, waits until it has closed, and opens a
   * new one: never two at once.
   */
  setToken(token: string | null): void {
    token = token || null;
    if (token === this.token || this.phase === "disposed") return;
    const old = this.token;
    this.token = token;
    const tx = this.current;
    if (this.phase === "blocked") {
      this.attempt = 0;
      this.phase = "idle";
      this.setStatus({ state: "closed", transport: null, reason: "idle" });
      if (this.desired.size > 0) this.queueConnect();
      return;
    }
    if (
      token &&
      tx &&
      !tx.done &&
      tx.kind === "websocket" &&
      tx.opened &&
      identityKey(old) === identityKey(token) &&
      old !== null
    ) {
      this.send(tx, { op: "auth", id: this.nextId(tx, "auth", undefined, token), token });
      return;
    }
    this.restart();
  }

  /** Closes now and reconnects at once (a new token, a new network). */
  restart(): void {
    if (this.phase === "disposed") return;
    this.clearRetry();
    this.attempt = 0;
    if (this.current && !this.current.done) this.closeTx(this.current, CloseCode.Normal, "reconnecting");
    this.phase = "idle";
    if (this.desired.size > 0) this.queueConnect();
    else this.setStatus({ state: "closed", transport: null, reason: "idle" });
  }

  /** Closes for good; resolves when the socket has closed. */
  dispose(): Promise<void> {
    if (this.phase !== "disposed") {
      this.phase = "disposed";
      this.clearRetry();
      this.cancelIdle();
      if (this.sseTimer !== null) this.timers.clearTimeout(this.sseTimer);
      this.onlineTarget?.removeEventListener("online", this.onOnline);
      if (this.current && !this.current.done) this.closeTx(this.current, CloseCode.Normal, "client closed");
      this.setStatus({ state: "closed", transport: null, reason: "disposed", retryAt: undefined });
    }
    return this.closing;
  }

  /** Resolves when no socket of this connection is open or closing. */
  whenClosed(): Promise<void> {
    return this.closing;
  }

  // ---- connecting -------------------------------------------------------

  /** Connects on a microtask, so every subscription of one render goes in one attempt. */
  private queueConnect(): void {
    if (this.connectQueued) return;
    this.connectQueued = true;
    queueMicrotask(() => {
      this.connectQueued = false;
      if (this.phase === "idle" && this.desired.size > 0) void this.connect();
    });
  }

  private async connect(): Promise<void> {
    if (this.phase === "disposed" || this.phase === "blocked") return;
    this.phase = "connecting";
    const kind = this.pickTransport();
    this.setStatus({
      state: this.everOpened || this.attempt > 0 ? "reconnecting" : "connecting",
      transport: kind,
      retryAt: undefined,
    });
    // Never two at once: the previous socket must be gone first.
    const txId = ++this.txSeq;
    await this.closing;
    if (this.phase !== "connecting" || txId !== this.txSeq) return;
    if (kind === null) {
      this.failAttempt("network");
      return;
    }
    if (this.desired.size === 0) {
      this.phase = "idle";
      this.setStatus({ state: "closed", transport: null, reason: "idle" });
      return;
    }
    this.lastKind = kind;
    if (kind === "websocket") this.openWebSocket(txId);
    else this.openSse(txId);
  }

  private pickTransport(): TransportKind | null {
    const wsOk = this.transports.includes("websocket") && this.WS !== null;
    const sseOk = this.transports.includes("sse") && this.ES !== null;
    if (!wsOk) return sseOk ? "sse" : null;
    if (!sseOk) return "websocket";
    if (this.wsFailStreak >= this.wsFailuresBeforeSse) return this.lastKind === "sse" ? "websocket" : "sse";
    return "websocket";
  }

  private newTx(id: number, kind: TransportKind, url: string): Tx {
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    const tx: Tx = {
      id,
      kind,
      url,
      opened: false,
      healthy: false,
      wire: new Set(),
      pending: new Map(),
      done: false,
      closed,
      markClosed,
      lastRecv: this.timers.now(),
    };
    this.current = tx;
    this.closing = closed;
    return tx;
  }

  private openWebSocket(id: number): void {
    const q = new URLSearchParams();
    if (this.clientId) q.set("client_id", this.clientId);
    const qs = q.toString();
    const url = toWebSocketUrl(this.server) + "/ws" + (qs ? "?" + qs : "");
    const tx = this.newTx(id, "websocket", url);
    let ws: WebSocketLike;
    try {
      ws = new this.WS!(url);
    } catch {
      tx.done = true;
      tx.markClosed();
      this.transportClosed(tx, CloseCode.Abnormal);
      return;
    }
    tx.ws = ws;
    ws.onopen = () => {
      if (tx.done) return;
      tx.opened = true;
      this.wsFailStreak = 0;
      tx.lastRecv = this.timers.now();
      // The token goes in the first frame, not the URL: URLs end up in logs.
      if (this.token) this.send(tx, { op: "auth", id: this.nextId(tx, "auth", undefined, this.token), token: this.token, ...(this.clientId ? { client_id: this.clientId } : {}) });
      for (const ch of this.desired) this.wsSubscribe(tx, ch);
      this.armHeartbeat(tx);
    };
    ws.onmessage = (ev) => {
      if (tx.done) return;
      tx.lastRecv = this.timers.now();
      if (tx.pingDeadline !== undefined) {
        this.timers.clearTimeout(tx.pingDeadline);
        tx.pingDeadline = undefined;
      }
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      this.onFrame(tx, frame);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = (ev) => {
      const wasDone = tx.done;
      tx.done = true;
      this.stopHeartbeat(tx);
      tx.markClosed();
      if (!wasDone) this.transportClosed(tx, ev.code);
    };
  }

  private onFrame(tx: Tx, frame: ServerFrame): void {
    if (frame.type === "update") {
      if (frame.job && typeof frame.channel === "string") this.events.onUpdate?.(frame.channel, frame.job);
      return;
    }
    if (frame.type === "log") {
      this.log(frame);
      return;
    }
    if (frame.type === "error") {
      // A subscription the server ended (a refreshed token with fewer
      // rights): as if its subscribe had been refused.
      if (typeof frame.channel === "string" && frame.error) {
        tx.wire.delete(frame.channel);
        this.events.onChannelError?.({ channel: frame.channel, error: frame.error });
      }
      return;
    }
    if (frame.type !== "reply") return;
    const req = typeof frame.id === "number" ? tx.pending.get(frame.id) : undefined;
    if (req) tx.pending.delete(frame.id as number);
    const err = frame.error;
    if (err?.code === "unauthorized" && req?.op !== "auth") {
      // Not authenticated (no token while auth is on): wait for a token.
      this.block(tx);
      return;
    }
    if (err && req?.op === "auth") {
      // A refresh was refused (bad token, or another user): start over with it.
      if (req.token === this.token) this.restart();
      return;
    }
    if (err && req?.channel && req.op === "subscribe") {
      tx.wire.delete(req.channel);
      this.events.onChannelError?.({ channel: req.channel, error: err });
    }
    if (!tx.healthy) {
      tx.healthy = true;
      this.connected(tx);
    }
  }

  private log(m: { channel?: unknown; lines?: unknown; truncated?: unknown }): void {
    if (typeof m.channel === "string" && Array.isArray(m.lines)) this.events.onLog?.(m.channel, m.lines as LogLine[], m.truncated === true);
  }

  private wsSubscribe(tx: Tx, channel: string): void {
    if (tx.wire.has(channel)) return;
    tx.wire.add(channel);
    const after = this.events.logAfter?.(channel);
    this.send(tx, { op: "subscribe", id: this.nextId(tx, "subscribe", channel), channel, ...(after !== undefined ? { after } : {}) });
  }

  private nextId(tx: Tx, op: ClientFrame["op"], channel?: string, token?: string): number {
    const id = ++this.reqSeq;
    tx.pending.set(id, { op, channel, token });
    return id;
  }

  private send(tx: Tx, frame: ClientFrame): void {
    try {
      tx.ws?.send(JSON.stringify(frame));
    } catch {
      /* closing: the close event handles it */
    }
  }

  private armHeartbeat(tx: Tx): void {
    if (this.heartbeatMs <= 0) return;
    const tick = () => {
      if (tx.done) return;
      const idle = this.timers.now() - tx.lastRecv;
      if (idle >= this.heartbeatMs && tx.pingDeadline === undefined) {
        this.send(tx, { op: "ping", id: this.nextId(tx, "ping") });
        tx.pingDeadline = this.timers.setTimeout(() => {
          if (tx.done || tx !== this.current) return;
          // No answer: the connection is dead even if the socket does not know yet.
          this.closeTx(tx, CloseCode.Normal, "ping timeout");
          this.transportClosed(tx, CloseCode.Abnormal);
        }, this.heartbeatTimeoutMs);
      }
      tx.heartbeat = this.timers.setTimeout(tick, this.heartbeatMs);
    };
    tx.heartbeat = this.timers.setTimeout(tick, this.heartbeatMs);
  }

  private stopHeartbeat(tx: Tx): void {
    if (tx.heartbeat !== undefined) this.timers.clearTimeout(tx.heartbeat);
    if (tx.pingDeadline !== undefined) this.timers.clearTimeout(tx.pingDeadline);
    tx.heartbeat = tx.pingDeadline = undefined;
  }

  // ---- SSE --------------------------------------------------------------

  /** The SSE stream's URL but the resume point, which changes with every log line. */
  private sseChannelsUrl(): string {
    const q = new URLSearchParams();
    for (const ch of [...this.desired].sort()) q.append("channel", ch);
    if (this.token) q.set("token", this.token);
    if (this.clientId) q.set("client_id", this.clientId);
    return this.server + "/api/v1/events?" + q.toString();
  }

  /**
   * SSE takes one "after" for all of a stream's logs: channels: the
   * smallest resume point, none if one of them has nothing yet. Lines a
   * channel already holds come again and are skipped (highest n wins).
   */
  private sseAfter(): number | undefined {
    let after: number | undefined;
    for (const ch of this.desired) {
      if (!ch.startsWith("logs:")) continue;
      const a = this.events.logAfter?.(ch);
      if (a === undefined) return undefined;
      after = after === undefined ? a : Math.min(after, a);
    }
    return after;
  }

  private openSse(id: number): void {
    const channelsKey = this.sseChannelsUrl();
    const after = this.sseAfter();
    const url = channelsKey + (after !== undefined ? "&after=" + after : "");
    const tx = this.newTx(id, "sse", url);
    tx.channelsKey = channelsKey;
    let es: EventSourceLike;
    try {
      es = new this.ES!(url);
    } catch {
      tx.done = true;
      tx.markClosed();
      this.transportClosed(tx, CloseCode.Abnormal);
      return;
    }
    tx.es = es;
    for (const ch of this.desired) tx.wire.add(ch);
    es.onopen = () => {
      if (tx.done) return;
      tx.opened = tx.healthy = true;
      this.connected(tx);
    };
    es.addEventListener("update", (ev) => {
      if (tx.done) return;
      try {
        const m = JSON.parse(ev.data) as { channel: string; job: JobSnapshot };
        if (m && m.job) this.events.onUpdate?.(m.channel, m.job);
      } catch {
        /* ignore a malformed event */
      }
    });
    es.addEventListener("log", (ev) => {
      if (tx.done) return;
      try {
        this.log(JSON.parse(ev.data) as { channel?: unknown; lines?: unknown; truncated?: unknown });
      } catch {
        /* ignore a malformed event */
      }
    });
    es.onerror = () => {
      if (tx.done) return;
      // EventSource would retry on its own, at its own pace and never after
      // an HTTP error: close it and let the backoff here decide.
      tx.done = true;
      es.close();
      tx.markClosed();
      if (!tx.opened) void this.sseRefused(tx);
      else this.transportClosed(tx, CloseCode.Abnormal);
    };
  }

  /** An SSE stream failed before it opened: was it the token? */
  private async sseRefused(tx: Tx): Promise<void> {
    let status = 0;
    if (this.fetchFn) {
      const ctrl = typeof AbortController !== "undefined" ? new AbortController() : null;
      try {
        const res = await this.fetchFn(tx.url, { signal: ctrl?.signal, headers: { Accept: "text/event-stream" } });
        status = res.status;
      } catch {
        status = 0;
      } finally {
        ctrl?.abort();
      }
    }
    if (tx !== this.current) return;
    if (status === 401) this.block(tx);
    else this.transportClosed(tx, CloseCode.Abnormal);
  }

  private scheduleSseReopen(): void {
    if (this.sseTimer !== null) return;
    this.sseTimer = this.timers.setTimeout(() => {
      this.sseTimer = null;
      const tx = this.current;
      if (!tx || tx.done || tx.kind !== "sse" || this.phase === "disposed") return;
      if (this.sseChannelsUrl() === tx.channelsKey) return;
      // EventSource.close() is immediate: the old stream is gone before the new one starts.
      tx.done = true;
      tx.es?.close();
      tx.markClosed();
      if (this.desired.size === 0) {
        this.phase = "idle";
        this.setStatus({ state: "closed", transport: null, reason: "idle" });
        return;
      }
      const wasOpen = tx.opened;
      this.openSse(++this.txSeq);
      if (wasOpen) {
        // Still live from the caller's view; the new stream sends current state first.
        const nt = this.current!;
        nt.opened = true;
      }
    }, this.sseDebounceMs);
  }

  // ---- state ------------------------------------------------------------

  private connected(tx: Tx): void {
    if (tx !== this.current || this.phase === "disposed") return;
    this.phase = "live";
    this.attempt = 0;
    this.everOpened = true;
    this.setStatus({ state: "open", transport: tx.kind, reason: undefined, retryAt: undefined, closeCode: undefined });
  }

  private block(tx: Tx): void {
    if (tx !== this.current) return;
    if (!tx.done) this.closeTx(tx, CloseCode.Normal, "unauthorized");
    this.clearRetry();
    this.phase = "blocked";
    this.setStatus({ state: "closed", transport: null, reason: "unauthorized", retryAt: undefined });
  }

  /** The current transport ended (either side). */
  private transportClosed(tx: Tx, code: number): void {
    if (tx !== this.current || this.phase === "disposed") return;
    if (tx.kind === "websocket" && !tx.opened) this.wsFailStreak++;
    const row: CloseRow | undefined = Object.hasOwn(CLOSE_CODES, code)
      ? CLOSE_CODES[code as keyof typeof CLOSE_CODES]
      : undefined;
    if (row && !row.reconnect) {
      // Reconnecting cannot help until something changes (a new token).
      this.phase = "blocked";
      this.clearRetry();
      this.setStatus({ state: "closed", transport: null, reason: row.name, closeCode: code, retryAt: undefined });
      return;
    }
    if (this.desired.size === 0) {
      this.phase = "idle";
      this.setStatus({ state: "closed", transport: null, reason: "idle", closeCode: code });
      return;
    }
    const reason: ConnectionReason = row
      ? row.name
      : typeof navigator !== "undefined" && navigator.onLine === false
        ? "offline"
        : "network";
    this.failAttempt(reason, code, row?.minDelayMs ?? 0);
  }

  /** Schedules the next attempt: backoff, but no sooner than the close code's least delay (minDelayMs). */
  private failAttempt(reason: ConnectionReason, code?: number, minDelayMs = 0): void {
    const codeMin = reason === "too_many_connections" ? this.tooManyConnsMinMs : minDelayMs;
    const minMs = Math.max(this.backoff.minMs ?? 0, codeMin);
    const delay = fullJitter(this.attempt, this.random, { ...this.backoff, minMs });
    this.attempt++;
    this.phase = "waiting";
    const retryAt = this.timers.now() + delay;
    this.setStatus({ state: "reconnecting", transport: null, reason, closeCode: code, retryAt });
    this.clearRetry();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.phase === "waiting") void this.connect();
    }, delay);
  }

  /** The browser says the network is back: retry now instead of waiting. */
  private networkBack(): void {
    if (this.phase !== "waiting") return;
    this.clearRetry();
    this.attempt = 0;
    this.wsFailStreak = 0;
    void this.connect();
  }

  private closeTx(tx: Tx, code: number, reason: string): void {
    if (tx.done) return;
    tx.done = true;
    this.stopHeartbeat(tx);
    if (tx.es) {
      tx.es.close();
      tx.markClosed();
      return;
    }
    try {
      tx.ws?.close(code, reason);
    } catch {
      tx.markClosed();
    }
    // A socket that never reports closing must not hold the next one forever.
    const t = this.timers.setTimeout(() => tx.markClosed(), this.closeTimeoutMs);
    void tx.closed.then(() => this.timers.clearTimeout(t));
    // onclose may already be detached from our logic (done), but it still marks closed.
  }

  private scheduleIdle(): void {
    this.cancelIdle();
    this.idleTimer = this.timers.setTimeout(() => {
      this.idleTimer = null;
      if (this.desired.size > 0 || this.phase === "disposed") return;
      this.clearRetry();
      if (this.current && !this.current.done) this.closeTx(this.current, CloseCode.Normal, "idle");
      if (this.phase !== "blocked") {
        this.phase = "idle";
        this.setStatus({ state: "closed", transport: null, reason: "idle", retryAt: undefined });
      }
    }, this.idleCloseMs);
  }

  private cancelIdle(): void {
    if (this.idleTimer !== null) this.timers.clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setStatus(patch: Partial<ConnectionStatus>): void {
    const next: ConnectionStatus = { ...this.status, ...patch, attempt: this.attempt };
    for (const k of Object.keys(next) as (keyof ConnectionStatus)[]) if (next[k] === undefined) delete next[k];
    const prev = this.status;
    if (
      prev.state === next.state &&
      prev.transport === next.transport &&
      prev.reason === next.reason &&
      prev.attempt === next.attempt &&
      prev.retryAt === next.retryAt &&
      prev.closeCode === next.closeCode &&
      prev.role === next.role
    )
      return;
    this.status = next;
    this.events.onStatus?.(next);
  }
}

export type { ProtocolError };
