package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/protocol"
)

const (
	// readyID is the id of a client's first request (subscribe, or ping
	// for a client with no job); its reply means the server has the
	// connection fully set up.
	readyID = 1
	// attemptTimeout bounds one handshake plus its first reply.
	attemptTimeout = 10 * time.Second
	// maxServerFrame is the largest server frame a client accepts.
	maxServerFrame = 1 << 20
	// closeWorkers is how many connections are closed at once at the end.
	closeWorkers = 256
)

// client is one WebSocket connection of a run.
type client struct {
	id  int
	job *job // nil: subscribed to nothing (Idle without IdleSubscribe)

	// Set by the dial worker before the reader starts.
	conn  *websocket.Conn
	done  chan struct{} // closed when the reader returns
	ready chan error    // the reply to the first request, or why none came
	// connected is set by the dial worker and read after the connect
	// phase is over.
	connected bool

	// Read by the coordinator while the reader runs.
	maxSeq     atomic.Uint64
	advancedAt atomic.Int64 // unix nanos when maxSeq last rose
	exited     atomic.Bool
	closing    atomic.Bool // the run is closing it: its end is not a disconnect

	// Written by the reader only; read once done is closed.
	buf       []byte
	readySent bool
	received  uint64     // updates above the job's base, each newer than the last
	initial   uint64     // updates at or below the base: the job as it was
	stale     uint64     // updates at or below one already received
	odd       uint64     // frames that are neither its updates nor replies
	endErr    error      // why the reader stopped, unless the run closed it
	log       []delivery // deliveries, for the "update or newer" latency
	logFull   bool       // more deliveries came than run.logCap
	lastLine  int64      // Logs: the n of the newest line received
	truncated uint64     // Logs: frames that said lines were dropped before the follower got them

	lines atomic.Uint64 // Logs: lines received, each newer than the last; read by the coordinator
}

// reset prepares c for a connection attempt; the previous reader, if any,
// has returned.
func (c *client) reset(conn *websocket.Conn) {
	c.conn = conn
	c.done = make(chan struct{})
	c.ready = make(chan error, 1)
	c.maxSeq.Store(0)
	c.advancedAt.Store(0)
	c.exited.Store(false)
	c.closing.Store(false)
	if c.buf == nil {
		c.buf = make([]byte, 0, 1024)
	}
	c.readySent = false
	c.received, c.initial, c.stale, c.odd = 0, 0, 0, 0
	c.log, c.logFull = c.log[:0], false
	c.lastLine, c.truncated = 0, 0
	c.lines.Store(0)
	c.endErr = nil
}

// readLoop is the reader goroutine of c: it reads every frame until the
// connection ends, and answers WebSocket pings while it does (the
// library answers them from inside Reader).
func (r *run) readLoop(c *client) {
	defer r.readers.Done()
	defer close(c.done)
	defer c.exited.Store(true)
	for {
		// No context: coder/websocket arms a context.AfterFunc per read for
		// a cancelable one (11% of the tool's CPU at 10k clients); closeAll
		// ends every connection instead, also when the run is canceled.
		typ, rd, err := c.conn.Reader(context.Background())
		if err == nil {
			c.buf, err = readInto(rd, c.buf[:0], maxServerFrame)
		}
		if err != nil {
			c.stopped(err)
			return
		}
		now := time.Now().UnixNano()
		if typ != websocket.MessageText {
			c.odd++
			continue
		}
		if bytes.HasPrefix(c.buf, logPrefix) {
			if c.job != nil && r.cfg.Scenario == Logs {
				r.onLog(c, c.buf, now)
			} else {
				c.odd++
			}
			continue
		}
		f, err := parseFrame(c.buf)
		if err != nil {
			c.odd++
			r.errs.add("frame", err)
			continue
		}
		switch f.kind {
		case frameUpdate:
			r.onUpdate(c, f, now)
		case frameReply:
			c.onReply(f)
		default:
			c.odd++
		}
	}
}

func (r *run) onUpdate(c *client, f frame, now int64) {
	switch {
	case c.job == nil:
		c.odd++
	case f.seq <= c.job.base:
		c.initial++
	case f.seq <= c.maxSeq.Load():
		c.stale++
	default:
		c.received++
		c.maxSeq.Store(f.seq)
		c.advancedAt.Store(now)
		if len(c.log) < r.logCap {
			c.log = append(c.log, delivery{seq: f.seq, at: now})
		} else {
			c.logFull = true
		}
		if f.sentAt > 0 {
			r.latency.record(c.id, time.Duration(now-f.sentAt))
		}
	}
}

func (c *client) onReply(f frame) {
	if f.id != readyID || c.readySent {
		return
	}
	c.readySent = true
	if f.errCode != "" {
		c.ready <- replyError(f.errCode, f.errMsg)
		return
	}
	c.ready <- nil
}

// stopped records why the reader ended.
func (c *client) stopped(err error) {
	if !c.readySent {
		c.readySent = true
		c.ready <- closedError(err)
	}
	if !c.closing.Load() {
		c.endErr = err
	}
}

// abandon closes a connection that failed to set up and waits for its
// reader.
func (c *client) abandon() {
	c.closing.Store(true)
	_ = c.conn.CloseNow()
	<-c.done
}

// permanentError is a refusal that retrying cannot change (a 404 on /ws,
// a forbidden subscribe, a token refused with 4001): it ends the
// connect phase and the run.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// replyError describes an error reply to the first request.
func replyError(code, msg string) error {
	err := fmt.Errorf("the server refused the subscription: %s: %s", code, msg)
	switch code {
	case protocol.CodeInternal:
		return err
	case protocol.CodeUnauthorized:
		return permanent(fmt.Errorf("%w (the server has --auth-secret: pass --token)", err))
	case protocol.CodeLimitExceeded:
		return permanent(fmt.Errorf("%w (raise the server's --max-subscriptions or --max-conns-per-user)", err))
	}
	return permanent(err)
}

// closedError describes a connection that ended before its first reply,
// as package protocol's table says: permanent for a code after which
// reconnecting cannot help (4001), else to retry no sooner than the code's
// least delay (5 s after 4029).
func closedError(err error) error {
	row, ok := protocol.CloseOf(int(websocket.CloseStatus(err)))
	switch {
	case !ok:
		return fmt.Errorf("the connection ended before the server replied: %w", err)
	case !row.Reconnect:
		return permanent(fmt.Errorf("the server closed the connection: %s (%d); pass a valid --token: %w", row.Meaning, row.Code, err))
	}
	err = fmt.Errorf("the server closed the connection: %s (%d): %w", row.Meaning, row.Code, err)
	if row.Code == protocol.CloseTooManyConnections {
		err = fmt.Errorf("%w; start the server with a higher --max-conns-per-user, or use an admin --token", err)
	}
	return &retryAfterError{err: err, after: row.MinDelay}
}

// retryAfterError is a failure to retry no sooner than after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// retryDelay is how long to wait before retrying after err: backoff, or
// longer if err asks for it.
func retryDelay(backoff time.Duration, err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return max(backoff, ra.after)
	}
	return backoff
}

// handshakeError describes a failed WebSocket handshake.
func handshakeError(resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("WebSocket handshake: %w", err)
	}
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 300))
	}
	msg := fmt.Errorf("WebSocket handshake GET /ws: %s: %.300s", resp.Status, bytes.TrimSpace(body))
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound:
		return permanent(fmt.Errorf("%w (this server does not serve the WebSocket endpoint /ws: is the gateway wired into this build?)", msg))
	case code == http.StatusUnauthorized:
		return permanent(fmt.Errorf("%w (pass --token)", msg))
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return msg
	case code >= 400 && code < 500:
		return permanent(msg)
	}
	return msg
}

// connectAll connects every client, DialConcurrency at a time. It returns
// an error only for a permanent refusal (the run cannot go on); clients
// that failed otherwise are left unconnected and counted.
func (r *run) connectAll(parent context.Context) error {
	ctx, cancelTimeout := context.WithTimeoutCause(parent, r.cfg.ConnectTimeout,
		fmt.Errorf("connect phase took longer than %v", r.cfg.ConnectTimeout))
	defer cancelTimeout()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)

	var (
		next      atomic.Int64
		connected atomic.Int64
		wg        sync.WaitGroup
	)
	workers := min(r.cfg.DialConcurrency, len(r.clients))
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(r.clients) {
					return
				}
				c := r.clients[i]
				if err := r.connectWithRetry(ctx, c); err != nil {
					if isPermanent(err) {
						abort(err)
						return
					}
					if ctx.Err() == nil {
						r.errs.add("connect", err)
					}
					continue
				}
				c.connected = true
				connected.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-tick.C:
			r.log.Info("connecting", "connected", connected.Load(), "clients", len(r.clients))
		}
	}
	switch cause := context.Cause(ctx); {
	case cause == nil:
	case isPermanent(cause):
		return cause
	case parent.Err() == nil: // the connect timeout: go on with those connected
		r.errs.add("connect", cause)
	}
	return nil
}

// connectWithRetry makes up to 1+DialRetries attempts, backing off
// between them.
func (r *run) connectWithRetry(ctx context.Context, c *client) error {
	var err error
	for attempt := 0; attempt <= r.cfg.DialRetries; attempt++ {
		if attempt > 0 {
			backoff := min(50*time.Millisecond<<(attempt-1), 2*time.Second)
			backoff += rand.N(backoff / 2)
			t := time.NewTimer(retryDelay(backoff, err))
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, context.Cause(ctx))
			case <-t.C:
			}
		}
		if err = r.connect(ctx, c); err == nil || isPermanent(err) || ctx.Err() != nil {
			return err
		}
		r.log.Debug("connect attempt failed", "client", c.id, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("client %d: %d attempts failed, the last: %w", c.id, r.cfg.DialRetries+1, err)
}

// connect makes one attempt: handshake, start the reader, send the first
// request and wait for its reply.
func (r *run) connect(ctx context.Context, c *client) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, r.wsURL, r.dialOpts)
	if err != nil {
		return handshakeError(resp, err)
	}
	conn.SetReadLimit(maxServerFrame)
	c.reset(conn)
	r.readers.Add(1)
	go r.readLoop(c)

	req := []byte(`{"op":"ping","id":` + strconv.Itoa(readyID) + `}`)
	if c.job != nil {
		req = []byte(`{"op":"subscribe","id":` + strconv.Itoa(readyID) + `,"channel":"` + c.job.channel + `"}`)
	}
	if err := conn.Write(ctx, websocket.MessageText, req); err != nil {
		c.abandon()
		return fmt.Errorf("send the first frame: %w", err)
	}
	select {
	case err := <-c.ready:
		if err != nil {
			c.abandon()
		}
		return err
	case <-ctx.Done():
		c.abandon()
		return fmt.Errorf("no reply to %s within %v: %w", req, attemptTimeout, context.Cause(ctx))
	}
}

// closeAll ends every connection — with a close handshake unless ctx is
// done — and waits for every reader.
func (r *run) closeAll(ctx context.Context) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(closeWorkers, len(r.clients)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.clients) {
					return
				}
				c := r.clients[i]
				if !c.connected {
					continue
				}
				c.closing.Store(true)
				if ctx.Err() != nil || c.exited.Load() {
					_ = c.conn.CloseNow()
				} else {
					_ = c.conn.Close(websocket.StatusNormalClosure, "bench done")
				}
			}
		})
	}
	wg.Wait()
	r.readers.Wait()
}

// readInto reads all of rd into buf (reusing its capacity), up to limit
// bytes.
func readInto(rd io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, fmt.Errorf("message larger than %d bytes", limit)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
