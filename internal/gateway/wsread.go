package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/progressd/progressd/internal/protocol"
)

// The reader's side of the WebSocket protocol (RFC 6455): frame headers
// are parsed and checked by gobwas/ws; messages, control frames, limits
// and the close handshake are handled here. Client frames are rare
// (subscribe, auth, ping), so the reader reads the socket directly,
// without a buffer that every idle connection would hold — until the
// connection sends a report frame: a worker streaming reports gets a
// buffer (readBuffer), so a burst of frames costs a read per buffer, not
// several per frame, and the reader can tell when the burst ends.

// readBuffer is the read buffer of a connection that reports.
const readBuffer = 16 << 10

// readChunk is how much of a data frame is read at a time: the declared
// length is the peer's word, so the message buffer grows as bytes arrive.
const readChunk = 4096

// prefixReader reads the bytes the HTTP server had read past the upgrade
// request first, then the socket.
type prefixReader struct {
	pre  []byte
	conn net.Conn
	raw  syscall.RawConn // conn's, nil if it has none (then more looks at the buffer only)
	buf  *bufio.Reader   // nil until the connection sends a report frame

	noWait bool // set while more fills the buffer
}

func (r *prefixReader) Read(p []byte) (int, error) {
	if r.buf != nil {
		return r.buf.Read(p)
	}
	return r.readRaw(p)
}

// buffer gives r a read buffer, from now on.
func (r *prefixReader) buffer() {
	if r.buf == nil {
		r.buf = bufio.NewReaderSize(rawReader{r}, readBuffer)
	}
}

// more reports whether bytes wait to be read: in the buffer, or else in
// the socket, from which it then fills the buffer without waiting (one
// read system call that returns at once). A burst of report frames ends
// when more says no: frames that arrived while the burst was being read
// join it instead of starting the next one, so a worker streaming
// reports gets them applied in as few transactions, publishes and reply
// writes as the frames it has in flight allow.
func (r *prefixReader) more() bool {
	if r.buffered() > 0 {
		return true
	}
	if r.buf == nil || r.raw == nil {
		return false
	}
	r.noWait = true
	_, err := r.buf.Peek(1) // fills from the socket; err is then cleared
	r.noWait = false
	return err == nil
}

// readNoWait is one read of the socket that does not wait for bytes:
// errWouldWait if none are there. An error of the socket (or its end) is
// not kept: the reader's next read, which waits, meets it again.
func (r *prefixReader) readNoWait(p []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := r.raw.Read(func(fd uintptr) bool {
		for {
			n, errno = sysRead(fd, p)
			if errno != syscall.EINTR {
				return true // done, whatever it read: never wait for bytes
			}
		}
	})
	if err != nil || errno != 0 || n <= 0 {
		return 0, errWouldWait
	}
	return n, nil
}

// buffered is how many bytes were read from the socket and wait here.
func (r *prefixReader) buffered() int {
	n := len(r.pre)
	if r.buf != nil {
		n += r.buf.Buffered()
	}
	return n
}

// rawReader reads r without its buffer.
type rawReader struct{ r *prefixReader }

func (r rawReader) Read(p []byte) (int, error) { return r.r.readRaw(p) }

// errWouldWait ends a read that was not to wait (prefixReader.more).
var errWouldWait = errors.New("gateway: nothing waits to be read")

func (r *prefixReader) readRaw(p []byte) (int, error) {
	if r.noWait {
		return r.readNoWait(p)
	}
	if len(r.pre) == 0 {
		if r.raw != nil {
			return rawRead(r.raw, p)
		}
		return r.conn.Read(p)
	}
	n := copy(p, r.pre)
	r.pre = r.pre[n:]
	if len(r.pre) == 0 {
		r.pre = nil
	}
	return n, nil
}

// read is the reader goroutine's loop: it serves every client message
// until the connection ends. graceful reports that it ended by the close
// handshake (the peer's close frame arrived, or this side must send one
// after a protocol error): the socket is then closed only after the
// writer has sent the close frame. Otherwise err is why reading failed.
//
// A message over MaxFrameBytes starts a close with 1009; the rest of it,
// and every data frame after it, is read off and dropped while the reader
// waits for the peer's close frame, so the peer sees the code instead of
// a reset connection.
func (c *wsConn) read() (graceful bool, err error) {
	defer c.flushReports() // what was read is applied, however reading ends
	var (
		msg        []byte    // the message being read
		op         ws.OpCode // its opcode
		fragmented bool      // a message has begun but not ended
		ctl        [ws.MaxControlFramePayloadSize]byte
	)
	limit := c.g.cfg.MaxFrameBytes
	for {
		h, err := ws.ReadHeaderBuffer(&c.rd, c.hdr[:])
		if err != nil {
			return false, err
		}
		state := ws.StateServerSide
		if fragmented {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			c.closeWith(protocol.CloseProtocolError, err.Error())
			return true, err
		}
		if h.OpCode.IsControl() {
			p := ctl[:h.Length] // CheckHeader bounds it to 125
			if _, err := io.ReadFull(&c.rd, p); err != nil {
				return false, err
			}
			ws.Cipher(p, h.Mask, 0)
			if closed, err := c.control(h.OpCode, p); closed {
				return true, err
			}
			continue
		}
		fragmented = !h.Fin
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		if !c.closing.Load() && h.Length > limit-int64(len(msg)) {
			c.closeWith(protocol.CloseTooLarge, "frame too large")
		}
		if c.closing.Load() {
			// The close handshake reads until the peer's close frame.
			msg = nil
			if _, err := io.CopyN(io.Discard, &c.rd, h.Length); err != nil {
				return false, err
			}
			continue
		}
		if msg, err = c.readPayload(msg, h); err != nil {
			return false, err
		}
		if !h.Fin {
			continue
		}
		if op == ws.OpText && !utf8.Valid(msg) {
			c.closeWith(protocol.CloseInvalidPayload, "text frames must be UTF-8")
			msg = nil
			continue
		}
		c.handleAside(op, msg)
		msg = nil
		if len(c.reports) > 0 && (len(c.reports) >= maxReportBurst || !c.rd.more()) {
			c.flushReports() // the burst has ended: nothing more waits to be read
		}
	}
}

// handleAside serves a message on a goroutine of its own and waits for
// it, so the reader's stack stays the size reading needs: an idle
// connection parks in read, and a stack grown by a subscribe or an auth
// (JSON, the token, the job store) would stay with it — half its memory
// (issue 17: 13 KiB per idle connection, 6 of them stack). A connection
// that reports (it has a read buffer) is served in place: its frames come
// fast, and it is not the idle kind.
func (c *wsConn) handleAside(op ws.OpCode, msg []byte) {
	if c.rd.buf != nil {
		c.handle(op, msg)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handle(op, msg)
	}()
	<-done
}

// readPayload appends the unmasked payload of the frame h heads to msg.
func (c *wsConn) readPayload(msg []byte, h ws.Header) ([]byte, error) {
	start := len(msg)
	for left := h.Length; left > 0; {
		n := int(min(left, readChunk))
		msg = slices.Grow(msg, n)
		k, err := io.ReadFull(&c.rd, msg[len(msg):len(msg)+n])
		msg = msg[:len(msg)+k]
		if err != nil {
			return msg, err
		}
		left -= int64(k)
	}
	ws.Cipher(msg[start:], h.Mask, 0)
	return msg, nil
}

// control handles a control frame with payload p. closed reports a close
// frame: the writer owes the peer the answer, if this side has not sent
// its own close frame already, and reading is over. err is set for a
// malformed close frame, which is answered with 1002.
func (c *wsConn) control(op ws.OpCode, p []byte) (closed bool, err error) {
	switch op {
	case ws.OpPing:
		c.onPing(p)
	case ws.OpPong:
		c.onPong(p)
	case ws.OpClose:
		if len(p) == 0 {
			c.closeWith(0, "") // a close without a code is answered without one
			return true, nil
		}
		code, reason := ws.ParseCloseFrameData(p)
		if err := ws.CheckCloseFrameData(code, reason); err != nil || len(p) == 1 {
			if err == nil {
				err = ws.ProtocolError("close frame payload of one byte")
			}
			c.closeWith(protocol.CloseProtocolError, err.Error())
			return true, err
		}
		c.closeWith(code, "") // echo the peer's code (RFC 6455 5.5.1)
		return true, nil
	}
	return false, nil
}
