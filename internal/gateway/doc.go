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
// Subscribing has no gap (mercure#178): the subscriber is registered in the
// hub first, with the channel held; then the current snapshots are read
// and queued; then the reply is queued and the channel released, so the
// reply precedes every update of its channel and nothing published after
// registration is missed. Duplicates are harmless: seq drops them.
//
// # Goroutines
//
// An idle WebSocket connection holds one goroutine, its reader: ServeWS
// returns right after the upgrade (coder/websocket hijacks the HTTP
// connection), which measured 17 KiB per idle connection against 24–30 KiB
// with the handler or a parked writer kept (STACK.md). The writer goroutine
// is started when the queue stops being idle and returns when it has
// written everything; keepalive pings, deadline timers and the close
// handshake run on short-lived goroutines. The reader owns all of them: when
// it stops it removes the connection from the hub, closes the socket, and
// waits for every one of them before it returns. Whoever decides to close a
// connection (a publisher finding its queue full, Shutdown, a timer) only
// starts the close handshake on its own goroutine, and never waits for the
// client. An SSE stream runs on its handler's goroutine, which is also its
// writer. Shutdown waits for every reader and every SSE handler.
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
