// The server-side client (Node ≥ 20, or any runtime with fetch): every
// call of the HTTP API, retried while the server is unreachable or answers
// 429/502/503/504 (it changed nothing then), with exponential backoff and
// jitter, for up to retryWindowMs; then ConnectionFailedError or the typed
// error. A create carries an Idempotency-Key (the same on every retry), so
// a retried create never makes two jobs; a terminal report or cancel whose
// first try landed before its connection broke (the retry gets 409
// job_finished) is recognised by reading the job back: the state it asked
// for is there, so the call succeeds. The same rules as the Python SDK's.

import { Api, ApiError, jobsPath, logsPath, type CreateJob, type JobList, type ListQuery, type LogPage, type LogsQuery, type ProgressReport } from "../api.js";
import type { ProgressClient, ProgressClientOptions } from "../client.js";
import type { FetchLike } from "../env.js";
import { isTerminal, type JobSnapshot } from "../types.js";
import { ConnectionFailedError, JobCanceledError, JobFinishedError } from "./errors.js";
import { liveClient } from "./live.js";
import { Reporter } from "./reporter.js";

export const DEFAULT_SERVER = "http://127.0.0.1:8000";

/** Statuses worth retrying: the server (or a proxy before it) changed nothing. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export interface ClientOptions {
  /** The server's base URL. Default $PROGRESSD_SERVER, else http://127.0.0.1:8000. */
  server?: string;
  /** The token (JWT) when the server has auth on. Default $PROGRESSD_TOKEN. */
  token?: string | null;
  /** Bounds each request. Default 10 s. */
  timeoutMs?: number;
  /** How long a call keeps retrying an unreachable or 503 server before it fails. Default 30 s. */
  retryWindowMs?: number;
  /** The reporter's least spacing between two requests for one job. Default 100 ms. */
  minIntervalMs?: number;
  /** First backoff ceiling, doubling up to backoffMaxMs. Default 100 ms. */
  backoffBaseMs?: number;
  /** Default 2 s. */
  backoffMaxMs?: number;
  fetch?: FetchLike;
}

/** An ApiError that a retried request got: the first try may have been applied. */
interface Retried {
  maybeApplied?: boolean;
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name] || undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Client {
  readonly server: string;
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  /** Coalesces job.report() and job.log() calls: see Reporter. */
  readonly reporter: Reporter;
  private readonly token: string | null;
  private readonly api: Api;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;

  constructor(opts: ClientOptions = {}) {
    const server = (opts.server ?? env("PROGRESSD_SERVER") ?? DEFAULT_SERVER).replace(/\/+$/, "");
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new TypeError(`progressd: server ${JSON.stringify(server)} must be a URL such as ${DEFAULT_SERVER}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`progressd: server ${JSON.stringify(server)} must be an http(s) URL such as ${DEFAULT_SERVER}`);
    }
    this.server = server;
    this.token = opts.token === undefined ? (env("PROGRESSD_TOKEN") ?? null) : opts.token || null;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retryWindowMs = opts.retryWindowMs ?? 30_000;
    if (!(this.timeoutMs > 0) || !(this.retryWindowMs >= 0)) throw new RangeError("progressd: timeoutMs must be > 0 and retryWindowMs ≥ 0");
    this.backoffBaseMs = opts.backoffBaseMs ?? 100;
    this.backoffMaxMs = opts.backoffMaxMs ?? 2_000;
    const fetchFn = opts.fetch ?? ((...a: Parameters<FetchLike>) => globalThis.fetch(...a));
    this.api = new Api(this.server, () => this.token, fetchFn);
    this.reporter = new Reporter(this, { minIntervalMs: opts.minIntervalMs });
  }

  /**
   * One API call with the retry rules above; resolves to the decoded JSON.
   * An error after a retry of a request that may have landed carries
   * maybeApplied.
   */
  async request<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const started = Date.now();
    let maybeSent = false;
    for (let attempt = 0; ; attempt++) {
      let err: ApiError;
      try {
        return await this.api.request<T>(method, path, body, AbortSignal.timeout(this.timeoutMs), headers);
      } catch (e) {
        if (e instanceof ApiError) err = e;
        else if ((e as Error)?.name === "TimeoutError" || (e as Error)?.name === "AbortError") err = new ApiError(0, "network", `no answer within ${this.timeoutMs} ms`);
        else throw e;
      }
      if (err.status === 0) maybeSent = true;
      const retry = err.status === 0 || RETRY_STATUSES.has(err.status);
      const delay = retry ? this.backoff(attempt, started) : null;
      if (delay === null) {
        if (err.status === 0) {
          throw new ConnectionFailedError(
            `${method} ${path}: could not reach progressd at ${this.server} within the ${this.retryWindowMs / 1000} s retry window (${err.message}); is it running, and is the server URL right?`,
          );
        }
        const typed = err.status === 409 && err.code === "job_finished" ? new JobFinishedError(err.status, err.code, err.message) : err;
        (typed as Retried).maybeApplied = maybeSent;
        throw typed;
      }
      await sleep(delay);
    }
  }

  /** The pause before retry attempt (from 0), or null when the retry window would be over. */
  private backoff(attempt: number, started: number): number | null {
    const left = started + this.retryWindowMs - Date.now();
    if (left <= 0) return null;
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.min(attempt, 30));
    return Math.min(left, cap / 2 + (Math.random() * cap) / 2); // jitter, never a busy loop
  }

  /** Creates a job and returns its handle (report, log, succeed, fail…). */
  async createJob(fields: CreateJob, opts: { idempotencyKey?: string } = {}): Promise<Job> {
    const snap = await this.request<JobSnapshot>("POST", "/api/v1/jobs", fields, {
      "Idempotency-Key": opts.idempotencyKey ?? crypto.randomUUID(),
    });
    return new Job(this, snap);
  }

  /** A handle on an existing job (a worker given a job id). */
  async attach(jobId: string): Promise<Job> {
    return new Job(this, await this.get(jobId));
  }

  /**
   * Creates a job, runs fn with it, then reports succeeded (with fn's
   * result when it is an object), or failed with the error fn threw, and
   * delivers everything pending. A job canceled meanwhile ends quietly
   * with JobCanceledError rethrown.
   */
  async run<T>(fields: CreateJob, fn: (job: Job) => Promise<T> | T): Promise<T> {
    const job = await this.createJob(fields);
    let out: T;
    try {
      out = await fn(job);
    } catch (err) {
      if (!(err instanceof JobFinishedError) && !job.finished) await job.fail(err).catch(() => undefined);
      else await this.reporter.flush(job.id).catch(() => undefined);
      throw err;
    }
    await job.succeed(out !== null && typeof out === "object" && !Array.isArray(out) ? (out as Record<string, unknown>) : undefined);
    return out;
  }

  get(jobId: string): Promise<JobSnapshot> {
    return this.request("GET", jobPath(jobId));
  }

  /** One report now, returning the snapshot it produced (job.report() coalesces instead). */
  async report(jobId: string, report: ProgressReport): Promise<JobSnapshot> {
    try {
      return await this.request<JobSnapshot>("POST", jobPath(jobId, "/progress"), report);
    } catch (err) {
      if (err instanceof JobFinishedError) return this.afterFinished(jobId, err, report.state);
      throw err;
    }
  }

  /**
   * Up to 1,000 reports in one request (POST /api/v1/reports); each is
   * applied as if posted alone. Resolves to one result per report, in
   * order: {seq} or {error}.
   */
  async reportMany(reports: (ProgressReport & { job_id: string })[]): Promise<({ seq: number } | { error: { code: string; message: string } })[]> {
    if (reports.length < 1 || reports.length > 1000) throw new RangeError(`progressd: a batch holds 1 to 1,000 reports, got ${reports.length}`);
    const r = await this.request<{ results?: ({ seq: number } | { error: { code: string; message: string } })[] }>("POST", "/api/v1/reports", { reports });
    return r.results ?? [];
  }

  /** Appends log lines now (at most 1,000); resolves to the n of the job's newest line. */
  async log(jobId: string, lines: string[]): Promise<number> {
    try {
      const r = await this.request<{ last?: number }>("POST", jobPath(jobId, "/logs"), { lines });
      return r.last ?? 0;
    } catch (err) {
      if (err instanceof JobFinishedError) return this.afterFinished(jobId, err, undefined).then(() => 0);
      throw err;
    }
  }

  async cancel(jobId: string): Promise<JobSnapshot> {
    try {
      return await this.request<JobSnapshot>("POST", jobPath(jobId, "/cancel"), {});
    } catch (err) {
      if (err instanceof JobFinishedError) return this.afterFinished(jobId, err, "canceled");
      throw err;
    }
  }

  /** One page of the jobs the caller may see, newest first. */
  list(q: ListQuery = {}): Promise<JobList> {
    return this.request("GET", jobsPath(q));
  }

  /** The job's kept log lines after line after (all kept ones without it). */
  logs(jobId: string, q: LogsQuery = {}): Promise<LogPage> {
    jobPath(jobId); // the same check as every other call
    return this.request("GET", logsPath(jobId, q));
  }

  /**
   * A live client for this server and token: client.live().logs(id) and
   * .watchJob(id) as in a browser (see liveClient). Dispose it when done.
   */
  live(opts: Omit<ProgressClientOptions, "server" | "token"> = {}): ProgressClient {
    return liveClient({ ...opts, server: this.server, token: this.token });
  }

  /**
   * The job's snapshots as they change, over a live connection of its own
   * (see live()), ending after the terminal one: each newer than every one
   * before (a slow loop gets the newest, not a backlog). Throws the
   * server's refusal (not_found, forbidden, unauthorized).
   *
   *     for await (const snap of client.watch(id)) console.log(snap.progress);
   */
  async *watch(jobId: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<JobSnapshot, void, undefined> {
    jobPath(jobId);
    const live = this.live();
    let newest: JobSnapshot | undefined;
    let seen = -1;
    let failure: ApiError | undefined;
    let wake: (() => void) | undefined;
    const poke = () => wake?.();
    const offJob = live.store.subscribeJob(jobId, () => {
      newest = live.getJob(jobId);
      poke();
    });
    const offErr = live.onChannelError((e) => {
      if (e.channel !== "job:" + jobId) return;
      failure = new ApiError(e.error.code === "not_found" ? 404 : 403, e.error.code, e.error.message);
      poke();
    });
    const offStatus = live.onStatus(() => {
      const st = live.getStatus();
      if (st.state === "closed" && st.reason === "unauthorized") failure = new ApiError(401, "unauthorized", "the server refused the token");
      poke();
    });
    opts.signal?.addEventListener("abort", poke);
    const unwatch = live.watchJob(jobId);
    try {
      for (;;) {
        if (opts.signal?.aborted) return;
        if (newest && newest.seq > seen) {
          const snap = newest;
          seen = snap.seq;
          yield snap;
          if (isTerminal(snap.state)) return;
          continue;
        }
        if (failure) throw failure;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      opts.signal?.removeEventListener("abort", poke);
      unwatch();
      offJob();
      offErr();
      offStatus();
      await live.dispose();
    }
  }

  /** Delivers everything the reporter holds, then stops it. */
  close(): Promise<void> {
    return this.reporter.close();
  }

  /**
   * A 409 job_finished: reads the job back. If a retried request asking
   * for wanted finds the job in that state, its first try landed: the
   * call succeeded. Otherwise it throws, as JobCanceledError when the job
   * was canceled.
   */
  async afterFinished(jobId: string, err: JobFinishedError, wanted: string | undefined): Promise<JobSnapshot> {
    let snap: JobSnapshot | undefined;
    try {
      snap = await this.get(jobId);
    } catch {
      snap = undefined;
    }
    if (snap && wanted && (err as Retried).maybeApplied && snap.state === wanted) return snap;
    if (snap?.state === "canceled") throw new JobCanceledError(`job ${jobId} was canceled (${snap.error || "canceled"}); stop working on it`);
    if (snap) err.state = snap.state;
    throw err;
  }
}

export function jobPath(jobId: string, suffix = ""): string {
  if (!jobId || typeof jobId !== "string") throw new TypeError("progressd: a job id is required (a non-empty string)");
  return "/api/v1/jobs/" + encodeURIComponent(jobId) + suffix;
}

/**
 * A handle on one job. report() and log() go through the client's
 * coalescing reporter, so calling them from a tight loop is cheap; they
 * never wait on the network. client.report(job.id, …) sends one report now.
 */
export class Job {
  readonly id: string;

  constructor(
    readonly client: Client,
    /** As created (or last read with refresh()). */
    public snapshot: JobSnapshot,
  ) {
    this.id = snapshot.job_id;
  }

  /** Queues a report; throws JobCanceledError once the job was canceled, or an earlier report's refusal. */
  report(report: ProgressReport): void {
    this.client.reporter.report(this.id, report);
  }

  /** Queues log lines (sent in batches, in order, never coalesced). */
  log(...lines: string[]): void {
    this.client.reporter.log(this.id, lines);
  }

  /** True once a report learned that the job was canceled. */
  get canceled(): boolean {
    return this.client.reporter.canceled(this.id);
  }

  /** True once the job is known to be terminal (finished here or elsewhere). */
  get finished(): boolean {
    return this.client.reporter.finished(this.id);
  }

  /** Aborted (reason: a JobCanceledError) once a report learns the job was canceled: pass it to fetch and friends. */
  get signal(): AbortSignal {
    return this.client.reporter.signal(this.id);
  }

  /** Sends what is pending for the job now and waits for it. */
  flush(): Promise<void> {
    return this.client.reporter.flush(this.id);
  }

  /** Reports succeeded (with an optional result object) and delivers it. */
  async succeed(result?: Record<string, unknown>): Promise<void> {
    this.report(result ? { state: "succeeded", result } : { state: "succeeded" });
    await this.flush();
  }

  /** Reports failed with the error's text and delivers it. */
  async fail(error: unknown): Promise<void> {
    const text = error instanceof Error ? (error.message ? `${error.name}: ${error.message}` : error.name) : String(error);
    this.report({ state: "failed", error: text.slice(0, 1000) });
    await this.flush();
  }

  cancel(): Promise<JobSnapshot> {
    return this.client.cancel(this.id);
  }

  /** Reads the job's snapshot now. */
  async refresh(): Promise<JobSnapshot> {
    this.snapshot = await this.client.get(this.id);
    return this.snapshot;
  }

  /** Creates a child job (its parent's project; weight, stages…). */
  child(fields: Omit<CreateJob, "parent_id" | "project"> = {}): Promise<Job> {
    return this.client.createJob({ ...fields, parent_id: this.id });
  }
}
