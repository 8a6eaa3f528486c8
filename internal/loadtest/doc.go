// Package loadtest drives a progressd server the way many browsers and
// workers would, and measures what it delivers: the engine of
// `progressd bench` (GitHub issue #3).
//
// A run is one Scenario against one server on a loopback address (Config
// refuses anything else: a load test must never be pointed at someone
// else's machine by mistake). Run connects Config.Clients WebSocket clients
// (SPEC.md, "WebSocket protocol"), subscribes each to a job, publishes
// progress reports over the HTTP API on a fixed schedule, and accounts for
// every report on every client:
//
//   - delivered: the client received that snapshot;
//   - coalesced: it never received it but received a newer snapshot of the
//     job (the server replaced an unsent older snapshot, which SPEC.md
//     allows);
//   - lost: it received neither it nor anything newer — only possible when
//     the client also missed the final snapshot.
//
// Each report carries its send time in its message ("t=<unix nanos>"), so a
// client computes end-to-end latency (HTTP report → WebSocket update) from
// the snapshot alone. Latencies go into a fixed-size log-bucket Histogram,
// so memory does not grow with the number of samples. The "update or
// newer" latency counts coalesced reports too, each until the newer
// snapshot that replaced it arrived; it needs each client's deliveries
// (seq and arrival time, 16 bytes each, at most maxLoggedDeliveries in a
// run) and the send time of each report, and is computed at the end.
//
// When Config.ServerPID is set (StartServer gives it for a server started
// as a child process) Run also reads the server's CPU time and resident
// memory from /proc; elsewhere those figures are absent.
//
// # Concurrency
//
// Run owns every goroutine it starts — one reader per client, the dial
// workers, the publishers and a memory sampler — and waits for all of them
// before it returns, also on error or when ctx is canceled. A reader is the
// only writer of its client's counters; the coordinator reads the few it
// needs while the run is live (highest seq, when it rose) through atomics
// and the rest only after the reader has returned. Latency shards are
// updated with atomics and merged at the end. Nothing in this package is
// meant to be shared between concurrent Runs except Histogram, whose
// methods are all safe for concurrent use.
package loadtest
