// progressd browser client: framework-free, no runtime dependencies.
export { ProgressClient, type ProgressClientOptions, type LogsWatch } from "./client.js";
export { LogStore, DEFAULT_LOG_LIMIT, type JobLogs } from "./logs.js";
export { Connection, CloseCode, type ConnectionOptions, type ConnectionEvents } from "./connection.js";
export { CLOSE_CODES, ERROR_CODES, CHANNEL_KINDS, type CloseName, type ErrorCode, type ChannelKind } from "./protocol.gen.js";
export { JobStore, channelMatcher, compareNewestFirst } from "./store.js";
export { FrameBatcher, frameBatcher, type RequestFrame } from "./frame.js";
export { Api, ApiError, type CreateJob, type JobList, type ListQuery, type LogPage, type LogsQuery, type PipelineInfo, type ProgressReport, type ProjectList } from "./api.js";
export { fullJitter, backoffCeiling, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { decodeToken, tokenUser, identityKey, type TokenClaims } from "./jwt.js";
export { getProgressClient, retainProgressClient } from "./registry.js";
export { resolveServer, realTimers, type Timers, type WebSocketCtor, type EventSourceCtor } from "./env.js";
export type { LockManagerLike, BroadcastChannelCtor } from "./crosstab.js";
export * from "./types.js";
