package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/auth"
)

// Close codes of SPEC.md beyond RFC 6455's.
const (
	StatusUnauthorized       websocket.StatusCode = 4001
	StatusTooSlow            websocket.StatusCode = 4008
	StatusTooManyConnections websocket.StatusCode = 4029
)

// wsConn is one WebSocket connection. Its reader goroutine (run) owns it:
// it handles every client frame, and when the connection ends it removes
// it from the hub and waits for every other goroutine the connection
// started. An idle connection has that one goroutine and nothing else; the
// others are short-lived and counted in wg:
//
//   - the writer, started when the queue stops being idle and returning
//     when it has written everything (see wake);
//   - a keepalive ping, started by a timer every PingInterval;
//   - the closer, which runs the close handshake with a code (closeWith),
//     so that nobody who decides to close — a publisher finding the queue
//     full, Shutdown, a timer — ever waits for the client.
//
// Fields below the subscriber are guarded by sub.mu unless noted.
type wsConn struct {
	g        *Gateway
	ws       *websocket.Conn
	netConn  net.Conn // the hijacked socket under ws, for drop
	sub      *subscriber
	clientID string // from the URL; an auth frame may set it instead

	wg      sync.WaitGroup
	done    bool        // the reader is finishing: start nothing more
	writing bool        // a writer goroutine is running
	closing atomic.Bool // a close is under way: write nothing more; set under sub.mu
	ping    *time.Timer
	// deadline closes the connection with 4001: when the auth frame is
	// late, or when the token expires.
	deadline *time.Timer

	// Owned by the reader goroutine.
	adm admission
	buf []*message // the writer's batch; owned by the running writer
}

func newWSConn(g *Gateway, ws *websocket.Conn, netConn net.Conn, clientID string) *wsConn {
	c := &wsConn{g: g, ws: ws, netConn: netConn, clientID: clientID}
	c.sub = newSubscriber(transportWS, newQueue(g.cfg.MaxQueuedFrames, g.cfg.MaxQueuedBytes), g.m)
	c.sub.wake = c.wakeLocked
	c.sub.overflow = func() { c.closeLocked(StatusTooSlow, "too slow to keep up") }
	return c
}

// run is the reader goroutine. p is the principal of the token the
// upgrade request carried, authErr why that token was refused; both zero
// means no token was sent.
func (c *wsConn) run(p *auth.Principal, authErr error) {
	var readErr error
	defer func() { c.finish(readErr) }()

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
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			readErr = err
			return
		}
		if c.closing.Load() {
			continue // the close handshake reads until the peer's close frame
		}
		c.handle(typ, data)
	}
}

// finish ends the connection once the reader has stopped: nothing is
// delivered to it any more, every goroutine it started has returned, and
// its user's count is released.
func (c *wsConn) finish(readErr error) {
	c.sub.mu.Lock()
	c.done = true
	c.ping.Stop()
	if c.deadline != nil {
		c.deadline.Stop()
	}
	c.sub.mu.Unlock()
	c.g.hub.close(c.sub)
	if errors.Is(readErr, websocket.ErrMessageTooBig) {
		// coder/websocket has sent 1009; Close reads off the rest of the
		// frame and waits for the peer's close, so the peer sees the code
		// instead of a reset connection.
		_ = c.ws.Close(websocket.StatusMessageTooBig, "frame too large")
	} else {
		_ = c.ws.CloseNow() // unblocks a writer or ping at once
	}
	c.wg.Wait()
	c.g.release(c.adm)
	c.g.untrack(c)
}

// refuse closes the connection with code, counting the reason.
func (c *wsConn) refuse(code websocket.StatusCode, reason, metric string) {
	c.g.m.refused.WithLabelValues(metric).Inc()
	c.closeWith(code, reason)
}

// closeWith starts the close handshake with code; the first code wins.
// It never blocks on the client.
func (c *wsConn) closeWith(code websocket.StatusCode, reason string) {
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *wsConn) closeLocked(code websocket.StatusCode, reason string) {
	if c.done || c.closing.Load() {
		return
	}
	c.closing.Store(true)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Close writes the close frame and waits (at most about 10 s) for
		// the peer's; the reader then sees the peer's close and finishes.
		_ = c.ws.Close(code, reason)
	}()
}

// drop closes the socket under the connection at once, without a close
// handshake: every read and write on it fails, so the reader finishes and
// the goroutines it waits for return promptly. Safe from any goroutine.
func (c *wsConn) drop() {
	if c.netConn != nil {
		_ = c.netConn.Close()
	} else {
		_ = c.ws.CloseNow()
	}
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

// wakeLocked starts the writer when the queue stops being idle.
func (c *wsConn) wakeLocked() {
	if c.writing || c.done || c.closing.Load() {
		return
	}
	c.writing = true
	c.wg.Add(1)
	go c.write()
}

// write is the writer goroutine: it takes everything queued, writes it
// frame by frame (coder/websocket writes and flushes one message at a
// time), and returns once the queue is idle, so an idle connection keeps
// no writer parked. Each write has its own deadline; a client that does
// not read for WriteTimeout is dropped.
func (c *wsConn) write() {
	defer c.wg.Done()
	for {
		c.sub.mu.Lock()
		if c.closing.Load() {
			c.buf = c.buf[:0]
		} else {
			c.buf = c.sub.takeLocked(c.buf)
		}
		if len(c.buf) == 0 {
			c.writing = false
			c.sub.mu.Unlock()
			return
		}
		c.sub.mu.Unlock()
		n, err := c.writeBatch(c.buf)
		c.g.m.sentWS.Add(float64(n))
		clear(c.buf)
		if cap(c.buf) > 64 {
			c.buf = nil
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.g.m.slowCloses.WithLabelValues(transportWS, "write_timeout").Inc()
			}
			c.g.log.Debug("websocket write failed", "err", err)
			// coder/websocket closed the connection: the reader will
			// finish. Keep writing set so no writer starts again.
			c.sub.mu.Lock()
			c.closing.Store(true)
			c.sub.mu.Unlock()
			return
		}
	}
}

// writeBatch writes the frames of one drained batch. The batch shares one
// deadline of WriteTimeout: a context per frame cost a timer each, which
// showed in profiles of `progressd bench --scenario fanout`.
func (c *wsConn) writeBatch(batch []*message) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.g.cfg.WriteTimeout)
	defer cancel()
	for i, m := range batch {
		if c.closing.Load() {
			return i, nil
		}
		if err := c.ws.Write(ctx, websocket.MessageText, m.frame); err != nil {
			return i, err
		}
	}
	return len(batch), nil
}

// keepalive pings the peer and drops it if no pong comes within
// PongTimeout. It runs on its timer's goroutine, counted in wg.
func (c *wsConn) keepalive() {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.g.cfg.PongTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if !c.closing.Load() {
			c.g.log.Debug("websocket peer did not answer a ping; dropping it", "err", err)
		}
		c.drop()
		return
	}
	c.sub.mu.Lock()
	if !c.done {
		c.ping.Reset(c.g.cfg.PingInterval)
	}
	c.sub.mu.Unlock()
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
