// Code generated from internal/protocol by `go test ./internal/protocol -update`. DO NOT EDIT.

/** The close codes the server sends: what each means, whether to reconnect, and the least wait before it. */
export const CLOSE_CODES = {
  1001: { name: "going_away", reconnect: true, minDelayMs: 0, meaning: "the server is shutting down or restarting" },
  1002: { name: "protocol_error", reconnect: true, minDelayMs: 0, meaning: "the client broke the WebSocket framing rules" },
  1007: { name: "invalid_payload", reconnect: true, minDelayMs: 0, meaning: "a text frame was not UTF-8" },
  1009: { name: "frame_too_large", reconnect: true, minDelayMs: 0, meaning: "a frame was larger than the server's limit (--max-frame-bytes)" },
  4001: { name: "unauthorized", reconnect: false, minDelayMs: 0, meaning: "no, bad or expired token: reconnecting needs a fresh one" },
  4008: { name: "too_slow", reconnect: true, minDelayMs: 0, meaning: "the client could not keep up even after coalescing" },
  4029: { name: "too_many_connections", reconnect: true, minDelayMs: 5000, meaning: "too many connections for this user (--max-conns-per-user)" },
} as const;

export type CloseName = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES]["name"];

/** The error codes of replies: what each means, and whether the same request may succeed later. */
export const ERROR_CODES = {
  bad_request: { retry: false, meaning: "malformed frame, unknown op or bad channel name; the connection stays" },
  unauthorized: { retry: false, meaning: "no valid token; send an auth frame with a fresh one" },
  forbidden: { retry: false, meaning: "the channel or job is another user's, or outside the token's scope" },
  not_found: { retry: false, meaning: "no such job" },
  limit_exceeded: { retry: false, meaning: "too many subscriptions on this connection (--max-subscriptions)" },
  conflict: { retry: false, meaning: "a report to a job that has finished (or, for succeeded, whose children have not)" },
  internal: { retry: true, meaning: "the server failed; the server log has the details" },
  unavailable: { retry: true, meaning: "the server is shutting down, or a store it needs did not answer a report; nothing was changed" },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The channel kinds a client may subscribe to ("kind:key"). */
export const CHANNEL_KINDS = {
  job: { key: "id", meaning: "one job, if the subscriber may see it" },
  project: { key: "name", meaning: "the jobs of a project that the subscriber may see" },
  user: { key: "id", meaning: "the jobs of one owner: the subscriber's own, any for an admin" },
  children: { key: "id", meaning: "the direct children of a job, with the visibility of job: of that job" },
  tag: { key: "tag", meaning: "the jobs with a tag that the subscriber may see" },
  logs: { key: "id", meaning: "a job's log lines (kept ones after \"after\", then live), with the visibility of job: of that job" },
} as const;

export type ChannelKind = keyof typeof CHANNEL_KINDS;
