// progressd browser client: framework-free, no runtime dependencies.
export { ProgressClient, type ProgressClientOptions } from "./client";
export { Connection, CloseCode, type ConnectionOptions, type ConnectionEvents } from "./connection";
export { CLOSE_CODES, ERROR_CODES, CHANNEL_KINDS, type CloseName, type ErrorCode, type ChannelKind } from "./protocol.gen";
export { JobStore, channelMatcher, compareNewestFirst } from "./store";
export { FrameBatcher, frameBatcher, type RequestFrame } from "./frame";
export { Api, ApiError, type CreateJob, type JobList, type ListQuery, type PipelineInfo, type ProgressReport, type ProjectList } from "./api";
export { fullJitter, backoffCeiling, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
export { decodeToken, tokenUser, identityKey, type TokenClaims } from "./jwt";
export { getProgressClient, retainProgressClient } from "./registry";
export { resolveServer, realTimers, type Timers, type WebSocketCtor, type EventSourceCtor } from "./env";
export type { LockManagerLike, BroadcastChannelCtor } from "./crosstab";
export * from "./types";
