package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

var logTests = []struct {
	name string
	fn   func(t *testing.T, b *bundle)
}{
	{"LogsSaveRead", testLogsSaveRead},
	{"LogsTrimAndTruncate", testLogsTrimAndTruncate},
	{"LogsRetryAndUnknownJob", testLogsRetryAndUnknownJob},
	{"LogsReopen", testLogsReopen},
	{"LogsManyInOneSave", testLogsManyInOneSave},
}

func logLines(from, to int64) []progress.LogLine {
	var out []progress.LogLine
	for n := from; n <= to; n++ {
		out = append(out, progress.LogLine{N: n, T: progress.At(time.UnixMilli(1700000000000 + n)),
			Stream: progress.StreamStderr, Stage: "encode", Text: fmt.Sprintf("line %d é…", n)})
	}
	return out
}

func (b *bundle) readLogs(t *testing.T, job string, after int64, limit int) progress.LogPage {
	t.Helper()
	p, err := b.store.ReadLogs(t.Context(), job, after, limit)
	if err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return p
}

func testLogsSaveRead(t *testing.T, b *bundle) {
	j, other := b.job(t, "p", "alice"), b.job(t, "p", "alice")
	b.create(t, j, other)
	if p := b.readLogs(t, j.JobID, -1, 10); p.First != 0 || p.Last != 0 || len(p.Lines) != 0 || p.Lines == nil {
		t.Fatalf("no lines yet: %+v", p)
	}
	batch := []progress.JobLogs{{JobID: j.JobID, Lines: logLines(1, 3)}, {JobID: other.JobID, Lines: logLines(1, 1)}}
	if err := b.store.SaveLogs(t.Context(), batch, 100); err != nil {
		t.Fatal(err)
	}
	p := b.readLogs(t, j.JobID, -1, 10)
	if p.First != 1 || p.Last != 3 || len(p.Lines) != 3 || p.Truncated {
		t.Fatalf("read: %+v", p)
	}
	if want := logLines(2, 2)[0]; p.Lines[1] != want {
		t.Fatalf("line 2 = %+v, want %+v", p.Lines[1], want)
	}
	if p := b.readLogs(t, j.JobID, 1, 1); len(p.Lines) != 1 || p.Lines[0].N != 2 {
		t.Fatalf("after 1 limit 1: %+v", p)
	}
	if p := b.readLogs(t, j.JobID, 3, 10); len(p.Lines) != 0 || p.Last != 3 {
		t.Fatalf("after the last: %+v", p)
	}
}

func testLogsTrimAndTruncate(t *testing.T, b *bundle) {
	j := b.job(t, "p", "alice")
	b.create(t, j)
	for _, r := range [][2]int64{{1, 4}, {5, 9}} {
		if err := b.store.SaveLogs(t.Context(), []progress.JobLogs{{JobID: j.JobID, Lines: logLines(r[0], r[1])}}, 3); err != nil {
			t.Fatal(err)
		}
	}
	p := b.readLogs(t, j.JobID, -1, 10)
	if p.First != 7 || p.Last != 9 || len(p.Lines) != 3 || p.Truncated {
		t.Fatalf("keeping 3 of 9: %+v", p)
	}
	if p := b.readLogs(t, j.JobID, 2, 10); !p.Truncated || p.Lines[0].N != 7 {
		t.Fatalf("after a dropped line: %+v", p)
	}
	if p := b.readLogs(t, j.JobID, 6, 10); p.Truncated || p.Lines[0].N != 7 {
		t.Fatalf("after the line before the first kept: %+v", p)
	}
}

func testLogsRetryAndUnknownJob(t *testing.T, b *bundle) {
	j := b.job(t, "p", "alice")
	b.create(t, j)
	batch := []progress.JobLogs{{JobID: j.JobID, Lines: logLines(1, 2)}, {JobID: "no-such-job", Lines: logLines(1, 2)}}
	for range 2 { // a retried batch changes nothing
		if err := b.store.SaveLogs(t.Context(), batch, 100); err != nil {
			t.Fatal(err)
		}
	}
	if p := b.readLogs(t, j.JobID, -1, 10); len(p.Lines) != 2 || p.Last != 2 {
		t.Fatalf("after a retried batch: %+v", p)
	}
	if p := b.readLogs(t, "no-such-job", -1, 10); len(p.Lines) != 0 {
		t.Fatalf("lines of an unknown job were kept: %+v", p)
	}
}

func testLogsReopen(t *testing.T, b *bundle) {
	j := b.job(t, "p", "alice")
	b.create(t, j)
	if err := b.store.SaveLogs(t.Context(), []progress.JobLogs{{JobID: j.JobID, Lines: logLines(1, 2)}}, 100); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	b.store = b.open(t)
	if p := b.readLogs(t, j.JobID, -1, 10); len(p.Lines) != 2 {
		t.Fatalf("after reopening: %+v", p)
	}
}

// testLogsManyInOneSave: one save of lines of several jobs, more than
// fit one insert statement (store.LogInsertRows) and not a multiple of
// it, with a job gone and lines repeated from an earlier save: every
// line of the known jobs is kept once, in order, the newest keep.
func testLogsManyInOneSave(t *testing.T, b *bundle) {
	a, c := b.job(t, "p", "alice"), b.job(t, "p", "alice")
	b.create(t, a, c)
	if err := b.store.SaveLogs(t.Context(), []progress.JobLogs{{JobID: a.JobID, Lines: logLines(1, 50)}}, 1000); err != nil {
		t.Fatal(err)
	}
	batch := []progress.JobLogs{
		{JobID: a.JobID, Lines: logLines(1, 230)}, // 1–50 again
		{JobID: "no-such-job", Lines: logLines(1, 70)},
		{JobID: c.JobID, Lines: logLines(1, 1)},
	}
	if err := b.store.SaveLogs(t.Context(), batch, 200); err != nil {
		t.Fatal(err)
	}
	p := b.readLogs(t, a.JobID, -1, 1000)
	if p.First != 31 || p.Last != 230 || len(p.Lines) != 200 {
		t.Fatalf("job a: first %d last %d, %d lines; want 31, 230, 200", p.First, p.Last, len(p.Lines))
	}
	for i, l := range p.Lines {
		if want := logLines(int64(31+i), int64(31+i))[0]; l != want {
			t.Fatalf("line %d = %+v, want %+v", i, l, want)
		}
	}
	if p := b.readLogs(t, c.JobID, -1, 10); len(p.Lines) != 1 || p.Last != 1 {
		t.Fatalf("job c: %+v", p)
	}
}
