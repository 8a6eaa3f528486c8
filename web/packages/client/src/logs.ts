// LogStore keeps the log lines a page watches (SPEC "Log lines"): per job,
// the newest lines up to a cap, in order of n, each n once. Lines come from
// logs:<id> frames (scrollback first, then live) and, after a reconnect,
// again from the last n kept ("after"), so a frame may repeat lines already
// held: the highest n wins and nothing is kept twice.

import type { Listener, LogLine } from "./types.js";

/** How many lines a job's buffer keeps unless a watcher asks for more: the server's default. */
export const DEFAULT_LOG_LIMIT = 1000;

/** What a page knows of a job's log lines. */
export interface JobLogs {
  /** The newest lines, oldest first, at most the watcher's limit. */
  readonly lines: readonly LogLine[];
  /**
   * Lines between those held were lost: the server had already dropped
   * them when this page asked (it fell behind, or reconnected too late).
   */
  readonly truncated: boolean;
  /** The n of the newest line seen (0: none yet); a reconnect resumes after it. */
  readonly last: number;
}

interface Entry {
  lines: LogLine[];
  truncated: boolean;
  last: number;
  /** The limits watchers asked for, each with its count. */
  limits: Map<number, number>;
  cap: number;
  version: number;
  /** Immutable views by limit, valid while their version is the entry's. */
  views: Map<number, { version: number; value: JobLogs }>;
  listeners: Set<Listener>;
}

const EMPTY: JobLogs = Object.freeze({ lines: Object.freeze([]) as readonly LogLine[], truncated: false, last: 0 });

export class LogStore {
  private readonly jobs = new Map<string, Entry>();

  /** Starts keeping the job's lines (idempotent). */
  ensure(jobId: string): void {
    if (this.jobs.has(jobId)) return;
    this.jobs.set(jobId, {
      lines: [],
      truncated: false,
      last: 0,
      limits: new Map(),
      cap: DEFAULT_LOG_LIMIT,
      version: 0,
      views: new Map(),
      listeners: new Set(),
    });
  }

  /** Whether the job's lines are kept. */
  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  /**
   * Asks that at least limit lines of the job be kept until the returned
   * function is called: the buffer keeps the largest limit asked for (the
   * default when nobody asks).
   */
  holdLimit(jobId: string, limit: number): () => void {
    this.ensure(jobId);
    const e = this.jobs.get(jobId)!;
    e.limits.set(limit, (e.limits.get(limit) ?? 0) + 1);
    this.recap(e);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (e.limits.get(limit) ?? 1) - 1;
      if (n > 0) e.limits.set(limit, n);
      else e.limits.delete(limit);
      this.recap(e);
    };
  }

  /** The n to resume after (undefined: nothing kept yet, ask for every kept line). */
  after(jobId: string): number | undefined {
    const last = this.jobs.get(jobId)?.last ?? 0;
    return last > 0 ? last : undefined;
  }

  /**
   * Takes a frame's lines (ascending n). Lines at or below the newest n
   * held are repeats and skipped. A frame the server marked truncated, or
   * one that starts past the next n, leaves a gap: truncated is set.
   * Returns whether anything changed.
   */
  accept(jobId: string, lines: readonly LogLine[], truncated = false): boolean {
    const e = this.jobs.get(jobId);
    if (!e) return false;
    let changed = false;
    for (const line of lines) {
      if (!line || typeof line.n !== "number" || line.n <= e.last) continue;
      if ((truncated || e.last > 0) && line.n > e.last + 1 && !e.truncated) e.truncated = true;
      e.lines.push(line);
      e.last = line.n;
      changed = true;
    }
    if (!changed) return false;
    if (e.lines.length > e.cap) e.lines.splice(0, e.lines.length - e.cap);
    this.bump(e);
    return true;
  }

  /** The job's lines as a watcher with this limit sees them; the same object until they change. */
  get(jobId: string, limit: number = DEFAULT_LOG_LIMIT): JobLogs {
    const e = this.jobs.get(jobId);
    if (!e) return EMPTY;
    const v = e.views.get(limit);
    if (v && v.version === e.version) return v.value;
    const lines = e.lines.length > limit ? e.lines.slice(e.lines.length - limit) : e.lines.slice();
    const value: JobLogs = Object.freeze({ lines: Object.freeze(lines), truncated: e.truncated, last: e.last });
    e.views.set(limit, { version: e.version, value });
    return value;
  }

  /** Every kept line of the job (to catch another tab up). */
  lines(jobId: string): LogLine[] {
    return this.jobs.get(jobId)?.lines.slice() ?? [];
  }

  /** Calls l whenever the job's lines change; returns the unsubscribe. */
  subscribe(jobId: string, l: Listener): () => void {
    this.ensure(jobId);
    const e = this.jobs.get(jobId)!;
    e.listeners.add(l);
    return () => e.listeners.delete(l);
  }

  /** Forgets every job not in keep (nobody watches their logs any more). */
  keepOnly(keep: ReadonlySet<string>): void {
    for (const [id, e] of this.jobs) {
      if (keep.has(id) || e.limits.size > 0 || e.listeners.size > 0) continue;
      this.jobs.delete(id);
    }
  }

  /** Forgets every line (another user's token): watchers start over from the server's scrollback. */
  clear(): void {
    for (const e of this.jobs.values()) {
      if (e.last === 0 && !e.truncated) continue;
      e.lines = [];
      e.last = 0;
      e.truncated = false;
      this.bump(e);
    }
  }

  private recap(e: Entry): void {
    e.cap = e.limits.size ? Math.max(...e.limits.keys()) : DEFAULT_LOG_LIMIT;
    if (e.lines.length > e.cap) {
      e.lines.splice(0, e.lines.length - e.cap);
      this.bump(e);
    }
  }

  private bump(e: Entry): void {
    e.version++;
    for (const l of [...e.listeners]) l();
  }
}

/** The job id of a logs:<id> channel, or null for another kind. */
export function logsJob(channel: string): string | null {
  return channel.startsWith("logs:") ? channel.slice(5) : null;
}
