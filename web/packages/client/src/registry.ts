// One ProgressClient per server per page, shared by every provider and
// component that asks for it; disposed when the last one lets go.

import { ProgressClient, type ProgressClientOptions } from "./client.js";
import { resolveServer } from "./env.js";

interface Entry {
  client: ProgressClient;
  refs: number;
  disposeTimer: ReturnType<typeof setTimeout> | null;
}

const clients = new Map<string, Entry>();

/** The page's client for a server, created on first use (with opts). */
export function getProgressClient(opts: ProgressClientOptions = {}): ProgressClient {
  const key = resolveServer(opts.server);
  let e = clients.get(key);
  if (!e) {
    e = { client: new ProgressClient({ ...opts, server: key }), refs: 0, disposeTimer: null };
    clients.set(key, e);
  }
  return e.client;
}

/**
 * Holds a shared client open; the returned function lets go. The last
 * holder's release disposes it after a moment (so an unmount followed by a
 * mount, as React's StrictMode does, keeps the connection).
 */
export function retainProgressClient(client: ProgressClient, disposeDelayMs = 1000): () => void {
  const e = clients.get(client.server);
  if (!e || e.client !== client) return () => undefined;
  e.refs++;
  if (e.disposeTimer) {
    clearTimeout(e.disposeTimer);
    e.disposeTimer = null;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--e.refs > 0) return;
    e.disposeTimer = setTimeout(() => {
      if (e.refs > 0 || clients.get(client.server) !== e) return;
      clients.delete(client.server);
      void client.dispose();
    }, disposeDelayMs);
  };
}
