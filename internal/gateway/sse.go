package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/progressd/progressd/internal/auth"
)

// ServeJobEvents serves GET /api/v1/jobs/{id}/events: Server-Sent Events of
// one job, the current snapshot first, then every change, each as
// "event: update", "id: <seq>", "data: <snapshot>". An unknown job and a
// job of another user are both 404, as for GET /api/v1/jobs/{id}, so the
// endpoint does not reveal which jobs exist. A job-scoped token (a
// pipeline stage's) asking for another job is 403, as in the API: that
// refusal comes before any read, so it reveals nothing either.
func (g *Gateway) ServeJobEvents(w http.ResponseWriter, r *http.Request) {
	p, ok := g.httpPrincipal(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	t, perr := g.authorize(p, "job:"+id)
	if perr != nil {
		if (perr.Code == CodeForbidden && p.Covers(id)) || perr.Code == CodeBadRequest {
			perr = errorf(CodeNotFound, "job %s: no such job", truncate(id, 100))
		}
		g.refuseHTTP(w, perr)
		return
	}
	g.stream(w, r, p, []target{t}, true)
}

// ServeEvents serves GET /api/v1/events?channel=…&channel=…: the same
// stream for any channels, each event's data {"channel", "job"}. The
// rules are the WebSocket ones: job: of another user's job and user: of
// another user are 403, project: is open and carries only visible jobs.
// Events carry no id: a seq orders one job's snapshots, not a stream of
// many jobs, and a reconnecting client is sent the current state anyway.
func (g *Gateway) ServeEvents(w http.ResponseWriter, r *http.Request) {
	p, ok := g.httpPrincipal(w, r)
	if !ok {
		return
	}
	names := r.URL.Query()["channel"]
	if len(names) == 0 {
		g.refuseHTTP(w, errorf(CodeBadRequest, "name at least one channel: ?channel=job:<id>, project:<name> or user:<id>"))
		return
	}
	after, perr := queryAfter(r)
	if perr != nil {
		g.refuseHTTP(w, perr)
		return
	}
	seen := make(map[string]bool, len(names))
	var targets []target
	for _, ch := range names {
		if seen[ch] {
			continue
		}
		seen[ch] = true
		if len(seen) > g.cfg.MaxSubscriptions {
			g.refuseHTTP(w, errorf(CodeLimitExceeded, "more than %d channels; the limit is %d per stream", g.cfg.MaxSubscriptions, g.cfg.MaxSubscriptions))
			return
		}
		t, perr := g.authorize(p, ch)
		if perr == nil && t.kind == auth.LogsChannel {
			perr = t.setAfter(after)
		}
		if perr != nil {
			g.refuseHTTP(w, perr)
			return
		}
		targets = append(targets, t)
	}
	g.stream(w, r, p, targets, false)
}

// httpPrincipal authenticates an SSE request by ?token= (EventSource
// cannot set headers) or Authorization: Bearer, answering 401 itself.
func (g *Gateway) httpPrincipal(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	p, err := g.cfg.Auth.Verify(requestToken(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="progressd"`)
		g.refuseHTTP(w, errorf(CodeUnauthorized, "%s", err))
		return p, false
	}
	return p, true
}

// httpStatus is the status of a refusal sent before an SSE stream starts.
var httpStatus = map[string]int{
	CodeBadRequest:    http.StatusBadRequest,
	CodeUnauthorized:  http.StatusUnauthorized,
	CodeForbidden:     http.StatusForbidden,
	CodeNotFound:      http.StatusNotFound,
	CodeLimitExceeded: http.StatusBadRequest,
	CodeInternal:      http.StatusInternalServerError,
	CodeUnavailable:   http.StatusServiceUnavailable,
}

// refusedReason is the refused_total label of a refusal code.
var refusedReason = map[string]string{
	CodeBadRequest:    refusedBadRequest,
	CodeUnauthorized:  refusedUnauthorized,
	CodeForbidden:     refusedForbidden,
	CodeNotFound:      refusedNotFound,
	CodeLimitExceeded: refusedBadRequest,
	CodeInternal:      refusedInternal,
	CodeUnavailable:   refusedShutdown,
}

func (g *Gateway) refuseHTTP(w http.ResponseWriter, perr *protoError) {
	g.m.refused.WithLabelValues(refusedReason[perr.Code]).Inc()
	writeHTTPError(w, httpStatus[perr.Code], perr)
}

// stream runs one SSE stream on the handler's goroutine, which is also
// its writer: it sleeps until the queue has something (wake), a heartbeat
// is due, the client goes, the token expires or the gateway shuts down.
// The queue, its coalescing and its bound are the WebSocket ones; a client
// over the bound has its stream ended (there is no close code to send).
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, p auth.Principal, targets []target, single bool) {
	if !g.track(nil) {
		g.refuseHTTP(w, errorf(CodeUnavailable, "the server is shutting down; retry shortly"))
		return
	}
	defer g.untrack(nil)
	adm, ok := g.admit(p, r.URL.Query().Get("client_id"))
	if !ok {
		g.m.refused.WithLabelValues(refusedTooManyConns).Inc()
		writeHTTPError(w, http.StatusTooManyRequests, errorf(CodeLimitExceeded,
			"user %q has %d open connections, the limit; close some first", p.Subject, g.cfg.MaxConnsPerUser))
		return
	}
	defer g.release(adm)

	wake := make(chan struct{}, 1)
	over := make(chan struct{})
	s := newSubscriber(transportSSE, newQueue(g.cfg.MaxQueuedFrames, g.cfg.MaxQueuedBytes), g.m)
	s.wake = func(bool) bool {
		select {
		case wake <- struct{}{}:
		default:
		}
		return false // the stream's own goroutine writes
	}
	s.overflow = func() { close(over) } // called once
	s.principal.Store(&p)
	defer g.hub.close(s)
	for _, t := range targets {
		if perr := g.join(s, p, t, func(*protoError) []byte { return nil }); perr != nil {
			g.refuseHTTP(w, perr)
			return
		}
	}

	g.boundStreamBuffer(w, r)
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if g.deadline(rc) != nil || g.flush(rc) != nil {
		return
	}

	var expired <-chan time.Time
	if !p.Expires.IsZero() {
		t := time.NewTimer(time.Until(p.Expires))
		defer t.Stop()
		expired = t.C
	}
	heartbeat := time.NewTicker(g.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	var (
		buf       []*message
		event     []byte
		lastWrite time.Time
		// spaced is sent on by the flush clock when the write spacing
		// is over; waiting says the stream is parked on it.
		spaced  = make(chan struct{}, 1)
		waiting bool
	)
	unpark := func() {
		select {
		case spaced <- struct{}{}:
		default:
		}
	}
	for {
		select {
		case <-wake:
		case <-spaced:
			waiting = false
		case <-heartbeat.C:
			if g.deadline(rc) != nil {
				return
			}
			if _, err := w.Write([]byte(": ping\n\n")); err != nil || g.flush(rc) != nil {
				return
			}
			continue
		case <-over:
			return // counted by the subscriber
		case <-expired:
			g.m.expired.Inc()
			return
		case <-r.Context().Done():
			return
		case <-g.ctx.Done():
			return
		}
		// Too soon after the last write, and nothing urgent (a state
		// change or a reply skips the spacing): park on the flush clock.
		if !s.isUrgent() && (waiting || g.tooSoon(lastWrite)) {
			if !waiting {
				waiting = true
				g.spacer.park(lastWrite.Add(g.cfg.MinWriteInterval), unpark)
			}
			continue
		}
		buf = g.expandLogs(s, s.take(buf))
		if len(buf) == 0 {
			continue
		}
		lastWrite = g.cfg.clock.Now() // from the start of the write, as on WebSocket
		if g.deadline(rc) != nil {
			return
		}
		for _, m := range buf {
			event = appendEvent(event[:0], m, single)
			if _, err := w.Write(event); err != nil {
				if isTimeout(err) {
					g.m.slowCloses.WithLabelValues(transportSSE, "write_timeout").Inc()
				}
				return
			}
		}
		if err := g.flush(rc); err != nil {
			if errors.Is(err, errWriteTimeout) {
				g.m.slowCloses.WithLabelValues(transportSSE, "write_timeout").Inc()
			}
			return
		}
		g.m.sent.WithLabelValues(transportSSE).Add(float64(len(buf)))
		clear(buf)
	}
}

var errWriteTimeout = errors.New("gateway: SSE write timed out")

// deadline gives the writes that follow WriteTimeout to complete. It is
// set before writing, not only before flushing: an event larger than the
// response buffer reaches the socket inside Write.
func (g *Gateway) deadline(rc *http.ResponseController) error {
	err := rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// flush sends what was written.
func (g *Gateway) flush(rc *http.ResponseController) error {
	err := rc.Flush()
	if isTimeout(err) {
		return errWriteTimeout
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// appendEvent appends the SSE event of m: the snapshot with its seq as id
// (single job), or {"channel","job"} without id.
func appendEvent(b []byte, m *message, single bool) []byte {
	if m.logFrame {
		b = append(b, "event: log\n"...)
		return appendData(b, "", m.frame)
	}
	b = append(b, "event: update\n"...)
	if single {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, m.seq, 10)
		b = append(b, '\n')
		return appendData(b, "", m.job())
	}
	return appendData(b, "{", m.frame[len(updatePrefix):])
}

// appendData appends lead+data as "data:" lines and the blank line that
// ends the event. Compact JSON has no line breaks, but a broker's bytes
// are not trusted to be compact: a break starts a new data line, which
// the client joins back with "\n".
func appendData(b []byte, lead string, data []byte) []byte {
	b = append(b, "data: "...)
	b = append(b, lead...)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, data[:i]...)
		b = append(b, "\ndata: "...)
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// queryAfter reads the "after" of a logs: stream (nil when absent).
func queryAfter(r *http.Request) (*int64, *protoError) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, errorf(CodeBadRequest, "after=%q: give the n of the last line you have (≥ 0), or leave it out for every kept line", truncate(v, 32))
	}
	return &n, nil
}
