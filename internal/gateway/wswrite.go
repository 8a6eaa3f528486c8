package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The writer's side of the WebSocket protocol: frames are encoded here,
// straight into one buffer per batch, and written with one write call per
// batch (bigger batches: per flushAt bytes). The gateway never fragments
// and never masks (RFC 6455 5.1: a server does not).
//
// Measured with `progressd bench --scenario fanout --clients 1000 --rate
// 100` (docs in the package comment): coder/websocket, which writes and
// flushes one message at a time under two mutexes and a context timer per
// write, cost about 1.9 s of server CPU per 100k deliveries; this writer
// leaves little besides the write syscall itself.

// flushAt is how many bytes the writer gathers before it writes: a bigger
// batch goes out in several writes, and a close decided meanwhile goes out
// after the current one instead of after the whole batch.
const flushAt = 32 << 10

// maxPooledBuf is the largest write buffer put back in the pool; one grown
// further by a large frame is left to the garbage collector.
const maxPooledBuf = 64 << 10

// writeBuf is what a running writer works with, borrowed from writeBufs
// for as long as it runs: an idle connection holds no buffer.
type writeBuf struct {
	out  []byte     // frames to write
	msgs []*message // the batch taken from the queue
}

var writeBufs = sync.Pool{New: func() any { return &writeBuf{out: make([]byte, 0, 4096)} }}

func (wb *writeBuf) release() {
	clear(wb.msgs)
	wb.msgs = wb.msgs[:0]
	if cap(wb.msgs) > 64 {
		wb.msgs = nil
	}
	wb.out = wb.out[:0]
	if cap(wb.out) > maxPooledBuf {
		wb.out = nil
	}
	writeBufs.Put(wb)
}

// write is the writer goroutine, the only one that writes to the socket.
// Each round it takes, under the subscriber's lock, everything owed to the
// peer — the pong, the keepalive ping, every queued frame; or, once a
// close is under way, only the close frame — then writes it all with one
// deadline of WriteTimeout. It returns once nothing is owed, so an idle
// connection keeps no writer parked. A client that does not read for
// WriteTimeout is dropped.
func (c *wsConn) write() {
	defer c.wg.Done()
	wb := writeBufs.Get().(*writeBuf)
	defer wb.release()
	for {
		if c.carry != nil {
			if cut, err := c.writeCarry(); err != nil {
				c.writeFailed(err, cut, false)
				return
			}
		}
		if !c.closing.Load() && c.g.tooSoon(c.lastWrite) {
			// Too soon after the last write, and nothing urgent: park
			// on the gateway's flush clock and return (no timer, no
			// goroutine waits), unless nothing is owed at all.
			c.sub.mu.Lock()
			if !c.sub.urgent && !c.closing.Load() {
				c.writing = false
				if !c.sub.q.idle() || c.pongDue || c.pingDue {
					c.parked = true
					c.g.spacer.park(c.lastWrite.Add(c.g.cfg.MinWriteInterval), c.unpark)
				}
				c.sub.mu.Unlock()
				return
			}
			c.sub.mu.Unlock()
		}
		sendClose := false
		wb.out = wb.out[:0]
		c.sub.mu.Lock()
		if c.closing.Load() {
			// Nothing but the close frame, and nothing after it.
			if !c.closeSent {
				c.closeSent, sendClose = true, true
				wb.out = appendClose(wb.out, c.closeCode, c.closeReason)
			}
		} else {
			if c.pongDue {
				wb.out = appendFrame(wb.out, ws.OpPong, c.pong)
				c.pongDue, c.pong = false, nil
			}
			if c.pingDue {
				wb.out = appendHeader(wb.out, ws.OpPing, 8)
				wb.out = binary.BigEndian.AppendUint64(wb.out, c.pingSeq)
				c.pingDue = false
			}
			wb.msgs = c.sub.takeLocked(wb.msgs)
		}
		if len(wb.out) == 0 && len(wb.msgs) == 0 {
			c.writing = false
			c.sub.mu.Unlock()
			return
		}
		c.sub.mu.Unlock()
		// Spacing runs from the start of a write: stamped before the
		// bytes can reach the peer, so whoever sees them sees the stamp.
		c.lastWrite = c.g.cfg.clock.Now()
		wb.msgs = c.g.expandLogs(c.sub, wb.msgs)
		burst := c.growForBurst(wb.msgs)
		n, cut, err := c.writeBatch(wb)
		if burst {
			boundSendBuffer(c.conn, c.sendBuffer)
		}
		if n > 0 {
			c.g.m.sentWS.Add(float64(n))
		}
		clear(wb.msgs)
		wb.msgs = wb.msgs[:0]
		if err != nil {
			// A close frame of which nothing was written is still owed.
			c.writeFailed(err, cut, sendClose && len(cut) == 0)
			return
		}
		if sendClose {
			// The handshake ends with the peer's close frame, which the
			// reader waits for; a peer that never sends one is dropped.
			_ = c.conn.SetReadDeadline(time.Now().Add(closeTimeout))
		}
	}
}

// writeBatch writes wb.out followed by the frames of wb.msgs, and returns
// how many of those frames it wrote. The batch shares one deadline. When
// a write fails part way through a frame, cut is the rest of that frame:
// the close frame can only follow it.
func (c *wsConn) writeBatch(wb *writeBuf) (sent int, cut []byte, err error) {
	if err := c.armWriteDeadline(); err != nil {
		return 0, nil, err
	}
	b, pending := wb.out, 0
	defer func() { wb.out = b[:0] }() // keep a grown buffer for the next round
	for _, m := range wb.msgs {
		if len(b) > 0 && len(b)+len(m.frame) > flushAt {
			if n, err := c.sockWrite(b); err != nil {
				return sent, restOfFrame(b, n), err
			}
			sent, pending, b = sent+pending, 0, b[:0]
			if c.closing.Load() {
				return sent, nil, nil // the close frame goes next
			}
		}
		b = appendFrame(b, ws.OpText, m.frame)
		pending++
	}
	if n, err := c.sockWrite(b); err != nil {
		return sent, restOfFrame(b, n), err
	}
	return sent + pending, nil, nil
}

// unpark runs on the flush clock when a parked connection's spacing is
// over, and writes what was queued meanwhile itself (flushParked) rather
// than starting a writer goroutine for it: a goroutine started, scheduled
// and ended per spaced write was most of what a spaced write cost above
// the write system call (keepcurrent's default run, 1,000 viewers
// flushed ~12 times a second each). A writer goroutine still takes over
// whatever needs one: a ping or pong owed, a logs: mark to expand, a
// batch too large for the flush clock to write, a socket without room.
func (c *wsConn) unpark() {
	c.sub.mu.Lock()
	if !c.parked {
		c.sub.mu.Unlock()
		return // an urgent update or a close started the writer already
	}
	c.parked = false
	if c.writing || c.done || c.closing.Load() {
		c.sub.mu.Unlock()
		return
	}
	// The flush clock is the writer until flushHereLocked returns.
	c.writing = true
	c.wg.Add(1)
	c.flushHereLocked()
}

// writeHere writes, on the caller's goroutine, the batch that
// wakeLocked(true) left to it — a reporting worker's replies, written by
// the connection's reader (subscriber.repliesHere) — the way the flush
// clock writes a parked connection's (flushParked): one write that does
// not wait for room. It spares the goroutine a writer would start, be
// scheduled on another thread and end, per burst of reports: at a report
// every 10 ms that was ~20% of the server's CPU (keepcurrent --clients 1,
// docs/benchmarks.md). What needs a writer goroutine after all — a
// close, a ping or pong owed, a logs: mark, a batch over flushAt — is
// handed to one.
func (c *wsConn) writeHere() {
	c.sub.mu.Lock()
	c.flushHereLocked()
}

// flushHereLocked writes the queue on the calling goroutine (flushParked)
// for a caller that holds sub.mu and is the connection's writer (writing
// set, counted in wg), and releases both. What the flush clock or a
// reader must not write — a close, a ping or pong owed, a logs: mark, a
// batch over flushAt, a socket without raw access — is handed to a
// writer goroutine instead.
func (c *wsConn) flushHereLocked() {
	if c.done || c.closing.Load() || c.raw == nil || c.pingDue || c.pongDue || !c.sub.q.plain(flushAt) {
		c.writing = false
		if !c.done {
			c.startWriterLocked()
		}
		c.sub.mu.Unlock()
		c.wg.Done() // the caller's count: a writer started holds its own
		return
	}
	wb := writeBufs.Get().(*writeBuf)
	wb.msgs = c.sub.takeLocked(wb.msgs)
	c.sub.mu.Unlock()
	c.flushParked(wb)
}

// flushParked writes wb.msgs with one write that does not wait for room
// in the socket, on the flush clock's goroutine, which must not block.
// What the socket did not take at once is left to a writer goroutine,
// as the carry it writes first; a write that failed is too, and the
// writer meets the error again and ends the connection as it always
// does.
func (c *wsConn) flushParked(wb *writeBuf) {
	defer c.wg.Done()
	defer wb.release()
	c.lastWrite = c.g.cfg.clock.Now()
	b := wb.out[:0]
	for _, m := range wb.msgs {
		b = appendFrame(b, ws.OpText, m.frame)
	}
	wb.out = b
	n := c.writeNow(b)
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	c.writing = false
	if n < len(b) && !c.done {
		c.carry, c.carryOff, c.carryFrames = bytes.Clone(b), n, len(wb.msgs)
		c.startWriterLocked()
		return
	}
	if n == len(b) {
		c.g.m.sentWS.Add(float64(len(wb.msgs)))
	}
	switch {
	case c.done:
	case c.closing.Load() || c.sub.urgent || !c.sub.q.idle() && !c.g.tooSoon(c.lastWrite):
		c.startWriterLocked() // none of these waits out the spacing
	case !c.sub.q.idle():
		c.parked = true
		c.g.spacer.park(c.lastWrite.Add(c.g.cfg.MinWriteInterval), c.unpark)
	}
}

// writeNow writes b to the socket without waiting for room, and returns
// how many bytes the kernel took: all of them when the socket's send
// buffer has room, as a viewer that reads what it is sent leaves it; 0
// when it has none, or on an error.
func (c *wsConn) writeNow(b []byte) int {
	var n int
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			var e syscall.Errno
			n, e = sysWrite(fd, b)
			if e != syscall.EINTR {
				return true // done, whatever it took: never wait for room
			}
		}
	})
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// writeCarry writes what flushParked left of its batch, before anything
// else the writer sends. On error, cut is the rest of the frame it
// stopped in (see writeBatch).
func (c *wsConn) writeCarry() (cut []byte, err error) {
	b, off, frames := c.carry, c.carryOff, c.carryFrames
	c.carry, c.carryOff, c.carryFrames = nil, 0, 0
	if err := c.armWriteDeadline(); err != nil {
		return restOfFrame(b, off), err
	}
	n, err := c.sockWrite(b[off:])
	if err != nil {
		return restOfFrame(b, off+n), err
	}
	c.g.m.sentWS.Add(float64(frames))
	return nil, nil
}

// restOfFrame returns a copy of what is left unwritten of the frame in b
// that byte n falls in (nil when n ends a frame). b holds whole frames
// that appendHeader encoded.
func restOfFrame(b []byte, n int) []byte {
	end := 0
	for end < n && end < len(b) {
		end += frameLen(b[end:])
	}
	if end <= n || end > len(b) {
		return nil
	}
	return bytes.Clone(b[n:end])
}

// frameLen returns the length of the frame b starts with, header included
// (an unmasked frame of appendHeader's).
func frameLen(b []byte) int {
	switch n := int(b[1] & 0x7f); n {
	case 126:
		return 4 + int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		return 10 + int(binary.BigEndian.Uint64(b[2:]))
	default:
		return 2 + n
	}
}

// armWriteDeadline gives the next write at least 7/8 of WriteTimeout and
// at most all of it. Setting a deadline per batch cost 5% of the server's
// CPU in `progressd bench --scenario fanout` (a runtime timer update each
// time), so the deadline is only moved when less than that is left; a
// connection written to continually moves it every WriteTimeout/8.
func (c *wsConn) armWriteDeadline() error {
	now := time.Now()
	timeout := c.g.cfg.WriteTimeout
	if c.writeDeadline.Sub(now) >= timeout-timeout/8 {
		return nil
	}
	c.writeDeadline = now.Add(timeout)
	return c.conn.SetWriteDeadline(c.writeDeadline)
}

// writeFailed ends a connection whose write failed: nothing more is
// written by a writer (writing stays set, so none starts again).
//
// A write that timed out means the peer took nothing for WriteTimeout:
// it is closed with 4008 (or the close already decided), and the close
// frame is given room in the socket, so the peer reads it, after
// everything written before it, if it ever reads again (SPEC.md part two,
// "Slow readers": "the close frame is kept room for"). cut, the rest of
// the frame the write stopped in, goes first, so the close frame starts
// on a frame boundary; closeUnsent says the failed write was the close
// frame and wrote none of it. The reader then waits closeTimeout for the
// peer's answer, as after any close frame. Any other failure, or a peer
// that cannot take even the close frame, closes the socket at once, which
// ends the reader.
func (c *wsConn) writeFailed(err error, cut []byte, closeUnsent bool) {
	c.g.log.Debug("websocket write failed", "err", err)
	c.sub.mu.Lock()
	if !c.closing.Load() {
		c.closing.Store(true)
		c.closeCode, c.closeReason = StatusTooSlow, "too slow: read nothing for the write timeout"
	}
	owed := !c.closeSent || closeUnsent
	c.closeSent = true
	code, reason := c.closeCode, c.closeReason
	c.sub.mu.Unlock()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		_ = c.conn.Close()
		return
	}
	c.g.m.slowCloses.WithLabelValues(transportWS, "write_timeout").Inc()
	last := cut
	if owed {
		last = appendClose(last, code, reason)
	}
	if len(last) > 0 && !c.writeWithRoom(last) {
		_ = c.conn.Close()
		return
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(closeTimeout))
}

// writeWithRoom writes b, the last bytes the connection will send, to a
// socket whose send buffer is full: it grows the buffer by what b needs
// first, so the kernel takes b at once. It reports whether b was taken.
func (c *wsConn) writeWithRoom(b []byte) bool {
	if c.sendBuffer > 0 {
		tc, ok := c.conn.(*net.TCPConn)
		// The kernel counts its own overhead in the buffer too: twice
		// the bytes, and a page besides, is ample.
		if !ok || tc.SetWriteBuffer(c.sendBuffer+2*len(b)+4096) != nil {
			return false
		}
	}
	if c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout)) != nil {
		return false
	}
	_, err := c.conn.Write(b)
	return err == nil
}

// closeWriteTimeout bounds the write of the close frame after a write
// timed out: with room made for it the kernel takes it at once.
const closeWriteTimeout = time.Second

// appendHeader appends the header of an unmasked, final frame of op with
// an n-byte payload.
func appendHeader(b []byte, op ws.OpCode, n int) []byte {
	first := 0x80 | byte(op) // FIN
	switch {
	case n <= 125:
		return append(b, first, byte(n))
	case n <= math.MaxUint16:
		return append(b, first, 126, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(n))
}

// appendFrame appends an unmasked, final frame of op with payload p.
func appendFrame(b []byte, op ws.OpCode, p []byte) []byte {
	return append(appendHeader(b, op, len(p)), p...)
}

// appendClose appends a close frame with code and reason; code 0 makes
// one without a code (the answer to a close frame without one).
func appendClose(b []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return appendHeader(b, ws.OpClose, 0)
	}
	b = appendHeader(b, ws.OpClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// growForBurst raises the socket's send buffer for one batch much larger
// than it — a logs: subscriber's scrollback (1,000 kept lines, ~100 KB),
// a project subscriber's first snapshots — and reports whether it did;
// the writer bounds it again once the batch is written. See sendbuf.go.
func (c *wsConn) growForBurst(msgs []*message) bool {
	if c.sendBuffer == 0 {
		return false
	}
	total := 0
	for _, m := range msgs {
		total += len(m.frame)
	}
	return total > burstFactor*c.sendBuffer && boundSendBuffer(c.conn, min(total, maxBurstBuffer))
}

// sockWrite writes b to the connection (see sockio.go).
func (c *wsConn) sockWrite(b []byte) (int, error) {
	if c.raw != nil {
		return rawWrite(c.raw, b)
	}
	return c.conn.Write(b)
}
