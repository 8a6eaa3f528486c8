package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/protocol"
)

// ServeWS upgrades a request to the WebSocket protocol of SPEC.md and
// returns as soon as the connection is set up: the connection's reader
// goroutine serves it from then on (the HTTP connection is hijacked, so
// the handler's goroutine and its buffers are not kept for the
// connection's life — see docs on memory per connection in doc.go).
//
// Refusals before the upgrade are HTTP errors with a JSON body: 403 for an
// Origin not allowed, 503 while shutting down. Everything about the token
// is told after the upgrade, as close code 4001, because a browser cannot
// read the status of a refused upgrade.
func (g *Gateway) ServeWS(w http.ResponseWriter, r *http.Request) {
	if !g.originAllowed(r.Header.Get("Origin")) {
		g.m.refused.WithLabelValues(refusedOrigin).Inc()
		writeHTTPError(w, http.StatusForbidden, errorf(CodeForbidden,
			"origin %q may not open a WebSocket here; add it to --allowed-origins", truncate(r.Header.Get("Origin"), 200)))
		return
	}
	if g.isClosed() {
		g.m.refused.WithLabelValues(refusedShutdown).Inc()
		writeHTTPError(w, http.StatusServiceUnavailable, errorf(CodeUnavailable, "the server is shutting down; reconnect shortly"))
		return
	}
	var (
		p       *auth.Principal
		authErr error
	)
	if token := requestToken(r); token != "" || !g.cfg.Auth.Enabled() {
		v, err := g.cfg.Auth.Verify(token)
		if err != nil {
			authErr = err
		} else {
			p = &v
		}
	}
	clientID := r.URL.Query().Get("client_id")
	if len(clientID) > 128 {
		clientID = clientID[:128]
	}
	u := ws.HTTPUpgrader{Timeout: g.cfg.WriteTimeout} // no extensions, no subprotocol
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		g.m.refused.WithLabelValues(refusedHandshake).Inc()
		g.log.Debug("websocket handshake failed", "err", err) // Upgrade wrote the response
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	// Keep what the HTTP server read past the request (a client may send
	// frames before it has the response), but not its buffers: an idle
	// connection holds none.
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		pre = bytes.Clone(b)
	}
	c := newWSConn(g, conn, pre, clientID)
	if !g.track(c) {
		g.m.refused.WithLabelValues(refusedShutdown).Inc()
		_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
		_, _ = conn.Write(appendClose(nil, protocol.CloseGoingAway, "server going away"))
		_ = conn.Close()
		return
	}
	go c.run(p, authErr)
}

// requestToken returns the token of ?token= or Authorization: Bearer.
func requestToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// handle serves one client frame on the reader goroutine. Subscribe reads
// the job store here: a slow store delays this connection's next frame,
// never another connection.
func (c *wsConn) handle(op ws.OpCode, data []byte) {
	if op != ws.OpText {
		c.flushReports()
		c.sub.reply(encodeReply(nullID, errorf(CodeBadRequest, "frames must be text: one JSON object each")))
		return
	}
	f, perr := decodeFrame(data)
	if perr != nil {
		c.flushReports()
		c.sub.reply(encodeReply(f.ID, perr))
		return
	}
	p := c.sub.principal.Load()
	if f.Op == opReport && p != nil {
		c.report(f)
		return
	}
	// Reports read before this frame are applied and answered first.
	c.flushReports()
	switch {
	case f.Op == opAuth:
		c.auth(f, p)
	case f.Op == opPing:
		c.sub.reply(encodeReply(f.ID, nil))
	case p == nil:
		c.sub.reply(encodeReply(f.ID, errorf(CodeUnauthorized,
			"not authenticated: send {\"op\":\"auth\",\"token\":…} first")))
	case f.Op == opSubscribe:
		c.subscribe(f, *p)
	case f.Op == opUnsubscribe:
		c.unsubscribe(f)
	}
}

// auth serves an auth frame. The first one authenticates the connection (a
// bad token closes it with 4001). A later one refreshes the token before it
// expires; it must be for the same user — a different subject is refused
// with forbidden and the connection keeps its user, because it was
// admitted and counted for that user — and a bad one is refused with
// unauthorized, leaving the current token in force until it expires. A
// refresh with fewer rights (an admin token replaced by a plain one, a
// token narrowed to one job) drops every subscription the new token does
// not allow, each with an error frame, before the reply (recheck).
func (c *wsConn) auth(f clientFrame, cur *auth.Principal) {
	p, err := c.g.cfg.Auth.Verify(f.Token)
	if cur == nil {
		if err != nil {
			c.refuse(StatusUnauthorized, closeReason(err), refusedUnauthorized)
			return
		}
		clientID := c.clientID
		if f.ClientID != "" {
			clientID = f.ClientID
		}
		if c.login(p, clientID) {
			c.sub.reply(encodeReply(f.ID, nil))
		}
		return
	}
	switch {
	case err != nil:
		c.sub.reply(encodeReply(f.ID, errorf(CodeUnauthorized, "%s; the current token stays in force until it expires", err)))
	case p.Subject != cur.Subject:
		c.sub.reply(encodeReply(f.ID, errorf(CodeForbidden,
			"this connection belongs to user %q; open a new connection for user %q", cur.Subject, p.Subject)))
	default:
		c.setPrincipal(p)
		c.g.recheck(c.sub, *cur, p)
		c.sub.reply(encodeReply(f.ID, nil))
	}
}

// subscribe serves a subscribe frame: check, then join without a gap.
func (c *wsConn) subscribe(f clientFrame, p auth.Principal) {
	t, perr := c.g.authorize(p, f.Channel)
	if perr == nil {
		perr = t.setAfter(f.After)
	}
	if perr == nil && !c.sub.isSubscribed(t.name) && c.sub.channelCount() >= c.g.cfg.MaxSubscriptions {
		perr = errorf(CodeLimitExceeded, "this connection already has %d subscriptions, the limit; unsubscribe first or open another connection", c.g.cfg.MaxSubscriptions)
	}
	if perr != nil {
		c.sub.reply(encodeReply(f.ID, perr))
		return
	}
	_ = c.g.join(c.sub, p, t, func(perr *protoError) []byte { return encodeReply(f.ID, perr) })
}

// unsubscribe serves an unsubscribe frame. Unsubscribing from a channel
// the connection is not in succeeds: the client's view is the same.
func (c *wsConn) unsubscribe(f clientFrame) {
	if _, _, err := auth.ParseChannel(f.Channel); err != nil {
		c.sub.reply(encodeReply(f.ID, &protoError{Code: CodeBadRequest, Message: err.Error()}))
		return
	}
	c.g.hub.unsubscribe(f.Channel, c.sub)
	c.sub.reply(encodeReply(f.ID, nil))
}

// writeHTTPError writes {"error": {"code", "message"}} with status.
func writeHTTPError(w http.ResponseWriter, status int, perr *protoError) {
	body, _ := json.Marshal(struct {
		Error *protoError `json:"error"`
	}{perr})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
