// The coalescing reporter: report from a tight loop for the cost of an
// object merge. report() never waits on the network: it merges the report
// into the one pending for its job and returns. A timer sends what is
// pending, at most one request's worth per job per minIntervalMs (default
// 100 ms), so a loop of a million iterations costs about ten reports a
// second per job; the jobs due at one tick go in ONE request (POST
// /api/v1/reports, up to 1,000 reports; a lone report goes to the job's
// /progress). Log lines ride in their job's report ("log": kept before the
// report applies), or, with no report pending, go to /logs; they are
// batched, never coalesced.
//
// Order: the terminal report (succeeded, failed, canceled) is always the
// last thing sent for its job; reports queued after it are refused, lines
// dropped. flush() and close() send at once and wait; close() keeps trying
// for the client's retry window. The same rules as the Python SDK's
// Reporter.
//
// A 409 job_finished (the job was canceled or finished elsewhere) stops the
// job's reports: canceled(id) turns true, signal(id) aborts, and every
// later report() throws JobCanceledError / JobFinishedError: that is how a
// worker learns to stop. A server unreachable or answering 503 for longer
// than the retry window keeps the newest state (and lines) pending for the
// next tick, so reporting never kills the work it reports on; a refused
// report (400) is thrown from the job's next report().

import { ApiError, type ProgressReport } from "../api.js";
import type { JobSnapshot } from "../types.js";
import type { Client } from "./client.js";
import { ConnectionFailedError, JobCanceledError, JobFinishedError } from "./errors.js";

/** A /logs request or a report carries at most this many lines (the server's limit). */
const MAX_LINES_PER_REQUEST = 1000;
/** Lines waiting beyond this many are dropped, oldest first: a loop logging faster than the server takes lines must not grow memory. */
export const MAX_PENDING_LINES = 100_000;
/** The server keeps at most this many bytes of a line; longer ones are cut here already, so bodies stay in bounds. */
const MAX_LINE_BYTES = 4096;
/** Lines of one job per tick, in bytes of text: well inside the 1 MiB bodies of /logs and /api/v1/reports. */
const LINE_BYTES_PER_TICK = 256 << 10;
/** A batch request is cut before this many bytes of JSON (the server takes 1 MiB + 64 KiB). */
const BATCH_BYTES = 960 << 10;
/** A lone report goes to /progress (64 KiB bodies) below this size, else in a batch. */
const SINGLE_BYTES = 60 << 10;

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const FRACTION = ["progress", "current", "total"] as const;

const encoder = new TextEncoder();

function byteLength(s: string): number {
  return encoder.encode(s).length;
}

/** A line cut, on a character boundary, to end with "…" within MAX_LINE_BYTES (as the server would). */
export function cutLine(s: string): string {
  if (s.length <= MAX_LINE_BYTES / 4 || byteLength(s) <= MAX_LINE_BYTES) return s;
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const b = byteLength(ch);
    if (bytes + b > MAX_LINE_BYTES - 3) break;
    out += ch;
    bytes += b;
  }
  return out + "…";
}

/** What is waiting to be sent for one job. */
export class Coalescer {
  body: ProgressReport = {};
  lines: string[] = [];
  /** A terminal report was queued: nothing after it. */
  terminal = false;
  droppedLines = 0;

  /** Merges a report into the pending one; false if it came after the terminal report. */
  add(r: ProgressReport): boolean {
    if (this.terminal) return false;
    const p = this.body as Record<string, unknown>;
    if (r.stage !== undefined && r.stage !== p.stage) for (const k of FRACTION) delete p[k]; // the old stage's numbers mean nothing for the new one
    if (r.progress !== undefined) {
      delete p.current;
      delete p.total;
    } else if (r.current !== undefined || r.total !== undefined) delete p.progress;
    const merged: Record<string, unknown> = { ...r };
    if (r.metadata && p.metadata && typeof p.metadata === "object") merged.metadata = { ...(p.metadata as object), ...r.metadata };
    for (const [k, v] of Object.entries(merged)) if (v !== undefined) p[k] = v;
    if (r.state && TERMINAL.has(r.state)) this.terminal = true;
    return true;
  }

  addLines(lines: readonly string[]): boolean {
    if (this.terminal) return false;
    for (const l of lines) this.lines.push(cutLine(String(l)));
    const over = this.lines.length - MAX_PENDING_LINES;
    if (over > 0) {
      this.lines.splice(0, over);
      this.droppedLines += over;
    }
    return true;
  }

  hasWork(): boolean {
    return this.lines.length > 0 || Object.keys(this.body).length > 0;
  }

  /** The next tick's lines and report. The terminal report stays back until every line queued before it is sent. */
  take(): { lines: string[]; body: ProgressReport } {
    let n = 0;
    let bytes = 0;
    while (n < this.lines.length && n < MAX_LINES_PER_REQUEST) {
      bytes += byteLength(this.lines[n]!) + 3;
      if (n > 0 && bytes > LINE_BYTES_PER_TICK) break;
      n++;
    }
    const lines = this.lines.splice(0, n);
    let body: ProgressReport = {};
    if (Object.keys(this.body).length > 0 && !(this.terminal && this.lines.length > 0)) {
      body = this.body;
      this.body = {};
    }
    return { lines, body };
  }

  /** Work that could not be sent yet goes back: newer fields win over it, its lines go first. */
  putBack(lines: string[], body: ProgressReport): void {
    this.lines.unshift(...lines);
    const merged = { ...body } as Record<string, unknown>;
    const newer = this.body as Record<string, unknown>;
    if ((newer.stage !== undefined && newer.stage !== merged.stage) || FRACTION.some((k) => k in newer)) for (const k of FRACTION) delete merged[k];
    this.body = { ...merged, ...newer } as ProgressReport;
  }
}

interface JobEntry {
  pending: Coalescer;
  /** A request carrying this job's work is on its way. */
  inflight: boolean;
  /** Not before this (epoch ms): minIntervalMs after the last send. */
  nextAt: number;
  finished?: JobFinishedError;
  /** A refused report, thrown by the next report() or flush(). */
  error?: unknown;
  controller: AbortController;
  last?: JobSnapshot;
  seq?: number;
}

interface Outgoing {
  id: string;
  e: JobEntry;
  lines: string[];
  body: ProgressReport;
}

export class Reporter {
  readonly minIntervalMs: number;
  /** Requests sent, for tests and benchmarks. */
  requests = 0;
  private readonly jobs = new Map<string, JobEntry>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private ticking: Promise<void> | null = null;
  /** Flushes waiting: send without waiting for the interval. */
  private hurry = 0;
  /** Ticks whose delivery failed (server unreachable or 503 for the retry window). */
  private failedRounds = 0;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private lastWarn = 0;

  constructor(
    private readonly client: Client,
    opts: { minIntervalMs?: number } = {},
  ) {
    this.minIntervalMs = opts.minIntervalMs ?? 100;
    if (!(this.minIntervalMs >= 0)) throw new RangeError("progressd: minIntervalMs must be ≥ 0");
  }

  /**
   * Queues a report for a job, merged with the one pending; never waits.
   * Throws JobCanceledError / JobFinishedError once the job is over, and
   * an earlier refused report's error.
   */
  report(jobId: string, report: ProgressReport): void {
    const e = this.entry(jobId);
    if (e.finished) throw e.finished;
    if (e.error !== undefined) {
      const err = e.error;
      e.error = undefined;
      throw err;
    }
    if (this.closed) throw new Error(`progressd: the reporter is closed; job ${jobId}'s report was not queued`);
    checkReport(report);
    if (!e.pending.add(report)) throw new Error(`progressd: job ${jobId} already has its terminal report queued; nothing is sent after it`);
    this.schedule();
  }

  /** Queues log lines; never throws (a log call must not break the code that logs). */
  log(jobId: string, lines: readonly string[]): void {
    if (lines.length === 0 || this.closed) return;
    const e = this.entry(jobId);
    if (e.finished) return;
    e.pending.addLines(lines);
    this.schedule();
  }

  canceled(jobId: string): boolean {
    return this.jobs.get(jobId)?.finished instanceof JobCanceledError;
  }

  finished(jobId: string): boolean {
    const e = this.jobs.get(jobId);
    return !!e && (e.finished !== undefined || (e.pending.terminal && !e.pending.hasWork() && !e.inflight));
  }

  signal(jobId: string): AbortSignal {
    return this.entry(jobId).controller.signal;
  }

  /** The newest snapshot a report of the job was answered with (lone reports only; batches answer seq). */
  last(jobId: string): JobSnapshot | undefined {
    return this.jobs.get(jobId)?.last;
  }

  /**
   * Sends what is pending now (for one job, or all), without waiting for
   * the interval, and waits until it is delivered. Rejects with a refused
   * report's error, or ConnectionFailedError if the server stayed
   * unreachable for the client's retry window.
   */
  async flush(jobId?: string): Promise<void> {
    const failedBefore = this.failedRounds;
    this.hurry++;
    try {
      this.schedule();
      while (!this.settled(jobId, failedBefore)) await new Promise<void>((r) => this.waiters.add(r));
    } finally {
      this.hurry--;
    }
    for (const [id, e] of this.jobs) {
      if (jobId !== undefined && id !== jobId) continue;
      if (e.error !== undefined) {
        const err = e.error;
        e.error = undefined;
        throw err;
      }
      if (!e.finished && (e.pending.hasWork() || e.inflight)) {
        throw new ConnectionFailedError(`job ${id}: reports are still pending: progressd at ${this.client.server} was unreachable for the retry window`);
      }
    }
  }

  /** Delivers what is pending (retrying for the client's retry window), then stops. Idempotent. */
  async close(): Promise<void> {
    const giveUp = Date.now() + this.client.retryWindowMs;
    try {
      for (;;) {
        try {
          await this.flush();
          break;
        } catch (err) {
          if (!(err instanceof ConnectionFailedError) || Date.now() >= giveUp) throw err;
        }
      }
    } finally {
      this.closed = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private entry(jobId: string): JobEntry {
    if (!jobId || typeof jobId !== "string") throw new TypeError("progressd: a job id is required (a non-empty string)");
    let e = this.jobs.get(jobId);
    if (!e) {
      e = { pending: new Coalescer(), inflight: false, nextAt: 0, controller: new AbortController() };
      this.jobs.set(jobId, e);
    }
    return e;
  }

  private settled(jobId: string | undefined, failedBefore: number): boolean {
    if (this.failedRounds > failedBefore) return true;
    for (const [id, e] of this.jobs) {
      if (jobId !== undefined && id !== jobId) continue;
      if (!e.finished && (e.pending.hasWork() || e.inflight)) return false;
    }
    return true;
  }

  /** Arms the timer for the soonest job that has work (at once while a flush waits). */
  private schedule(): void {
    if (this.ticking) return;
    if (this.timer !== null) {
      if (this.hurry === 0) return;
      clearTimeout(this.timer); // a flush: now, not at the interval
      this.timer = null;
    }
    let at = Infinity;
    for (const e of this.jobs.values()) {
      if (e.finished || e.inflight || !e.pending.hasWork()) continue;
      at = Math.min(at, this.hurry > 0 ? 0 : e.nextAt);
    }
    if (at === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ticking = this.tick().finally(() => {
        this.ticking = null;
        for (const w of [...this.waiters]) w();
        this.waiters.clear();
        this.schedule();
      });
    }, Math.max(0, at - Date.now()));
  }

  /** Sends the work of every job that is due: reports in one request, lone lines to /logs. */
  private async tick(): Promise<void> {
    const now = Date.now();
    const out: Outgoing[] = [];
    for (const [id, e] of this.jobs) {
      if (e.finished || e.inflight || !e.pending.hasWork() || (this.hurry === 0 && now < e.nextAt)) continue;
      const { lines, body } = e.pending.take();
      e.inflight = true;
      e.nextAt = now + this.minIntervalMs;
      out.push({ id, e, lines, body });
    }
    const reports = out.filter((o) => Object.keys(o.body).length > 0);
    const linesOnly = out.filter((o) => Object.keys(o.body).length === 0);
    try {
      await Promise.all([this.sendReports(reports), ...linesOnly.map((o) => this.sendLines(o))]);
    } finally {
      for (const o of out) o.e.inflight = false;
      this.forgetFinished();
    }
  }

  private async sendLines(o: Outgoing): Promise<void> {
    try {
      this.requests++;
      await this.client.log(o.id, o.lines);
    } catch (err) {
      this.onError(o, err);
    }
  }

  private async sendReports(reports: Outgoing[]): Promise<void> {
    if (reports.length === 0) return;
    const items = reports.map((o) => ({ o, json: { job_id: o.id, ...o.body, ...(o.lines.length ? { log: o.lines } : {}) } }));
    if (items.length === 1) {
      const { o, json } = items[0]!;
      const { job_id: _, ...report } = json;
      if (byteLength(JSON.stringify(report)) <= SINGLE_BYTES) {
        try {
          this.requests++;
          o.e.last = await this.client.report(o.id, report);
          o.e.seq = o.e.last.seq;
        } catch (err) {
          this.onError(o, err);
        }
        return;
      }
    }
    // Batches of at most 1,000 reports and BATCH_BYTES, one after another.
    let batch: typeof items = [];
    let bytes = 0;
    const flushBatch = async () => {
      if (batch.length === 0) return;
      const b = batch;
      batch = [];
      bytes = 0;
      await this.sendBatch(b);
    };
    for (const it of items) {
      const size = byteLength(JSON.stringify(it.json)) + 1;
      if (batch.length > 0 && (batch.length >= 1000 || bytes + size > BATCH_BYTES)) await flushBatch();
      batch.push(it);
      bytes += size;
    }
    await flushBatch();
  }

  private async sendBatch(items: { o: Outgoing; json: ProgressReport & { job_id: string } }[]): Promise<void> {
    let results: ({ seq: number } | { error: { code: string; message: string } })[];
    try {
      this.requests++;
      results = await this.client.reportMany(items.map((i) => i.json));
    } catch (err) {
      for (const { o } of items) this.onError(o, err);
      return;
    }
    await Promise.all(
      items.map(async ({ o }, i) => {
        const r = results[i];
        if (r && "seq" in r && typeof r.seq === "number") {
          o.e.seq = r.seq;
          return;
        }
        const e = r && "error" in r ? r.error : { code: "internal", message: "the server sent no result for this report" };
        if (e.code === "job_finished") {
          // As a lone report would: read the job back (canceled? or our own terminal report, landed on an earlier try).
          try {
            // The batch may have been retried after its connection broke: a
            // terminal report that finds the job in its own state landed.
            const err = Object.assign(new JobFinishedError(409, e.code, e.message), { maybeApplied: true });
            await this.client.afterFinished(o.id, err, o.body.state);
          } catch (err) {
            this.onError(o, err);
          }
          return;
        }
        this.onError(o, new ApiError(e.code === "unavailable" ? 503 : e.code === "not_found" ? 404 : e.code === "forbidden" ? 403 : 400, e.code, e.message));
      }),
    );
  }

  private onError(o: Outgoing, err: unknown): void {
    const e = o.e;
    if (err instanceof JobFinishedError) {
      e.finished = err;
      e.pending = new Coalescer();
      e.pending.terminal = true;
      if (err instanceof JobCanceledError) e.controller.abort(err);
      return;
    }
    if (err instanceof ConnectionFailedError || (err instanceof ApiError && err.status === 503)) {
      e.pending.putBack(o.lines, o.body);
      this.failedRounds++;
      this.warn(o.id, err);
      return;
    }
    e.error = err;
  }

  /** Warns about a delivery problem at most every 10 s (the work stays pending). */
  private warn(jobId: string, err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    console.warn(`progressd: cannot deliver reports for job ${jobId}: ${(err as Error)?.message ?? err} (will keep trying)`);
  }

  /** Forgets jobs that are over and have nothing left to say: a long-lived worker's map stays small. */
  private forgetFinished(): void {
    for (const [id, e] of this.jobs) {
      const done = e.finished !== undefined || (e.pending.terminal && !e.pending.hasWork());
      if (done && !e.inflight && e.error === undefined && this.jobs.size > 1000) this.jobs.delete(id);
    }
  }
}

/** Refuses what JSON cannot carry or the server would refuse for sure, at the call (not a tick later). */
function checkReport(r: ProgressReport): void {
  for (const k of ["progress", "current", "total"] as const) {
    const v = r[k];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (k === "progress" && v > 1)) {
      throw new RangeError(`progressd: ${k} must be a finite number ${k === "progress" ? "from 0 to 1" : "≥ 0"}, got ${String(v)}`);
    }
  }
}

