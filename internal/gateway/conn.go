package gateway

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/protocol"
)

// Close codes of SPEC.md beyond RFC 6455's: rows of package protocol's
// table, which says what clients do on each.
const (
	StatusUnauthorized       = protocol.CloseUnauthorized
	StatusTooSlow            = protocol.CloseTooSlow
	StatusTooManyConnections = protocol.CloseTooManyConnections
)

// closeTimeout bounds how long a connection waits for the peer's close
// frame once it has sent its own.
const closeTimeout = 5 * time.Second

// wsConn is one WebSocket connection, spoken directly on the hijacked
// socket (framing in wsread.go and wswrite.go). Its reader goroutine (run)
// owns it: it handles every client frame, and when the connection ends it
// removes it from the hub and waits for every other goroutine the
// connection started. An idle connection has that one goroutine and
// nothing else — no buffer either: the writer borrows one from a pool
// while it writes. The others are short-lived and counted in wg:
//
//   - the writer, the only goroutine that writes to the socket, started
//     when there is something to write (wake) and returning when it has
//     written everything. It writes queued updates and replies, the
//     keepalive ping, the answer to the peer's ping, and the close frame;
//   - the timers' goroutines: the keepalive, which only asks the writer
//     for a ping and sets a read deadline that the pong clears, and the
//     timers that close the connection with 4001 (auth frame late, token
//     expired).
//
// Whoever decides to close the connection — a publisher finding the queue
// full, Shutdown, a timer, the reader — only records the code and wakes
// the writer, and never waits for the client.
//
// Fields below the subscriber are guarded by sub.mu unless noted.
type wsConn struct {
	g        *Gateway
	conn     net.Conn // the hijacked socket
	sub      *subscriber
	clientID string // from the URL; an auth frame may set it instead

	wg      sync.WaitGroup
	done    bool        // the reader is finishing: start nothing more
	writing bool        // a writer goroutine is running
	parked  bool        // waiting on the flush clock for the write spacing to end
	closing atomic.Bool // a close is under way: write no more data; set under sub.mu
	// The close frame to send: closeCode 0 sends one without a code.
	closeCode   ws.StatusCode
	closeReason string
	closeSent   bool // the writer has taken the close frame; it writes nothing after it

	pingDue      bool   // the writer owes the peer a keepalive ping
	awaitingPong bool   // a ping is out; its pong clears the read deadline
	pingSeq      uint64 // the payload of the latest ping
	pongDue      bool   // the writer owes the peer a pong
	pong         []byte // its payload: the peer's latest ping's

	ping *time.Timer
	// deadline closes the connection with 4001: when the auth frame is
	// late, or when the token expires.
	deadline *time.Timer

	// sendBuffer is the socket's send buffer as set on accept
	// (Config.SendBuffer); 0 if the socket is not TCP and was left alone.
	sendBuffer int

	// raw writes to the socket without waiting (flushParked), and reads
	// it so (prefixReader.more); nil when the socket is not a plain one
	// (then parked connections are flushed by a writer goroutine, and a
	// burst of report frames ends with the bytes already buffered).
	raw syscall.RawConn

	// Owned by the running writer (writers never overlap; the flush
	// clock's flushParked is one while it holds writing).
	writeDeadline time.Time // the socket's write deadline
	lastWrite     time.Time // when the last batch's write started (MinWriteInterval)
	// carry is a batch of whole frames flushParked could write only the
	// first carryOff bytes of at once: the writer it starts writes the
	// rest before anything else. carryFrames is how many frames it holds
	// (for the sent metric).
	carry       []byte
	carryOff    int
	carryFrames int

	// Owned by the reader goroutine.
	adm     admission
	rd      prefixReader
	hdr     [ws.MaxHeaderSize - 2]byte
	reports []queuedReport // report frames read, to apply (report.go)
}

func newWSConn(g *Gateway, conn net.Conn, pre []byte, clientID string) *wsConn {
	c := &wsConn{g: g, conn: conn, clientID: clientID, rd: prefixReader{pre: pre, conn: conn}}
	if boundSendBuffer(conn, g.cfg.SendBuffer) {
		c.sendBuffer = g.cfg.SendBuffer
	}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.rd.raw = raw
		}
	}
	c.sub = newSubscriber(transportWS, newQueue(g.cfg.MaxQueuedFrames, g.cfg.MaxQueuedBytes), g.m)
	c.sub.wake = c.wakeLocked
	c.sub.writeHere = c.writeHere
	c.sub.overflow = func() { c.closeLocked(StatusTooSlow, "too slow to keep up") }
	return c
}

// run is the reader goroutine. p is the principal of the token the
// upgrade request carried, authErr why that token was refused; both zero
// means no token was sent.
func (c *wsConn) run(p *auth.Principal, authErr error) {
	c.sub.mu.Lock()
	c.ping = time.AfterFunc(c.g.cfg.PingInterval, c.keepalive)
	c.sub.mu.Unlock()
	switch {
	case authErr != nil:
		c.refuse(StatusUnauthorized, closeReason(authErr), refusedUnauthorized)
	case p != nil:
		c.login(*p, c.clientID)
	default:
		c.sub.mu.Lock()
		c.deadline = time.AfterFunc(c.g.cfg.AuthTimeout, func() {
			if !c.enter() {
				return
			}
			defer c.wg.Done()
			if c.sub.principal.Load() != nil {
				return // the auth frame won the race with the timer
			}
			c.refuse(StatusUnauthorized, "no auth frame in time: send {\"op\":\"auth\",\"token\":…} first", refusedAuthTimeout)
		})
		c.sub.mu.Unlock()
	}
	graceful, err := c.read()
	if err != nil && !graceful {
		c.logReadError(err)
	}
	c.finish(graceful)
}

// logReadError says why the reader stopped, at debug level: a peer going
// away is normal.
func (c *wsConn) logReadError(err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	c.sub.mu.Lock()
	awaiting, closing := c.awaitingPong, c.closing.Load()
	c.sub.mu.Unlock()
	switch {
	case closing:
		c.g.log.Debug("websocket peer did not answer the close frame; dropping it")
	case awaiting:
		c.g.log.Debug("websocket peer did not answer a ping; dropping it")
	}
}

// finish ends the connection once the reader has stopped: nothing is
// delivered to it any more, every goroutine it started has returned, and
// its user's count is released. graceful means the close handshake is
// done but for the close frame the writer may still owe the peer: the
// socket is closed after the writer returns. Otherwise it is closed at
// once, which unblocks a writer.
func (c *wsConn) finish(graceful bool) {
	c.sub.mu.Lock()
	c.done = true
	c.ping.Stop()
	if c.deadline != nil {
		c.deadline.Stop()
	}
	c.sub.mu.Unlock()
	c.g.hub.close(c.sub)
	if !graceful {
		_ = c.conn.Close()
	}
	c.wg.Wait()
	_ = c.conn.Close()
	c.g.release(c.adm)
	c.g.untrack(c)
}

// refuse closes the connection with code, counting the reason.
func (c *wsConn) refuse(code ws.StatusCode, reason, metric string) {
	c.g.m.refused.WithLabelValues(metric).Inc()
	c.closeWith(code, reason)
}

// closeWith starts the close handshake with code; the first code wins.
// It never blocks on the client.
func (c *wsConn) closeWith(code ws.StatusCode, reason string) {
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	c.closeLocked(code, reason)
}

// closeLocked makes the writer send a close frame with code instead of
// anything still queued; then the reader waits up to closeTimeout for the
// peer's close frame, and the connection ends.
func (c *wsConn) closeLocked(code ws.StatusCode, reason string) {
	if c.done || c.closing.Load() {
		return
	}
	c.closing.Store(true)
	c.closeCode, c.closeReason = code, truncateUTF8(reason, ws.MaxControlFramePayloadSize-2)
	if !c.writing {
		c.startWriterLocked()
	}
}

// drop closes the socket at once, without a close handshake: every read
// and write on it fails, so the reader finishes and the goroutines it
// waits for return promptly. Safe from any goroutine.
func (c *wsConn) drop() {
	_ = c.conn.Close()
}

// enter counts a goroutine the connection started; false once the
// connection is finishing, and the goroutine must return at once.
func (c *wsConn) enter() bool {
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if c.done {
		return false
	}
	c.wg.Add(1)
	return true
}

// wakeLocked starts the writer when there is something to write and no
// writer runs. When here is true and the batch is one the caller can
// write without waiting (see writeHere), it makes the caller the writer
// instead and returns true.
func (c *wsConn) wakeLocked(here bool) bool {
	if c.writing || c.done || c.closing.Load() || c.parked && !c.sub.urgent {
		return false
	}
	if !c.sub.urgent && c.g.tooSoon(c.lastWrite) {
		// Park at once rather than start a writer only for it to park:
		// under the spacing, this is the first update after each flush.
		// No writer runs, so lastWrite is settled.
		c.parked = true
		c.g.spacer.park(c.lastWrite.Add(c.g.cfg.MinWriteInterval), c.unpark)
		return false
	}
	if here && c.raw != nil && !c.pingDue && !c.pongDue {
		c.writing, c.parked = true, false
		c.wg.Add(1)
		return true
	}
	c.startWriterLocked()
	return false
}

func (c *wsConn) startWriterLocked() {
	c.writing, c.parked = true, false
	c.wg.Add(1)
	go c.write()
}

// keepalive runs on the ping timer's goroutine: it asks the writer for a
// ping and gives the peer PongTimeout to answer it, as a read deadline
// that the pong clears (onPong). A peer that does not answer is dropped
// when the deadline ends the reader's read.
func (c *wsConn) keepalive() {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if c.done || c.closing.Load() {
		return
	}
	c.pingSeq++
	c.pingDue = true
	c.awaitingPong = true
	_ = c.conn.SetReadDeadline(time.Now().Add(c.g.cfg.PongTimeout))
	c.wakeLocked(false)
}

// onPong clears the pong deadline if p answers the latest ping, and arms
// the next ping. An unsolicited or stale pong is ignored.
func (c *wsConn) onPong(p []byte) {
	if len(p) != 8 {
		return
	}
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if !c.awaitingPong || c.done || c.closing.Load() || binary.BigEndian.Uint64(p) != c.pingSeq {
		return
	}
	c.awaitingPong = false
	_ = c.conn.SetReadDeadline(time.Time{})
	c.ping.Reset(c.g.cfg.PingInterval)
}

// onPing makes the writer answer the peer's ping with p.
func (c *wsConn) onPing(p []byte) {
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if c.done || c.closing.Load() {
		return
	}
	c.pong = append(c.pong[:0], p...)
	c.pongDue = true
	c.wakeLocked(false)
}

// login admits the connection for p, or closes it with 4029.
func (c *wsConn) login(p auth.Principal, clientID string) bool {
	adm, ok := c.g.admit(p, clientID)
	if !ok {
		c.refuse(StatusTooManyConnections, "too many connections for this user", refusedTooManyConns)
		return false
	}
	c.adm = adm
	c.setPrincipal(p)
	return true
}

// setPrincipal makes p the connection's principal and arms the timer that
// closes the connection with 4001 when p's token expires; a fresh auth
// frame before then re-arms it.
func (c *wsConn) setPrincipal(p auth.Principal) {
	c.sub.principal.Store(&p)
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if c.deadline != nil {
		c.deadline.Stop()
		c.deadline = nil
	}
	if c.done || p.Expires.IsZero() {
		return
	}
	c.deadline = time.AfterFunc(time.Until(p.Expires), func() {
		if !c.enter() {
			return
		}
		defer c.wg.Done()
		c.g.m.expired.Inc()
		c.closeWith(StatusUnauthorized, "token expired: reconnect with a fresh token, or send an auth frame before it expires")
	})
}

// closeReason turns an auth error into a close reason, which must fit in
// 123 bytes.
func closeReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrExpiredToken):
		return "token expired"
	case errors.Is(err, auth.ErrNoToken):
		return "a token is required"
	}
	return "invalid token"
}
