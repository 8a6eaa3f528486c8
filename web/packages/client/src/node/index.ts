// @progressd/client/node: what a Node (≥ 20) backend or worker needs on
// top of the browser client: a server-to-server client with retries, a
// coalescing reporter, and token minting with the server's secret.
export { Client, Job, DEFAULT_SERVER, type ClientOptions } from "./client.js";
export { ConnectionFailedError, JobCanceledError, JobFinishedError } from "./errors.js";
export { Reporter, Coalescer, MAX_PENDING_LINES } from "./reporter.js";
export { mintToken, type MintTokenOptions } from "./token.js";
export { liveClient, nodeWebSocket } from "./live.js";
