// What the client takes from its environment, injectable so tests can
// drive time, randomness and the browser APIs deterministically.

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

/** The part of the EventSource API the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, fn: (ev: { data: string }) => void): void;
  close(): void;
}
export type EventSourceCtor = new (url: string) => EventSourceLike;

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** The server's base URL: absolute, no trailing slash. */
export function resolveServer(server?: string | null): string {
  const base = typeof location !== "undefined" ? location.href : "http://127.0.0.1:8000/";
  const u = new URL(server || "/", base);
  let s = u.origin + u.pathname;
  while (s.endsWith("/")) s = s.slice(0, -1);
  return s;
}

/** http(s)://host/path → ws(s)://host/path. */
export function toWebSocketUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/i, "ws");
}

/**
 * A random id for this page, sent as client_id so the server can count
 * duplicate connections. Not crypto.randomUUID: it only tells pages apart
 * (nothing is guarded by it), and its first call in a fresh Chromium
 * renderer took ~30 ms, on the dashboard's first load before anything was
 * on screen.
 */
export function randomId(random: () => number = Math.random): string {
  let s = "";
  for (let i = 0; i < 16; i++) s += Math.floor(random() * 36).toString(36);
  return s;
}
