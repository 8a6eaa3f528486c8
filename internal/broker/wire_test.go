package broker_test

import (
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

func TestMessageRoundTrip(t *testing.T) {
	origin := broker.Origin{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, s := range []progress.Snapshot{
		{JobID: "0195522a-0000-7000-8000-000000000001", Project: "p1", Owner: "alice", Seq: 1},
		{JobID: "j", Project: "ünï:cödé", Owner: "", Seq: 1<<64 - 1},
		{},
	} {
		u := broker.Update{Snapshot: s, Data: []byte(`{"x":1}`)}
		b, err := broker.AppendMessage(nil, origin, &u)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(b)
		h, data, err := broker.ParseHeader(msg)
		if err != nil {
			t.Fatalf("ParseHeader(%+v): %v", s, err)
		}
		if h.Origin != origin || h.Seq != s.Seq || h.Job != s.JobID || h.Project != s.Project || h.Owner != s.Owner || data != `{"x":1}` {
			t.Fatalf("round trip of %+v gave %+v and %q", s, h, data)
		}
		if len(msg) > broker.MessageSize(&u) {
			t.Fatalf("message of %d bytes, MessageSize said %d", len(msg), broker.MessageSize(&u))
		}
		for cut := range len(msg) - len(data) {
			if _, _, err := broker.ParseHeader(msg[:cut]); err == nil {
				t.Fatalf("a message cut at %d inside its header parsed", cut)
			}
		}
	}
}

// TestAppendMessageEncodesAMissingSnapshot: a publisher that left Data
// empty still sends the snapshot, which DecodeUpdate reads back.
func TestAppendMessageEncodesAMissingSnapshot(t *testing.T) {
	s, err := progress.New(progress.NewJob{ID: "j1", Project: "p", Owner: "o"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.AppendMessage(nil, broker.Origin{}, &broker.Update{Snapshot: s})
	if err != nil {
		t.Fatal(err)
	}
	h, data, err := broker.ParseHeader(string(b))
	if err != nil {
		t.Fatal(err)
	}
	u, err := broker.DecodeUpdate(h, data)
	if err != nil || u.Snapshot.JobID != "j1" || u.Snapshot.Stages == nil || string(u.Data) != data {
		t.Fatalf("DecodeUpdate = %+v, %v", u, err)
	}
	if _, err := broker.DecodeUpdate(h, "{"); err == nil {
		t.Fatal("DecodeUpdate of bad JSON succeeded")
	}
}

// FuzzParseHeader: any bytes on the channel (another program, another
// version) must be refused or parsed, never crash the node.
func FuzzParseHeader(f *testing.F) {
	u := broker.Update{Snapshot: progress.Snapshot{JobID: "job", Project: "p", Owner: "o", Seq: 300}, Data: []byte("{}")}
	b, _ := broker.AppendMessage(nil, broker.Origin{}, &u)
	f.Add(string(b))
	f.Add("")
	f.Add("\x01" + string(make([]byte, 16)) + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, msg string) {
		h, data, err := broker.ParseHeader(msg)
		if err != nil {
			return
		}
		if len(h.Job)+len(h.Project)+len(h.Owner)+len(data) > len(msg) {
			t.Fatalf("parsed more than the message holds: %+v %q", h, data)
		}
		u := broker.Update{Snapshot: progress.Snapshot{JobID: h.Job, Project: h.Project, Owner: h.Owner, Seq: h.Seq}, Data: []byte(data)}
		again, err := broker.AppendMessage(nil, h.Origin, &u)
		if len(data) == 0 {
			return // an empty body is encoded from the snapshot instead
		}
		h2, data2, err2 := broker.ParseHeader(string(again))
		if err != nil || err2 != nil || h2 != h || data2 != data {
			t.Fatalf("re-encoding %+v did not round-trip: %+v %q %v %v", h, h2, data2, err, err2)
		}
	})
}

// TestLogNoticeRoundTrip: a log notice carries the job, its project and
// owner and its newest line's n, and no snapshot.
func TestLogNoticeRoundTrip(t *testing.T) {
	origin := broker.Origin{9}
	u := broker.Update{Log: true, Snapshot: progress.Snapshot{JobID: "j1", Project: "p", Owner: "alice", Seq: 1234}}
	b, err := broker.AppendMessage(nil, origin, &u)
	if err != nil {
		t.Fatal(err)
	}
	h, data, err := broker.ParseHeader(string(b))
	if err != nil || !h.Log || data != "" {
		t.Fatalf("ParseHeader: %+v %q %v", h, data, err)
	}
	got, err := broker.DecodeUpdate(h, data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Log || got.Snapshot.JobID != "j1" || got.Snapshot.Project != "p" || got.Snapshot.Owner != "alice" || got.Snapshot.Seq != 1234 {
		t.Fatalf("decoded %+v", got)
	}
	if _, _, err := broker.ParseHeader("\x03" + string(b[1:])); err == nil {
		t.Fatal("an unknown message format parsed")
	}
}
