// Cross-tab plumbing: Web Locks to elect one leader tab per group and to
// notice when a tab is gone, BroadcastChannel to talk. All tabs of one
// origin that talk to the same server as the same identity form a group;
// the leader's connection serves them all.

import type { ConnectionStatus, JobSnapshot, LogLine, ProtocolError } from "./types.js";

export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal; ifAvailable?: boolean; mode?: "exclusive" | "shared" },
    callback: (lock: unknown) => unknown,
  ): Promise<unknown>;
}

export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  close(): void;
}
export type BroadcastChannelCtor = new (name: string) => BroadcastChannelLike;

/** Messages between the tabs of a group. from: the sender's tab id; to: one recipient. */
export type TabMessage =
  | { k: "hello"; from: string }
  | { k: "subs"; from: string; channels: string[] }
  | { k: "token"; from: string; token: string }
  | { k: "bye"; from: string }
  | { k: "leader"; from: string }
  | { k: "status"; from: string; status: ConnectionStatus }
  | { k: "jobs"; from: string; to?: string; jobs: JobSnapshot[] }
  /** Log lines the leader received, or (with to) a tab's catch-up on a logs: channel it just asked for. */
  | { k: "logs"; from: string; to?: string; job: string; lines: LogLine[]; truncated: boolean }
  | { k: "chanerr"; from: string; channel: string; error: ProtocolError };

export interface HeldLock {
  /** Lets the lock go (or withdraws the request); resolves once it is released. */
  release(): Promise<void>;
}

/**
 * Requests an exclusive lock and holds it until release(). onAcquired runs
 * when it is granted (at once if free, or when the holder lets go).
 */
export function holdLock(locks: LockManagerLike, name: string, onAcquired: () => void): HeldLock {
  const ctrl = typeof AbortController !== "undefined" ? new AbortController() : null;
  let stopped = false;
  let letGo!: () => void;
  const held = new Promise<void>((r) => (letGo = r));
  const settled = locks
    .request(name, { signal: ctrl?.signal }, async () => {
      if (stopped) return;
      onAcquired();
      await held;
    })
    .then(
      () => undefined,
      () => undefined, // AbortError: withdrawn before it was granted
    );
  return {
    release() {
      if (!stopped) {
        stopped = true;
        ctrl?.abort();
        letGo();
      }
      return settled;
    },
  };
}

/**
 * Calls onGone once nobody holds name any more: granted only when the
 * tab holding it has closed or crashed. cancel() withdraws.
 */
export function whenReleased(locks: LockManagerLike, name: string, onGone: () => void): () => void {
  const ctrl = typeof AbortController !== "undefined" ? new AbortController() : null;
  let canceled = false;
  locks
    .request(name, { signal: ctrl?.signal }, () => {
      if (!canceled) onGone();
    })
    .catch(() => undefined);
  return () => {
    canceled = true;
    ctrl?.abort();
  };
}

/** The browser's Web Locks and BroadcastChannel, when both exist. */
export function browserCrossTab(): { locks: LockManagerLike; BroadcastChannel: BroadcastChannelCtor } | null {
  const nav = typeof navigator !== "undefined" ? (navigator as unknown as { locks?: LockManagerLike }) : undefined;
  const BC = (globalThis as unknown as { BroadcastChannel?: BroadcastChannelCtor }).BroadcastChannel;
  if (!nav?.locks || typeof nav.locks.request !== "function" || !BC) return null;
  return { locks: nav.locks, BroadcastChannel: BC };
}
