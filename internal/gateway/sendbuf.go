package gateway

import (
	"context"
	"net"
	"net/http"
)

// What a connection has written but its peer has not read is bounded by
// the socket's send buffer (SPEC.md part two, "Slow readers"). Left to
// itself, Linux sizes a TCP send buffer from the congestion window: about
// 1.3 MB from the first packet on loopback, up to net.ipv4.tcp_wmem's 4 MB.
// A reader slower than the updates then has every report the kernel could
// hold queued ahead of the newest one — the gateway's queue, which
// replaces an unsent snapshot with a newer one, never saw them pile up —
// and reads seconds of stale snapshots (issue 10: 400 over 16.9 s). With
// the buffer set to Config.SendBuffer the writer blocks as soon as the
// peer lags by that much, and what comes meanwhile coalesces in the queue.
//
// The size is a trade. In flight beyond the peer's own receive buffer is
// about twice the setting (the kernel's allotment): ~16 KB at the default
// 8 KiB, measured as 22, 40, 72 and 113 small (450-byte) snapshots ahead
// of the terminal one at 4, 8, 16 and 32 KiB
// (TestWSSlowReaderGetsTheNewestNotStaleOnes), against 1,915 of 2,000
// with the kernel's default. 8 KiB keeps that well under a second of a
// job reporting 100 times a second (SPEC.md asks for that). The price: a
// connection carries at most about the buffer per round trip, ~160 KB/s
// at 100 ms — dozens of jobs each updating every frame of a 60 Hz display
// — and a subscriber's first burst (up to 1,050 snapshots of a project,
// ~500 KB) takes a few seconds over such a link instead of one. On
// loopback and LANs round trips are short enough that it costs nothing
// (docs/benchmarks.md, fan-out before and after). Not chosen:
// TCP_NOTSENT_LOWAT, which bounds only the unsent bytes and keeps
// autotuning: it is not in package net, and a write it holds back leaves
// no room for the close frame either (writeWithRoom).

// A batch more than burstFactor times the buffer — a logs: subscriber's
// scrollback (1,000 lines, ~100 KB), a project subscriber's first
// snapshots — is written with the buffer raised to its size (at most
// maxBurstBuffer), then bounded again. Through 8 KiB the scrollback took
// ~50 ms on loopback, most of it waiting for the reader's delayed ACKs
// between buffer-fulls, against ~10 ms raised (BenchmarkLogScrollback);
// the issue asks under 20 ms. What the burst puts ahead of later updates
// is what the subscriber asked for at once (log lines are never
// coalesced), and the writer blocks again once it is sent.
const (
	burstFactor    = 4
	maxBurstBuffer = 1 << 20
)

// boundSendBuffer sets conn's send buffer to size bytes; false if conn is
// not a TCP socket (or the kernel refused), which keeps its default.
func boundSendBuffer(conn net.Conn, size int) bool {
	tc, ok := conn.(*net.TCPConn)
	return ok && size > 0 && tc.SetWriteBuffer(size) == nil
}

// connKey is the context key ConnContext stores a connection under.
type connKey struct{}

// ConnContext is meant for http.Server.ConnContext: it keeps each
// connection in its requests' context, so that an SSE stream, which is
// not hijacked, can bound its socket's send buffer as a WebSocket does.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// boundStreamBuffer bounds the send buffer of the connection an SSE
// request came on, if the server was given ConnContext. The response then
// says Connection: close: the small buffer stays with the socket, which
// must not go back to serving other requests with it.
func (g *Gateway) boundStreamBuffer(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && boundSendBuffer(c, g.cfg.SendBuffer) {
		w.Header().Set("Connection", "close")
	}
}
