package auth

import (
	"testing"

	"github.com/progressd/progressd/internal/protocol"
)

// TestParseChannelAcceptsExactlyTheTable: every kind of protocol.Channels
// parses, and a kind outside it is refused naming the table's kinds.
func TestParseChannelAcceptsExactlyTheTable(t *testing.T) {
	for _, c := range protocol.Channels {
		kind, key, err := ParseChannel(c.Kind + ":abc")
		if err != nil || string(kind) != c.Kind || key != "abc" {
			t.Errorf("ParseChannel(%s:abc) = %q %q %v", c.Kind, kind, key, err)
		}
	}
	for _, kind := range []string{"log", "jobs", "admin", "JOB", ""} {
		if _, _, err := ParseChannel(kind + ":abc"); err == nil {
			t.Errorf("ParseChannel(%s:abc) accepted a kind that is not in protocol.Channels", kind)
		}
	}
}
