package orchestrator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/node/nodetest"
	"github.com/progressd/progressd/internal/progress"
)

// TestStageOutputBecomesLogLines: stdout lines that are not progress and
// every stderr line are kept as the job's log lines, in order per stream,
// with their stage; progress lines are not; a 10 MB line without a newline
// neither stalls the stage nor is kept whole (it is cut to 4 KiB with …).
func TestStageOutputBecomesLogLines(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  chatty:
    stages:
      - name: fetch
        run: ["sh", "-c", "echo 'hello'; echo 'fetching 50%'; echo 'oops' >&2; echo 'world'"]
      - name: encode
        run: ["sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' a; echo; echo after; head -c 10000000 /dev/zero | tr '\\0' b >&2"]
`})
	snap := s.Create(t, "p", "chatty", nil)
	done := s.WaitTerminal(t, snap.JobID, 60*time.Second)
	if done.State != progress.Succeeded {
		t.Fatalf("job %s: %v", done.State, done.Error)
	}
	p, err := s.Jobs.Logs(t.Context(), snap.JobID, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr []string
	for i, l := range p.Lines {
		if l.N != int64(i+1) {
			t.Fatalf("line %d has n %d", i, l.N)
		}
		text := l.Text
		if len(text) > 20 {
			if len(text) > progress.MaxLogLineBytes || !strings.HasSuffix(text, "…") {
				t.Fatalf("a 10 MB line kept as %d bytes", len(text))
			}
			text = text[:1] + "…"
		}
		entry := l.Stage + ":" + text
		switch l.Stream {
		case progress.StreamStdout:
			stdout = append(stdout, entry)
		case progress.StreamStderr:
			stderr = append(stderr, entry)
		default:
			t.Fatalf("stream %q", l.Stream)
		}
	}
	if got, want := strings.Join(stdout, " "), "fetch:hello fetch:world encode:a… encode:after"; got != want {
		t.Errorf("stdout lines %q, want %q", got, want)
	}
	if got, want := strings.Join(stderr, " "), "fetch:oops encode:b…"; got != want {
		t.Errorf("stderr lines %q, want %q", got, want)
	}
}
