// The HTTP API of SPEC.md, for what a page needs: list, get, create,
// cancel, report. Errors are ApiError with the server's code.

import type { FetchLike } from "./env.js";
import type { JobSnapshot, JobState, LogLine, ProjectSummary } from "./types.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface JobList {
  jobs: JobSnapshot[];
  next_cursor?: string | null;
}

export interface CreateJob {
  /** Required, except for a child, which takes its parent's. */
  project?: string;
  pipeline?: string;
  params?: Record<string, string>;
  stages?: { name: string; weight?: number; children?: boolean }[];
  name?: string;
  tags?: string[];
  parent_id?: string;
  weight?: number;
  expected_children?: number;
  /** Admin tokens only: create the job for this user. */
  owner?: string;
  metadata?: Record<string, unknown>;
  /** Mark the job stalled after this long without a report. */
  stall_after_seconds?: number;
  /** Fail the job after this long without a report (default: the server's --abandon-after). */
  abandon_after_seconds?: number;
}

/** One entry of GET /api/v1/pipelines: what a form needs to start it. */
export interface PipelineInfo {
  name: string;
  description?: string;
  /** Every param the pipeline takes; each is required. */
  params: string[];
  stages: { name: string; weight: number }[];
}

export interface ProjectList {
  projects: ProjectSummary[];
  next_cursor?: string | null;
}

export interface ProgressReport {
  progress?: number;
  stage?: string;
  current?: number;
  total?: number;
  message?: string;
  state?: JobState;
  error?: string;
  /** Merged into the job's metadata key by key (null removes a key). */
  metadata?: Record<string, unknown>;
  /** Only with state "succeeded". */
  result?: Record<string, unknown>;
  /** Log lines kept before the report applies. */
  log?: string[];
}

/** GET /api/v1/jobs/{id}/logs: lines after the asked-for one, oldest first. */
export interface LogPage {
  lines: LogLine[];
  /** The oldest line still kept (0: none). */
  first: number;
  /** The job's newest line (0: none). */
  last: number;
  /** Lines after the asked-for one were already dropped: these start at first. */
  truncated?: boolean;
}

export interface ListQuery {
  project?: string;
  state?: JobState;
  /** Only the direct children of this job. */
  parent?: string;
  tag?: string;
  /** Only this owner's jobs (an admin's list; anyone else sees its own only). */
  owner?: string;
  limit?: number;
  cursor?: string;
}

/** A log read: lines after line after (default: from the first kept), at most limit. */
export interface LogsQuery {
  after?: number;
  limit?: number;
}

/** GET /api/v1/jobs with a list query. */
export function jobsPath(q: ListQuery): string {
  const p = new URLSearchParams();
  if (q.project !== undefined) p.set("project", q.project);
  if (q.state) p.set("state", q.state);
  if (q.parent) p.set("parent", q.parent);
  if (q.tag) p.set("tag", q.tag);
  if (q.owner) p.set("owner", q.owner);
  if (q.limit) p.set("limit", String(q.limit));
  if (q.cursor) p.set("cursor", q.cursor);
  const qs = p.toString();
  return "/api/v1/jobs" + (qs ? "?" + qs : "");
}

/** GET /api/v1/jobs/{id}/logs with a log read. */
export function logsPath(id: string, q: LogsQuery): string {
  const p = new URLSearchParams();
  if (q.after !== undefined) p.set("after", String(q.after));
  if (q.limit !== undefined) p.set("limit", String(q.limit));
  const qs = p.toString();
  return "/api/v1/jobs/" + encodeURIComponent(id) + "/logs" + (qs ? "?" + qs : "");
}

export class Api {
  constructor(
    private readonly server: string,
    private readonly token: () => string | null,
    private readonly fetchFn: FetchLike = (...a) => globalThis.fetch(...a),
  ) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, extraHeaders?: Record<string, string>): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json", ...extraHeaders };
    const token = this.token();
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(this.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if ((err as Error)?.name === "AbortError") throw err;
      throw new ApiError(0, "network", "the server cannot be reached");
    }
    const text = await res.text();
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    if (!res.ok) {
      const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(res.status, e?.code ?? "http_" + res.status, e?.message ?? (text.trim() || res.statusText));
    }
    return data as T;
  }

  listJobs(q: ListQuery = {}, signal?: AbortSignal): Promise<JobList> {
    return this.request<JobList>("GET", jobsPath(q), undefined, signal);
  }

  /** The caller's projects (an admin: all), most recent activity first. */
  listProjects(q: { limit?: number; cursor?: string } = {}, signal?: AbortSignal): Promise<ProjectList> {
    const p = new URLSearchParams();
    if (q.limit) p.set("limit", String(q.limit));
    if (q.cursor) p.set("cursor", q.cursor);
    const qs = p.toString();
    return this.request<ProjectList>("GET", "/api/v1/projects" + (qs ? "?" + qs : ""), undefined, signal);
  }

  /** The pipelines the server runs, sorted by name; empty when it runs none. */
  async listPipelines(signal?: AbortSignal): Promise<PipelineInfo[]> {
    const r = await this.request<{ pipelines?: PipelineInfo[] }>("GET", "/api/v1/pipelines", undefined, signal);
    return r.pipelines ?? [];
  }

  getJob(id: string, signal?: AbortSignal): Promise<JobSnapshot> {
    return this.request("GET", "/api/v1/jobs/" + encodeURIComponent(id), undefined, signal);
  }

  createJob(body: CreateJob): Promise<JobSnapshot> {
    return this.request("POST", "/api/v1/jobs", body);
  }

  cancelJob(id: string): Promise<JobSnapshot> {
    return this.request("POST", "/api/v1/jobs/" + encodeURIComponent(id) + "/cancel", {});
  }

  /** The job's kept log lines after line after (default: from the first kept), at most limit. */
  getLogs(id: string, q: LogsQuery = {}, signal?: AbortSignal): Promise<LogPage> {
    return this.request("GET", logsPath(id, q), undefined, signal);
  }

  /** Appends log lines to a job (at most 1,000 per call); returns the n of the last one. */
  appendLogs(id: string, lines: string[]): Promise<{ last: number }> {
    return this.request("POST", "/api/v1/jobs/" + encodeURIComponent(id) + "/logs", { lines });
  }

  report(id: string, report: ProgressReport): Promise<JobSnapshot> {
    return this.request("POST", "/api/v1/jobs/" + encodeURIComponent(id) + "/progress", report);
  }
}
