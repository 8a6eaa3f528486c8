package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/protocol"
)

// closingServer accepts every WebSocket connection and closes it with code
// once the client's first frame arrives.
func closingServer(t *testing.T, code int) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		if _, _, err := conn.Read(r.Context()); err != nil {
			return
		}
		_ = conn.Close(websocket.StatusCode(code), "test")
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWatchFollowsTheCloseCodeTable checks that Watch acts on each close
// code as package protocol's table says: it stops on a code that forbids
// reconnecting, and otherwise waits at least the code's least delay (5 s
// after 4029, where it used to retry after 100 ms).
func TestWatchFollowsTheCloseCodeTable(t *testing.T) {
	for _, row := range protocol.Closes {
		t.Run(row.Name, func(t *testing.T) {
			w := &watcher{c: closingServer(t, row.Code), id: "j1"}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			connected := false
			err := w.session(ctx, &connected)
			var final *finalError
			var closed *closedError
			switch {
			case !row.Reconnect:
				var apiErr *Error
				if !errors.As(err, &final) || !errors.As(final.err, &apiErr) || apiErr.Code != row.Name {
					t.Fatalf("session = %v, want a final error with code %s", err, row.Name)
				}
			case !errors.As(err, &closed) || closed.close != row:
				t.Fatalf("session = %v, want a closedError for %d", err, row.Code)
			default:
				const backoff = 100 * time.Millisecond
				if got, want := waitBefore(backoff, err), max(backoff, row.MinDelay); got != want {
					t.Fatalf("waitBefore(%v) after %d = %v, want %v", backoff, row.Code, got, want)
				}
			}
		})
	}
	if got := waitBefore(time.Second, errors.New("read: EOF")); got != time.Second {
		t.Fatalf("waitBefore after a dropped connection = %v, want the backoff's 1s", got)
	}
}
