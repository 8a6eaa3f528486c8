package orchestrator

import (
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/progress"
)

// TestSinkBoundsWaitingLines: lines wait in a sink up to maxSinkLines and
// maxSinkBytes of text, whichever comes first; beyond, the oldest go and
// are counted, so every line is waiting or counted, and the newest wait.
// (The sink's goroutine is not started: nothing takes the lines.)
func TestSinkBoundsWaitingLines(t *testing.T) {
	for _, tc := range []struct {
		name      string
		text      string
		lines     int
		wantWait  int
		wantBytes int
	}{
		{"short lines: the count bounds", "line", 3 * maxSinkLines, maxSinkLines, 4 * maxSinkLines},
		{"4 KiB lines: the bytes bound", strings.Repeat("x", progress.MaxLogLineBytes), 1000, maxSinkBytes / progress.MaxLogLineBytes, maxSinkBytes},
		{"under both", "line", 10, 10, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{stage: "print", kick: make(chan struct{}, 1)}
			for i := range tc.lines {
				s.log(progress.StreamStdout, []byte(tc.text[:len(tc.text)-1]+string(rune('0'+i%10))))
			}
			if len(s.lines) != tc.wantWait || s.bytes != tc.wantBytes || s.dropped != tc.lines-tc.wantWait {
				t.Fatalf("%d waiting (%d bytes), %d dropped; want %d (%d bytes), %d", len(s.lines), s.bytes, s.dropped, tc.wantWait, tc.wantBytes, tc.lines-tc.wantWait)
			}
			if last := s.lines[len(s.lines)-1].Text; last[len(last)-1] != byte('0'+(tc.lines-1)%10) {
				t.Fatalf("the newest waiting line ends %q, not as the last logged", last[len(last)-1:])
			}
		})
	}
}
