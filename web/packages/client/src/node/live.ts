// Live updates on Node: the browser's ProgressClient (snapshots, log
// lines, reconnects, resume points) over a WebSocket, which Node ≥ 22 has
// built in and Node 20 gets from the ws package (an optional peer
// dependency: npm install ws).
import { createRequire } from "node:module";
import { ProgressClient, type ProgressClientOptions } from "../client.js";
import type { WebSocketCtor } from "../env.js";

/** The WebSocket class to use here: the global one, else the ws package's. */
export function nodeWebSocket(): WebSocketCtor {
  const g = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (g) return g;
  try {
    return createRequire(import.meta.url)("ws") as WebSocketCtor;
  } catch {
    throw new Error("progressd: this Node has no WebSocket (it is built in from Node 22): npm install ws, or pass the WebSocket option");
  }
}

/** A ProgressClient for Node: one connection of its own (no tabs to share with), WebSocket only. */
export function liveClient(opts: ProgressClientOptions = {}): ProgressClient {
  return new ProgressClient({
    crossTab: false,
    onlineTarget: null,
    EventSource: null,
    ...opts,
    WebSocket: opts.WebSocket ?? nodeWebSocket(),
  });
}
