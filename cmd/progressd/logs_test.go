package main

import (
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// TestLogsFollow: `progressd logs` prints a pipeline job's kept lines
// (its stages' output that is not progress, here stderr); -f follows a
// job until it ends, printing the lines sent meanwhile, escaped.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	out, errOut, code := run(t, "submit", "--server", s.URL, "--project", "p", "--pipeline", "broken")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	s.WaitTerminal(t, id, 20*time.Second)
	out, errOut, code = run(t, "logs", "--server", s.URL, id)
	if code != 0 || out != "1 stderr [encode] encoder: bad input\n" {
		t.Fatalf("logs: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendLogs(t.Context(), job.JobID, "one", "two \x1b[31mred"); err != nil {
		t.Fatal(err)
	}
	done := make(chan [3]string, 1)
	go func() {
		out, errOut, code := run(t, "logs", "-f", "--server", s.URL, job.JobID)
		done <- [3]string{out, errOut, string(rune('0' + code))}
	}()
	// The job ends with a last line, whether the follower is connected
	// by then or not: it prints every line either way, and exits.
	st := client.Succeeded
	if _, err := c.Report(t.Context(), job.JobID, client.Report{State: &st, Log: []string{"three"}}); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got[2] != "0" || got[0] != "1 log one\n2 log two \\u001b[31mred\n3 log three\n" {
		t.Fatalf("logs -f: exit %s, stdout %q, stderr %q", got[2], got[0], got[1])
	}
}
