package loadtest

import (
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/protocol"
)

// TestClosedErrorFollowsTheTable checks that a connection the server
// closes before its first reply is given up or retried as package
// protocol's table says: 4001 ends the run, 4029 is retried no sooner than
// 5 s (the load tool used to give up), others with the usual backoff.
func TestClosedErrorFollowsTheTable(t *testing.T) {
	t.Parallel()
	const backoff = 50 * time.Millisecond
	for _, row := range protocol.Closes {
		err := closedError(websocket.CloseError{Code: websocket.StatusCode(row.Code), Reason: "test"})
		if isPermanent(err) == row.Reconnect {
			t.Errorf("close %d: permanent = %v, want %v (%v)", row.Code, isPermanent(err), !row.Reconnect, err)
		}
		if got, want := retryDelay(backoff, err), max(backoff, row.MinDelay); row.Reconnect && got != want {
			t.Errorf("close %d: retry after %v, want %v", row.Code, got, want)
		}
	}
	if err := closedError(errors.New("EOF")); isPermanent(err) || retryDelay(backoff, err) != backoff {
		t.Errorf("a dropped connection: %v (permanent %v, delay %v), want a retry after the backoff", err, isPermanent(err), retryDelay(backoff, err))
	}
}
