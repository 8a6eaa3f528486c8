package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

func (e *env) appendLines(t testing.TB, id string, texts ...string) int64 {
	t.Helper()
	last, err := e.svc.AppendLogs(context.Background(), id, texts, jobs.LogSource{Stream: progress.StreamLog}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func numbered(from, to int) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, fmt.Sprint("line ", n))
	}
	return out
}

// nextLog returns the next log frame.
func (c *client) nextLog() frame {
	c.t.Helper()
	if len(c.early) > 0 {
		f := c.early[0]
		c.early = c.early[1:]
		return f
	}
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if f.Type != "log" {
		c.t.Fatalf("frame %+v, want a log frame", f)
	}
	return f
}

// linesUntil reads log frames until line last arrived and checks that the
// lines came in order without a gap from first; it returns the frames.
func (c *client) linesUntil(first, last int64) []frame {
	c.t.Helper()
	var frames []frame
	want := first
	for want <= last {
		f := c.nextLog()
		frames = append(frames, f)
		for _, l := range f.Lines {
			if l.N != want || l.Text != fmt.Sprint("line ", want) {
				c.t.Fatalf("line %d %q, want line %d", l.N, l.Text, want)
			}
			want++
		}
	}
	return frames
}

// TestLogsChannel: logs:<id> sends the kept lines after "after", then the
// live ones, in batched frames, none coalesced; an after older than the
// first kept line gets truncated; bad "after" values are refused.
func TestLogsChannel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	j := e.createJob(t, "alice", "p1")
	e.appendLines(t, j.JobID, numbered(1, 3)...)
	c := e.dialAs(t, "alice")
	ch := "logs:" + j.JobID

	if r := c.call("subscribe", map[string]any{"channel": ch, "after": 1}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r.Error)
	}
	if fs := c.linesUntil(2, 3); fs[0].Channel != ch || fs[0].Truncated || fs[0].Lines[0].Stream != progress.StreamLog {
		t.Fatalf("scrollback frame %+v", fs[0])
	}
	// Live lines, many batches written while the client reads nothing:
	// every line arrives, in order, none coalesced away.
	for i := range 50 {
		e.appendLines(t, j.JobID, numbered(4+10*i, 13+10*i)...)
	}
	if fs := c.linesUntil(4, 503); len(fs) >= 50*10 {
		t.Fatalf("%d frames for 500 lines: not batched", len(fs))
	}

	c.expectError(CodeBadRequest, "subscribe", map[string]any{"channel": ch, "after": -1})
	c.expectError(CodeBadRequest, "subscribe", map[string]any{"channel": "job:" + j.JobID, "after": 3})
	bob := e.dialAs(t, "bob")
	bob.expectError(CodeForbidden, "subscribe", map[string]any{"channel": ch})
}

// TestLogsChannelTruncated: a subscriber whose after is older than the
// first kept line is told so and starts at the first kept line.
func TestLogsChannelTruncated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	j := e.createJob(t, "alice", "p1")
	e.appendLines(t, j.JobID, numbered(1, 1000)...)
	e.appendLines(t, j.JobID, numbered(1001, 1010)...) // 1..10 dropped
	c := e.dialAs(t, "alice")
	if r := c.call("subscribe", map[string]any{"channel": "logs:" + j.JobID, "after": 5}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r.Error)
	}
	fs := c.linesUntil(11, 1010)
	if !fs[0].Truncated || len(fs) > 4 {
		t.Fatalf("first frame truncated=%v, %d frames for 1,000 lines", fs[0].Truncated, len(fs))
	}
	// Without after: every kept line, not truncated.
	c2 := e.dialAs(t, "alice")
	c2.subscribe("logs:" + j.JobID)
	if fs := c2.linesUntil(11, 1010); fs[0].Truncated {
		t.Fatal("a subscribe without after was told truncated")
	}
}

// TestLogsChannelSSE: the same over SSE, as "event: log".
func TestLogsChannelSSE(t *testing.T) {
	t.Parallel()
	e := setup(t, singleUser)
	j := e.createJob(t, "local", "p1")
	e.appendLines(t, j.JobID, numbered(1, 3)...)
	s := e.stream(t, "/api/v1/events?channel=logs:"+j.JobID+"&after=2", nil)
	want := int64(3)
	for want <= 5 {
		ev, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.comment != "" {
			continue
		}
		if ev.event != "log" {
			t.Fatalf("event %+v, want log", ev)
		}
		var f frame
		if err := json.Unmarshal([]byte(ev.data), &f); err != nil || f.Type != "log" || f.Channel != "logs:"+j.JobID {
			t.Fatalf("data %s: %v", ev.data, err)
		}
		for _, l := range f.Lines {
			if l.N != want {
				t.Fatalf("line %d, want %d", l.N, want)
			}
			want++
		}
		if want == 4 {
			e.appendLines(t, j.JobID, numbered(4, 5)...)
		}
	}
	for _, q := range []string{"&after=-1", "&after=x"} {
		if r := e.get(t, "/api/v1/events?channel=logs:"+j.JobID+q, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("after %s: %d", q, r.StatusCode)
		}
	}
}
