package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/protocol"
)

const (
	// maxFrameBytes bounds one frame from the server: a snapshot with
	// every limit reached is well under it.
	maxFrameBytes = 1 << 20
	// pollInterval is how often Watch asks over HTTP when the server has
	// no WebSocket endpoint.
	pollInterval = 500 * time.Millisecond
	// maxReconnectDelay caps the wait between reconnects.
	maxReconnectDelay = 5 * time.Second
)

// Watch follows job id live over the server's WebSocket endpoint, calling
// fn (if not nil) with each newer snapshot, the current one first, and
// returns the terminal snapshot once the job succeeds, fails or is
// canceled. fn runs on Watch's goroutine. When the connection drops, Watch
// reconnects (waiting up to 5 s between tries, and at least what the
// server's close code asks: 5 s after 4029) and resubscribes; the
// snapshot sent on resubscribe makes up for anything missed, and
// snapshots at or below the last seq are skipped. A server without the
// WebSocket endpoint is polled over HTTP instead.
//
// Watch returns an *Error for a job that does not exist or is not the
// caller's, or for a token the server refuses; ctx.Err() when ctx ends.
func (c *Client) Watch(ctx context.Context, id string, fn func(Snapshot)) (Snapshot, error) {
	w := &watcher{c: c, id: id, fn: fn}
	return w.run(ctx)
}

type watcher struct {
	c    *Client
	id   string
	fn   func(Snapshot)
	last Snapshot
	seen bool
}

// deliver passes s on if it is newer, and reports whether it is terminal.
func (w *watcher) deliver(s Snapshot) bool {
	if w.seen && s.Seq <= w.last.Seq {
		return false
	}
	w.last, w.seen = s, true
	if w.fn != nil {
		w.fn(s)
	}
	return s.State.Terminal()
}

func (w *watcher) run(ctx context.Context) (Snapshot, error) {
	err := reconnecting(ctx, w.session)
	return w.last, err
}

// reconnecting runs session until it returns nil or a final error,
// reconnecting after a dropped connection with backoff (and at least the
// delay the server's close code asks). A session that never reached the
// server is not retried: a wrong --server, not a blip.
func reconnecting(ctx context.Context, session func(ctx context.Context, connected *bool) error) error {
	delay := 100 * time.Millisecond
	connected := false
	for {
		err := session(ctx, &connected)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var final *finalError
		if errors.As(err, &final) {
			return final.err
		}
		if !connected {
			return err
		}
		delay = waitBefore(delay, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxReconnectDelay)
	}
}

// waitBefore returns how long to wait before reconnecting after err: the
// backoff's delay, or the least delay of the server's close code if that
// is longer (reconnecting sooner after 4029 would only be refused again).
func waitBefore(backoff time.Duration, err error) time.Duration {
	var closed *closedError
	if errors.As(err, &closed) {
		return max(backoff, closed.close.MinDelay)
	}
	return backoff
}

// closedError is a connection the server closed with a code of
// protocol.Closes that allows reconnecting, at the least delay it names.
type closedError struct {
	close protocol.Close
	err   error
}

func (e *closedError) Error() string {
	return fmt.Sprintf("the server closed the connection: %s (%d): %v", e.close.Meaning, e.close.Code, e.err)
}

func (e *closedError) Unwrap() error { return e.err }

// finalError ends Watch instead of reconnecting.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }

// session is one connection: dial, subscribe, read updates until the job
// is terminal (nil) or the connection fails (an error to reconnect on).
func (w *watcher) session(ctx context.Context, connected *bool) error {
	conn, status, err := w.c.dialWS(ctx, connected)
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		return w.poll(ctx) // a server without /ws
	}
	if err != nil {
		return err
	}
	defer conn.CloseNow()

	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "id": 1, "channel": "job:" + w.id})
	if err := conn.Write(ctx, websocket.MessageText, sub); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return readError(err)
		}
		var f struct {
			Type    string          `json:"type"`
			ID      json.RawMessage `json:"id"`
			Channel string          `json:"channel"`
			Job     json.RawMessage `json:"job"`
			Error   *Error          `json:"error"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("decode frame: %w", err)
		}
		switch f.Type {
		case "reply":
			if f.Error != nil && string(f.ID) == "1" {
				return &finalError{f.Error}
			}
		case "update":
			if f.Channel != "job:"+w.id {
				continue
			}
			var s Snapshot
			if err := json.Unmarshal(f.Job, &s); err != nil {
				return fmt.Errorf("decode snapshot: %w", err)
			}
			if w.deliver(s) {
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return nil
			}
		}
	}
}

// dialWS opens the server's WebSocket endpoint. *connected is set once
// the server answered at all. A refused handshake returns its status: 404
// or 405 for a server without /ws (the caller may poll instead), or a
// final *Error for 401 and 403.
func (c *Client) dialWS(ctx context.Context, connected *bool) (*websocket.Conn, int, error) {
	u := *c.base
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path += "/ws"
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp == nil {
			return nil, 0, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
		}
		*connected = true
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, resp.StatusCode, &finalError{&Error{Status: resp.StatusCode, Code: "unauthorized",
				Message: fmt.Sprintf("the server refused the WebSocket connection (%s)", resp.Status)}}
		}
		return nil, resp.StatusCode, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	*connected = true
	conn.SetReadLimit(maxFrameBytes)
	return conn, 0, nil
}

// readError turns a failed read into an error to reconnect on, or a
// final one for a close code that says not to.
func readError(err error) error {
	if c, ok := protocol.CloseOf(int(websocket.CloseStatus(err))); ok {
		if !c.Reconnect {
			return &finalError{&Error{Code: c.Name, Message: fmt.Sprintf("the server closed the connection (%d): %s (set --token or PROGRESSD_TOKEN)", c.Code, c.Meaning)}}
		}
		return &closedError{close: c, err: err}
	}
	return fmt.Errorf("read: %w", err)
}

// poll follows the job over HTTP, for a server without /ws.
func (w *watcher) poll(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		s, err := w.c.Get(ctx, w.id)
		var apiErr *Error
		switch {
		case errors.As(err, &apiErr) && apiErr.Status < 500:
			return &finalError{err}
		case err != nil:
			return err
		case w.deliver(s):
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
