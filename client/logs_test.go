package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// TestLogsAndFollowLogs: AppendLogs and Logs over HTTP; FollowLogs passes
// every line after "after" once, in order, scrollback then live, and
// returns once the job ended and its last line (sent with the terminal
// report) was passed on.
func TestLogsAndFollowLogs(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines})
	c := newClient(t, s.URL, "")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	job, err := c.Create(ctx, client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if last, err := c.AppendLogs(ctx, job.JobID, "line 1", "line 2", "line 3"); err != nil || last != 3 {
		t.Fatalf("AppendLogs: %d %v", last, err)
	}
	p, err := c.Logs(ctx, job.JobID, 1, 0)
	if err != nil || len(p.Lines) != 2 || p.Lines[0].Text != "line 2" || p.Last != 3 {
		t.Fatalf("Logs after 1: %+v %v", p, err)
	}
	if _, err := c.Logs(ctx, job.JobID, 0, 5000); apiCode(err) != "bad_request" {
		t.Fatalf("Logs with limit 5000: %v", err)
	}

	got := make(chan client.LogLine, 100)
	done := make(chan error, 1)
	go func() {
		end, err := c.FollowLogs(ctx, job.JobID, 1, func(l client.LogLine) { got <- l })
		if err == nil && !end.State.Terminal() {
			err = fmt.Errorf("FollowLogs returned a %s job", end.State)
		}
		done <- err
	}()
	want := int64(2)
	for want <= 3 {
		l := <-got
		if l.N != want {
			t.Fatalf("line %d, want %d", l.N, want)
		}
		want++
	}
	if _, err := c.AppendLogs(ctx, job.JobID, "line 4"); err != nil {
		t.Fatal(err)
	}
	if l := <-got; l.N != 4 || l.Text != "line 4" {
		t.Fatalf("live line %+v", l)
	}
	st := client.Succeeded
	if _, err := c.Report(ctx, job.JobID, client.Report{State: &st, Log: []string{"line 5"}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(got)
	var rest []int64
	for l := range got {
		rest = append(rest, l.N)
	}
	if len(rest) != 1 || rest[0] != 5 {
		t.Fatalf("lines after the live one: %v, want [5]", rest)
	}
}
