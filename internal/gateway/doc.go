// Package gateway fans job snapshots out to browsers: the WebSocket
// endpoint of SPEC.md ("WebSocket protocol") and its Server-Sent Events
// twins, on one hub with one set of rules.
//
// # Data flow
//
// The hub subscribes to the broker. For each update it computes the three
// channels that cover the job (job:ID, project:P, user:OWNER), encodes the
// update frame once per channel that has subscribers, and hands the same
// bytes to each subscriber's queue. project: channels only pass jobs the
// subscriber's principal may see; job: and user: were authorized when
// subscribed. A connection in several channels that cover one job gets the
// update once per channel, each frame naming its channel, because clients
// route updates by channel.
//
// Each connection's queue is keyed by (channel, job): a newer snapshot
// replaces an unsent older one, an update at or below the seq last queued
// or sent for its key is dropped, and terminal snapshots (the last seq of
// a job) are therefore never dropped. Only a client over the bound even
// after coalescing — MaxQueuedFrames unsent frames (10,000 distinct jobs by
// default) or MaxQueuedBytes — is closed with 4008.
//
// Coalescing only helps if frames wait in the queue rather than in the
// kernel, so each socket's send buffer is set small (Config.SendBuffer,
// sendbuf.go): the writer blocks as soon as the peer lags by that much. A
// peer that takes nothing for WriteTimeout is closed with 4008 too: the
// writer finishes the frame it was cut off in and writes the close frame
// into a send buffer grown to hold it (writeFailed), so the peer reads
// why if it reads again.
//
// Subscribing has no gap (mercure#178): the subscriber is registered in the
// hub first, with the channel held; then the current snapshots are read
// and queued; then the reply is queued and the channel released, so the
// reply precedes every update of its channel and nothing published after
// registration is missed. Duplicates are harmless: seq drops them.
//
// # Goroutines
//
// An idle WebSocket connection holds one goroutine, its reader, and no
// buffer: ServeWS returns right after the upgrade (the HTTP connection is
// hijacked), and the gateway speaks RFC 6455 on the socket itself, with
// gobwas/ws for the handshake and frame headers (wsread.go, wswrite.go).
// That measured 11–12 KiB per idle connection in `progressd bench
// --scenario idle --clients 19000`, against 24–25 KiB with coder/websocket,
// which keeps the HTTP server's read and write buffers for the
// connection's life, and 24–30 KiB with the handler or a parked writer
// kept (STACK.md).
//
// The writer goroutine is the only one that writes to the socket. It is
// started when there is something to write and returns when it has
// written everything; it writes all it has taken — queued frames, the
// answer to the peer's ping, the keepalive ping, or the close frame — in
// one write call (per 32 KiB), because per-connection write syscalls
// dominate the cost of a broadcast. A writer that lingered for the next update instead of
// returning cost more CPU per delivery, not less (a timer per linger), and
// held a stack per busy connection. Keepalive and close-code timers run on
// their timers' short-lived goroutines and only record what the writer
// owes and wake it. The reader owns all of them: when it stops it removes
// the connection from the hub, closes the socket (after the close frame
// the writer owes, if the close handshake ended the connection), and
// waits for every one of them before it returns. Whoever decides to close a connection (a
// publisher finding its queue full, Shutdown, a timer, the reader after a
// protocol error) only records the close code and wakes the writer, and
// never waits for the client. An SSE stream runs on its handler's
// goroutine, which is also its writer. Shutdown waits for every reader and
// every SSE handler.
//
// # Locks
//
// In the order they may be taken:
//
//  1. subscriber.chMu — a subscriber's channel set; held while the hub
//     index changes for it, so both directions change together.
//  2. hubShard.mu — one shard of the channel → subscribers index; publish
//     holds it for reading while it delivers.
//  3. subscriber.mu — the queue and the connection's state (writing, done,
//     timers). Code holding it never blocks: it may start a goroutine.
//
// Gateway.mu (connections, per-user counts) is a leaf: nothing else is
// taken while it is held. No lock is held during a network write or a
// job store read.
package gateway
