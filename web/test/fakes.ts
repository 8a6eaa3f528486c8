// Test doubles of the browser APIs the client uses (not of the server):
// a clock, WebSocket, EventSource and Web Locks whose every step the test
// drives. Network behaviour is tested against a real server elsewhere.
import type { Timers } from "@progressd/client";
import type { LockManagerLike } from "@progressd/client";

/** Lets queued microtasks and promise chains run. */
export async function flush(times = 10): Promise<void> {
  for (let i = 0; i < times; i++) await Promise.resolve();
}

export class FakeTimers implements Timers {
  private t = 1_000_000;
  private seq = 0;
  private queue = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.queue.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.queue.delete(h as number);
  };
  /** Pending timers' delays from now, soonest first. */
  pending(): number[] {
    return [...this.queue.values()].map((q) => q.at - this.t).sort((a, b) => a - b);
  }
  /** Moves the clock forward, running every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.queue) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (!next) break;
      this.queue.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

type WsEvents = {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
};

export class FakeWebSocket implements WsEvents {
  static instances: FakeWebSocket[] = [];
  /** When false, a close() by the client stays CLOSING until finishClose(). */
  static autoFinishClose = true;
  static reset() {
    FakeWebSocket.instances = [];
    FakeWebSocket.autoFinishClose = true;
  }
  static last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]!;
  }
  static live(): FakeWebSocket[] {
    return FakeWebSocket.instances.filter((w) => w.readyState < 3);
  }

  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: WsEvents["onopen"] = null;
  onmessage: WsEvents["onmessage"] = null;
  onclose: WsEvents["onclose"] = null;
  onerror: WsEvents["onerror"] = null;
  clientCloseCode?: number;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code = 1000) {
    if (this.readyState >= 2) return;
    this.clientCloseCode = code;
    this.readyState = 2;
    if (FakeWebSocket.autoFinishClose) queueMicrotask(() => this.finishClose(code));
  }
  // --- driven by the test, as the server would ---
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  /** The server's side of the handshake failed or the server is down. */
  fail() {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  /** Replies OK to every request sent so far that has no reply yet. */
  replyAll() {
    for (const f of this.sent) {
      if (!(f as { _replied?: boolean })._replied) {
        (f as { _replied?: boolean })._replied = true;
        this.receive({ type: "reply", id: f.id });
      }
    }
  }
  serverClose(code: number, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: true });
  }
  finishClose(code = this.clientCloseCode ?? 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason: "", wasClean: true });
  }
  frames(op?: string) {
    return this.sent.filter((f) => !op || f.op === op);
  }
}

export class FakeEventSource {
  static instances: FakeEventSource[] = [];
  static reset() {
    FakeEventSource.instances = [];
  }
  static last(): FakeEventSource {
    return FakeEventSource.instances[FakeEventSource.instances.length - 1]!;
  }
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  private listeners = new Map<string, ((ev: { data: string }) => void)[]>();
  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }
  addEventListener(type: string, fn: (ev: { data: string }) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close() {
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  emit(type: string, data: unknown) {
    for (const fn of this.listeners.get(type) ?? []) fn({ data: JSON.stringify(data) });
  }
  fail() {
    this.onerror?.({});
  }
  channels(): string[] {
    return new URL(this.url).searchParams.getAll("channel");
  }
}

/** An in-process Web Locks: exclusive locks, FIFO, with abortable requests. */
export class FakeLocks implements LockManagerLike {
  private held = new Set<string>();
  private waiting = new Map<string, { cb: (l: unknown) => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void; signal?: AbortSignal }[]>();

  request(name: string, options: { signal?: AbortSignal }, cb: (l: unknown) => unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) return reject(new DOMException("aborted", "AbortError"));
      const entry = { cb, resolve, reject, signal: options.signal };
      options.signal?.addEventListener("abort", () => {
        const q = this.waiting.get(name);
        const i = q?.indexOf(entry) ?? -1;
        if (q && i >= 0) {
          q.splice(i, 1);
          reject(new DOMException("aborted", "AbortError"));
        }
      });
      const q = this.waiting.get(name) ?? [];
      q.push(entry);
      this.waiting.set(name, q);
      this.pump(name);
    });
  }
  isHeld(name: string) {
    return this.held.has(name);
  }
  private pump(name: string) {
    if (this.held.has(name)) return;
    const q = this.waiting.get(name);
    const next = q?.shift();
    if (!next) return;
    this.held.add(name);
    Promise.resolve()
      .then(() => next.cb({ name }))
      .then(
        (v) => next.resolve(v),
        (e) => next.reject(e),
      )
      .finally(() => {
        this.held.delete(name);
        this.pump(name);
      });
  }
}

export function snapshot(id: string, seq: number, patch: Record<string, unknown> = {}) {
  return {
    job_id: id,
    project: "p1",
    owner: "local",
    pipeline: "demo",
    state: "running" as const,
    progress: Math.min(1, seq / 100),
    stage: "encode",
    stages: [],
    seq,
    created_at: "2026-01-01T00:00:00.000Z",
    ...patch,
  };
}

/** An in-process BroadcastChannel: delivers a structured clone to every other instance of the name. */
export class FakeBroadcastChannel {
  static all = new Set<FakeBroadcastChannel>();
  static posted = 0;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  private closed = false;
  constructor(readonly name: string) {
    FakeBroadcastChannel.all.add(this);
  }
  postMessage(m: unknown) {
    if (this.closed) throw new Error("closed");
    FakeBroadcastChannel.posted++;
    const data = structuredClone(m);
    for (const bc of FakeBroadcastChannel.all) {
      if (bc !== this && bc.name === this.name) queueMicrotask(() => !bc.closed && bc.onmessage?.({ data }));
    }
  }
  close() {
    this.closed = true;
    FakeBroadcastChannel.all.delete(this);
  }
}
