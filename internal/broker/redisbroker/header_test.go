package redisbroker

import (
	"testing"

	"github.com/progressd/progressd/internal/progress"
)

func TestHeaderRoundTrip(t *testing.T) {
	origin := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, s := range []progress.Snapshot{
		{JobID: "0195522a-0000-7000-8000-000000000001", Project: "p1", Owner: "alice", Seq: 1},
		{JobID: "j", Project: "ünï:cödé", Owner: "", Seq: 1<<64 - 1},
		{},
	} {
		msg := string(appendHeader(nil, origin, &s)) + `{"x":1}`
		h, data, err := parseHeader(msg)
		if err != nil {
			t.Fatalf("parseHeader(%+v): %v", s, err)
		}
		if h.origin != origin || h.seq != s.Seq || h.job != s.JobID || h.project != s.Project || h.owner != s.Owner || data != `{"x":1}` {
			t.Fatalf("round trip of %+v gave %+v and %q", s, h, data)
		}
		if n := len(msg) - len(data); n > headerSize(&s) {
			t.Fatalf("header of %d bytes, headerSize said %d", n, headerSize(&s))
		}
		for cut := range len(msg) - len(data) {
			if _, _, err := parseHeader(msg[:cut]); err == nil {
				t.Fatalf("a message cut at %d inside its header parsed", cut)
			}
		}
	}
}

// FuzzParseHeader: any bytes on the channel (another program, another
// version) must be refused or parsed, never crash the node.
func FuzzParseHeader(f *testing.F) {
	s := progress.Snapshot{JobID: "job", Project: "p", Owner: "o", Seq: 300}
	f.Add(string(appendHeader(nil, [16]byte{}, &s)) + "{}")
	f.Add("")
	f.Add("\x01" + string(make([]byte, 16)) + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, msg string) {
		h, data, err := parseHeader(msg)
		if err != nil {
			return
		}
		if len(h.job)+len(h.project)+len(h.owner)+len(data) > len(msg) {
			t.Fatalf("parsed more than the message holds: %+v %q", h, data)
		}
		again := string(appendHeader(nil, h.origin, &progress.Snapshot{JobID: h.job, Project: h.project, Owner: h.owner, Seq: h.seq})) + data
		h2, data2, err := parseHeader(again)
		if err != nil || h2 != h || data2 != data {
			t.Fatalf("re-encoding %+v did not round-trip: %+v %q %v", h, h2, data2, err)
		}
	})
}
