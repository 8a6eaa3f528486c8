package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// runIn runs the CLI in-process with stdin and returns stdout, stderr
// and exit status.
func runIn(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	root := testRoot()
	var out, errOut bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(&errOut, errorText(err))
		return out.String(), errOut.String(), exitCode(err)
	}
	return out.String(), errOut.String(), 0
}

// TestReportStdin: `report --stdin` sends JSON lines, each with its job
// (or JOB), in order; a line that is not a report or that the server
// refuses is named on stderr with its line number, the others are
// applied, and the command exits 2.
func TestReportStdin(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&in, `{"job_id":%q,"progress":%v}`+"\n", a.JobID, float64(i)/2500)
	}
	fmt.Fprintf(&in, `{"progress":0.5,"message":"to JOB"}`+"\n")
	fmt.Fprintf(&in, `{"job_id":%q,"state":"succeeded"}`+"\n", a.JobID)
	out, errOut, code := runIn(t, strings.NewReader(in.String()), "report", b.JobID, "--stdin", "--server", s.URL)
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if g, _ := c.Get(t.Context(), a.JobID); g.State != client.Succeeded || g.Seq != a.Seq+2501 {
		t.Fatalf("a: %s at seq %d, want succeeded at %d", g.State, g.Seq, a.Seq+2501)
	}
	if g, _ := c.Get(t.Context(), b.JobID); g.Progress != 0.5 || g.Message != "to JOB" {
		t.Fatalf("b: progress %v message %q", g.Progress, g.Message)
	}

	bad := fmt.Sprintf("%s\nnot json\n%s\n%s\n\n%s\n",
		`{"job_id":"no-such-job","progress":0.1}`,
		fmt.Sprintf(`{"job_id":%q,"progress":0.9}`, a.JobID),
		`{"progres":0.1}`,
		fmt.Sprintf(`{"job_id":%q,"progress":0.75}`, b.JobID))
	out, errOut, code = runIn(t, strings.NewReader(bad), "report", "--stdin", "--json", "--server", s.URL)
	if code != 2 {
		t.Fatalf("bad lines: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"line 1: job no-such-job: not_found", "line 2: job : not a report", "line 3: job " + a.JobID + ": job_finished", "line 4: job : not a report", "4 reports were refused"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 5 || !strings.Contains(lines[4], `"line":6`) || !strings.Contains(lines[4], `"seq"`) {
		t.Errorf("--json printed %q, want 5 outcomes, the last line 6's seq", out)
	}
	if g, _ := c.Get(t.Context(), b.JobID); g.Progress != 0.75 {
		t.Fatalf("the good line after the bad ones was not applied: b at %v", g.Progress)
	}
	if _, errOut, code = runIn(t, strings.NewReader(""), "report", "--stdin", "--progress", "0.5", "--server", s.URL); code != 2 || !strings.Contains(errOut, "--progress cannot go with --stdin") {
		t.Fatalf("--stdin with a flag: exit %d, %q", code, errOut)
	}
}
