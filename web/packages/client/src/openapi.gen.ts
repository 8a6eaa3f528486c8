// Code generated from /openapi.json by `go test ./internal/api -run TypeScript -update`. DO NOT EDIT.
// The wire types as the server describes them; web/test/openapi-types.ts holds the client's types equal to them.

export interface Snapshot {
  /** The job's own abandon limit, as created (else the server's --abandon-after). */
  abandon_after_seconds?: number;
  /** A pipeline job's attempt, from 1. */
  attempt?: number;
  children?: Children;
  created_at: string;
  current: number | null;
  error: string | null;
  eta_seconds: number | null;
  expected_children?: number;
  finished_at: string | null;
  job_id: string;
  /** How many attempts a pipeline job may take (its pipeline's max_attempts). */
  max_attempts?: number;
  message: string;
  metadata?: unknown;
  name?: string;
  owner: string;
  params?: Record<string, string>;
  parent_id?: string;
  pipeline: string;
  progress: number;
  project: string;
  /** When the job last reported, when that is not updated_at (a parent changed by its children, a job abandoned). */
  reported_at?: string;
  result?: unknown;
  /** Set while a pipeline job waits for its next attempt; error then holds the failure that caused the retry. */
  retry_at?: string;
  root_id?: string;
  seq: number;
  stage: string;
  stages: Stage[] | null;
  /** The job's stall limit, as created. */
  stall_after_seconds?: number;
  /** A running job that has had no report of its own for stall_after_seconds; cleared by its next report. */
  stalled?: boolean;
  started_at: string | null;
  state: string;
  tags?: string[] | null;
  total: number | null;
  trace_id?: string;
  updated_at: string;
  weight?: number;
}

export interface Stage {
  children?: boolean;
  name: string;
  progress: number;
  state: string;
  weight: number;
}

export interface Children {
  canceled: number;
  failed: number;
  queued: number;
  running: number;
  succeeded: number;
  total: number;
}

export interface LogLine {
  n: number;
  stage?: string;
  stream: string;
  t: string;
  text: string;
}

export interface LogPage {
  first: number;
  last: number;
  lines: LogLine[] | null;
  truncated?: boolean;
}

export interface ProjectSummary {
  jobs: JobCounts;
  last_activity_at: string;
  project: string;
}

export interface JobCounts {
  canceled: number;
  failed: number;
  queued: number;
  running: number;
  succeeded: number;
}

export interface PipelineInfo {
  /** What the pipeline does, from its file. */
  description?: string;
  name: string;
  /** Every param the pipeline takes; each is required. */
  params: string[] | null;
  stages: PipelineStageInfo[] | null;
}

export interface PipelineStageInfo {
  name: string;
  /** Share of the job's progress. */
  weight: number;
}

export interface ErrorDetail {
  /** Stable error code, e.g. bad_request, unauthorized, forbidden, not_found, invalid_progress, unknown_stage, job_finished. */
  code: string;
  /** What went wrong and what to do about it. */
  message: string;
}

export interface BatchResult {
  /** Why this report was refused; nothing of it was applied. The code is the one a report posted alone gets (not_found, forbidden, invalid_progress, unknown_stage, job_finished, unavailable…). */
  error?: ErrorDetail;
  /** The seq of the snapshot this report produced. */
  seq?: number;
}

export interface Report {
  current?: number;
  error?: string;
  log?: string[] | null;
  message?: string;
  metadata?: unknown;
  progress?: number;
  result?: unknown;
  stage?: string;
  state?: string;
  total?: number;
}

export interface JobReport {
  current?: number;
  error?: string;
  /** The job the report is about. An empty or unknown id fails this report only. */
  job_id?: string;
  log?: string[] | null;
  message?: string;
  metadata?: unknown;
  progress?: number;
  result?: unknown;
  stage?: string;
  state?: string;
  total?: number;
}

export interface CreateInputBody {
  /** Seconds (> 0, at most a year; not for pipeline jobs): a job with no report for that long, counted from its creation, fails with "no report for …". Replaces the server's --abandon-after (default 24 h) for this job. Else 400 invalid_abandon_after. */
  abandon_after_seconds?: number;
  /** How many children are coming (a floor). Missing ones count as 0 in the parent's progress; a parent without stages finishes by itself once that many are finished. */
  expected_children?: number;
  /** A JSON object shown with the job; reports merge into it key by key (null removes a key). At most 16 KiB. */
  metadata?: unknown;
  /** A title shown instead of a generic label: at most 200 characters. Pipeline jobs default to the pipeline and its params. */
  name?: string;
  /** Create the job for this user: admin tokens only (a backend creating jobs for its users). */
  owner?: string;
  /** Values for the pipeline's declared params. */
  params?: Record<string, string>;
  /** Make the job a child of this one: a job the caller may see, not finished, at most 3 levels below its root. The child is in the parent's project. */
  parent_id?: string;
  /** A pipeline from the server's --pipelines file (or the built-in demo): the server runs the job. */
  pipeline?: string;
  /** The project the job belongs to: 1–128 bytes, no spaces. Required, except for a child, which takes its parent's. */
  project?: string;
  /** For a job an external worker reports on: its stages, in order, with weights (default 1); one may be marked "children": true to take the mean of the job's children. */
  stages?: StageSpec[] | null;
  /** Seconds (> 0, at most a year): a running job with no report of its own for that long gets "stalled": true (one update) until its next report. Else 400 invalid_stall_after. */
  stall_after_seconds?: number;
  /** At most 16 tags, each 1–64 characters of A–Z a–z 0–9 : _ . -; they cannot change later. */
  tags?: string[] | null;
  /** The child's share of its parent's progress (> 0, default 1); only with parent_id. */
  weight?: number;
}

export interface StageSpec {
  children?: boolean;
  name: string;
  weight?: number;
}
