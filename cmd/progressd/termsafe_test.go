package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
	"github.com/progressd/progressd/internal/progress"
)

func TestTermSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"frame 420/1200":                 "frame 420/1200",
		"café 日本 ✓ 🚀":                    "café 日本 ✓ 🚀",
		"\x1b]0;pwned\x07":               "\\u001b]0;pwned\\u0007", // retitle the window
		"\x1b[2J\x1b[H":                  "\\u001b[2J\\u001b[H",    // clear the screen
		"50%\rjob x succeeded":           "50%\\rjob x succeeded",  // overwrite the line
		"a\nb\tc":                        "a\\nb\\tc",
		"del\x7f":                        "del\\u007f",
		"c1 \u009b31m":                   "c1 \\u009b31m", // CSI as one character
		"raw \x9b31m":                    "raw \\x9b31m",  // CSI as one byte
		"bidi \u202egnp.exe":             "bidi \\u202egnp.exe",
		"isolate \u2066x\u2069":          "isolate \\u2066x\\u2069",
		"":                               "",
		"\x00":                           "\\u0000",
		"ok \U0001F600 then \x1b[31mred": "ok \U0001F600 then \\u001b[31mred",
	} {
		got := termSafe(in)
		if got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
		checkPrintable(t, "termSafe("+strings.ToValidUTF8(in, "?")+")", got)
	}
	// JSON passed through stays JSON, with the same value.
	msg := "\x1b[2J\u009b\u202e\n\"quoted\""
	data, _ := json.Marshal(map[string]string{"message": msg})
	var back map[string]string
	if err := json.Unmarshal([]byte(termSafe(string(data))), &back); err != nil || back["message"] != msg {
		t.Errorf("JSON through termSafe: %v, %q", err, back["message"])
	}
}

// checkPrintable fails if s holds anything a terminal acts on, line breaks
// aside.
func checkPrintable(t *testing.T, what, s string) {
	t.Helper()
	for i, r := range s {
		if r == '\n' {
			continue
		}
		if unsafeRune(r, utf8.RuneLen(r)) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			t.Errorf("%s: %q at byte %d of %q", what, r, i, s)
			return
		}
	}
}

// TestWatchEscapesJobData: a job whose message and error
// carry terminal control sequences cannot drive the terminal of someone
// watching it, on stdout or stderr; the text stays readable, escaped.
func TestWatchEscapesJobData(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	evilStage := "encode" // the server refuses control characters in stage names and projects
	job, err := c.Create(ctx, client.CreateRequest{Project: "p", Stages: []client.StageSpec{{Name: evilStage}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := "\x1b]0;pwned\x07\x1b[2J\x1b[H\rjob " + job.JobID + " succeeded\u009b31m\u202e"
	errText := "boom\x1b[1A\x1b[2K\njob " + job.JobID + " succeeded"
	failed := progress.Failed
	for _, r := range []client.Report{
		{Stage: &evilStage, Progress: ptrTo(0.5), Message: &msg},
		{State: &failed, Error: &errText},
	} {
		if _, err := c.Report(ctx, job.JobID, r); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := run(t, "watch", "--plain", "--server", s.URL, job.JobID)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (failed)\nstdout %q\nstderr %q", code, out, errOut)
	}
	checkPrintable(t, "stdout", out)
	checkPrintable(t, "stderr", errOut)
	for _, want := range []string{`encode (1/1)`, `\u001b]0;pwned\u0007`, `\rjob ` + job.JobID + ` succeeded\u009b31m\u202e`, `boom\u001b[1A\u001b[2K\njob`} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("output lacks the escaped text %q:\n%s\n%s", want, out, errOut)
		}
	}
	for _, l := range strings.Split(out+errOut, "\n") {
		if strings.HasPrefix(l, "job "+job.JobID+" succeeded") {
			t.Errorf("a fake line made it out: %q", l)
		}
	}

	// report --json prints the server's snapshot: escaped, still JSON.
	other, err := c.Create(ctx, client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "report", other.JobID, "--server", s.URL, "--json", "--message", "\u009b2J\u202e")
	var snap client.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); code != 0 || err != nil || snap.Message != "\u009b2J\u202e" {
		t.Fatalf("report --json: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
	}
	checkPrintable(t, "report --json", out)
}

func ptrTo[T any](v T) *T { return &v }

func TestChildrenSummary(t *testing.T) {
	for _, tc := range []struct {
		s    client.Snapshot
		want string
	}{
		{client.Snapshot{}, ""},
		{client.Snapshot{ExpectedChildren: 200, Children: &client.Children{Total: 190, Succeeded: 179, Failed: 3, Running: 8}}, "182/200 done · 3 failed"},
		{client.Snapshot{Children: &client.Children{Total: 4, Succeeded: 2, Canceled: 1, Queued: 1}}, "3/4 done · 1 canceled"},
	} {
		if got := childrenSummary(tc.s); got != tc.want {
			t.Errorf("childrenSummary(%+v) = %q, want %q", tc.s.Children, got, tc.want)
		}
	}
	s := client.Snapshot{JobID: "j", State: client.Running, Progress: 0.5,
		ExpectedChildren: 200, Children: &client.Children{Total: 200, Succeeded: 182, Failed: 3}}
	if got := describeJob(s); got != "185/200 done · 3 failed" {
		t.Errorf("describeJob of a parent = %q", got)
	}
}

// FuzzTermSafe: whatever a job says, what the CLI prints of it drives no
// terminal, and text with nothing to escape is printed as it is.
func FuzzTermSafe(f *testing.F) {
	for _, s := range []string{"", "frame 1/2", "\x1b]0;t\x07", "\xc2\x9b2J", "\x9b", "\u202e", "a\r\nb", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := termSafe(s)
		checkPrintable(t, "termSafe", strings.ReplaceAll(out, "\n", ""))
		if strings.Contains(out, "\n") {
			t.Fatalf("termSafe(%q) kept a line break: %q", s, out)
		}
		clean := utf8.ValidString(s)
		for _, r := range s {
			clean = clean && !unsafeRune(r, utf8.RuneLen(r))
		}
		if clean && out != s {
			t.Fatalf("termSafe(%q) = %q, but there was nothing to escape", s, out)
		}
	})
}

// TestDescribeAttemptsAndStalls: watch says which attempt runs, when the
// next starts, and that a job stalled.
func TestDescribeAttemptsAndStalls(t *testing.T) {
	retry := progress.At(time.Now().Add(90 * time.Second))
	s := client.Snapshot{State: client.Running, Attempt: 1, MaxAttempts: 3, RetryAt: &retry}
	if got := describeJob(s); !strings.HasPrefix(got, "attempt 1 of 3 · retrying in 1m") {
		t.Errorf("waiting for a retry: %q", got)
	}
	s = client.Snapshot{State: client.Running, Attempt: 1, MaxAttempts: 1, Stalled: true, UpdatedAt: progress.At(time.Now().Add(-2 * time.Minute))}
	if got := describeJob(s); !strings.HasPrefix(got, "stalled: no report for 2m") {
		t.Errorf("stalled: %q", got)
	}
}
