import type { CloseName } from "./protocol.gen.js";

// The wire shapes of SPEC.md ("Job snapshot", "WebSocket protocol").

export type JobState = "queued" | "running" | "succeeded" | "failed" | "canceled";

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(["succeeded", "failed", "canceled"]);

export function isTerminal(state: JobState | string | undefined): boolean {
  return state !== undefined && TERMINAL_STATES.has(state as JobState);
}

export interface StageSnapshot {
  name: string;
  weight: number;
  state: JobState;
  progress: number;
  /** This stage's fraction is the mean of the job's children's progress. */
  children?: boolean;
}

/** A parent's direct children, counted by state. */
export interface ChildrenCounts {
  total: number;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  canceled: number;
}

/** One job's whole state; every delivery carries all of it. */
export interface JobSnapshot {
  job_id: string;
  project: string;
  owner: string;
  pipeline?: string | null;
  state: JobState;
  progress: number;
  stage?: string | null;
  stages?: StageSnapshot[] | null;
  current?: number | null;
  total?: number | null;
  message?: string | null;
  eta_seconds?: number | null;
  /** Strictly increasing per job: keep the highest, ignore older ones. */
  seq: number;
  created_at: string;
  started_at?: string | null;
  updated_at?: string | null;
  finished_at?: string | null;
  error?: string | null;
  /** The job's title, when it has one. */
  name?: string;
  tags?: string[];
  /** A pipeline job's params, as created. */
  params?: Record<string, string>;
  /** Set on a child: its parent, and the top of its tree. */
  parent_id?: string;
  root_id?: string;
  /** A child's share of its parent's progress. */
  weight?: number;
  /** How many children a parent announced. */
  expected_children?: number;
  /** A parent's direct children by state. */
  children?: ChildrenCounts;
  /** The job's metadata: reports merge into it key by key. */
  metadata?: Record<string, unknown>;
  /** What a succeeded job reported as its result. */
  result?: Record<string, unknown>;
  /** The trace id of the latest create or report that carried a traceparent. */
  trace_id?: string;
  /** A pipeline job's attempt (from 1) and how many it may have. */
  attempt?: number;
  max_attempts?: number;
  /** While waiting for the next attempt: when it starts (error holds why the last one failed). */
  retry_at?: string | null;
  /** No report for the job's stall_after_seconds: true until the next report. */
  stalled?: boolean;
  /** The job's limits, as created, in seconds. */
  stall_after_seconds?: number;
  abandon_after_seconds?: number;
  /** When the job last reported, when that is not updated_at. */
  reported_at?: string;
}

/** One log line of a job (SPEC "Log lines"): n counts the job's lines from 1, with no gaps. */
export interface LogLine {
  n: number;
  /** When the line was kept (RFC 3339). */
  t: string;
  stream: "stdout" | "stderr" | "log";
  /** The pipeline stage that printed it. */
  stage?: string;
  text: string;
}

/** One entry of GET /api/v1/projects. */
export interface ProjectSummary {
  project: string;
  jobs: { queued: number; running: number; succeeded: number; failed: number; canceled: number };
  last_activity_at: string;
}

export interface ProtocolError {
  code: string;
  message: string;
}

/** Frames the client sends on /ws. */
export type ClientFrame =
  | { op: "auth"; id: number; token: string; client_id?: string }
  | { op: "subscribe"; id: number; channel: string; after?: number }
  | { op: "unsubscribe"; id: number; channel: string }
  | { op: "ping"; id: number };

/** Frames the server sends on /ws. */
export type ServerFrame =
  | { type: "reply"; id: number | null; error?: ProtocolError }
  | { type: "update"; channel: string; job: JobSnapshot }
  /** Lines of a logs:<id> channel; truncated: lines before these were dropped unseen. */
  | { type: "log"; channel: string; lines: LogLine[]; truncated?: boolean }
  /** The server ended a subscription: a refreshed token no longer allows it. */
  | { type: "error"; channel: string; error: ProtocolError };

/**
 * connecting: the first attempt is under way. open: subscribed and live.
 * reconnecting: the connection dropped; the next attempt is scheduled
 * (retryAt) or under way. closed: not connected and not trying, see reason.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export type TransportKind = "websocket" | "sse";

/**
 * Why a connection is closed or reconnecting: the name of the server's
 * close code (CLOSE_CODES: "unauthorized" for 4001 or an unauthorized
 * reply, waiting for a new token; "going_away", "too_slow",
 * "too_many_connections", …), or one of the client's own.
 */
export type ConnectionReason =
  | CloseName
  | "idle" // nothing subscribed
  | "network" // the connection failed or dropped
  | "offline" // the browser says it is offline
  | "disposed"; // the client was shut down

export interface ConnectionStatus {
  state: ConnectionState;
  /** The transport in use or being tried; null while closed. */
  transport: TransportKind | null;
  reason?: ConnectionReason;
  /** The last close code seen (WebSocket), for diagnostics. */
  closeCode?: number;
  /** Failed attempts since the last healthy connection. */
  attempt: number;
  /** When the next attempt starts (epoch ms), while reconnecting. */
  retryAt?: number;
  /** solo: this tab owns its connection; leader: it also serves other tabs; follower: another tab's connection serves it. */
  role: "solo" | "leader" | "follower";
}

/** A subscription the server refused (forbidden, not_found, limit_exceeded, …). */
export interface ChannelError {
  channel: string;
  error: ProtocolError;
}

export type Listener = () => void;
