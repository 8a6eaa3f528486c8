// FrameBatcher turns many notifications into at most one call per
// listener per animation frame: a job updating 1000 times a second
// re-renders its bar once per frame, with the newest snapshot.

import type { Listener } from "./types.js";

export type RequestFrame = (cb: () => void) => unknown;

function defaultRequestFrame(): RequestFrame {
  const raf = (globalThis as { requestAnimationFrame?: (cb: FrameRequestCallback) => number }).requestAnimationFrame;
  if (typeof raf === "function") return (cb) => raf.call(globalThis, () => cb());
  return (cb) => setTimeout(cb, 16);
}

export class FrameBatcher {
  private dirty = new Set<Listener>();
  private scheduled = false;
  private readonly requestFrame: RequestFrame;

  constructor(requestFrame?: RequestFrame) {
    this.requestFrame = requestFrame ?? defaultRequestFrame();
  }

  /** Calls l on the next frame (once, however often it is scheduled before then). */
  schedule(l: Listener): void {
    this.dirty.add(l);
    if (this.scheduled) return;
    this.scheduled = true;
    this.requestFrame(() => this.flush());
  }

  /** Forgets a scheduled call (the listener unsubscribed). */
  cancel(l: Listener): void {
    this.dirty.delete(l);
  }

  /** Runs every scheduled call now. */
  flush(): void {
    this.scheduled = false;
    const ls = [...this.dirty];
    this.dirty.clear();
    for (const l of ls) l();
  }
}

/** The page's batcher. */
export const frameBatcher = new FrameBatcher();
