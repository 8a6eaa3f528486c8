package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// syncBuffer is a bytes.Buffer a test reads while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchLogsPlain: `watch --logs` off a terminal prints the newest
// --tail kept lines, then each new line as it comes between the job's
// status lines, every line before the job's last line, and exits 0 when
// the job succeeds.
func TestWatchLogsPlain(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendLogs(t.Context(), job.JobID, "a1", "a2", "a3", "a4", "a5"); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- followJob(t.Context(), c, job.JobID, &out, watchOptions{logs: true, tail: 2, errOut: &errOut})
	}()
	waitFor(t, &out, "5 log a5\n")
	p := 0.5
	if _, err := c.Report(t.Context(), job.JobID, client.Report{Progress: &p, Log: []string{"b6"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, "6 log b6\n")
	if _, err := c.AppendLogs(t.Context(), job.JobID, "b7 \x1b[2J"); err != nil {
		t.Fatal(err)
	}
	st := client.Succeeded
	if _, err := c.Report(t.Context(), job.JobID, client.Report{State: &st, Log: []string{"last"}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("watch --logs: %v (stderr %q)", err, errOut.String())
	}
	got := out.String()
	var logLines []string
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if _, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
			logLines = append(logLines, l)
		}
	}
	want := []string{"4 log a4", "5 log a5", "6 log b6", `7 log b7 \u001b[2J`, "8 log last"}
	if strings.Join(logLines, "|") != strings.Join(want, "|") {
		t.Errorf("log lines %q, want %q; output:\n%s", logLines, want, got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "job "+job.JobID+" succeeded in ") || !strings.Contains(got, "running    50%") {
		t.Errorf("output does not end with the outcome, or lacks the 50%% line:\n%s", got)
	}
	if errOut.String() != "" {
		t.Errorf("stderr: %q", errOut.String())
	}
}

// TestWatchLogsRefusesABadTail: --tail outside 1–100 is refused before
// anything is asked of the server.
func TestWatchLogsRefusesABadTail(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"0", "101"} {
		_, errOut, code := run(t, "watch", "--server", "http://127.0.0.1:1", "j", "--logs", "--tail", n)
		if code != 2 || !strings.Contains(errOut, "--tail "+n+": give a number of lines from 1 to 100") {
			t.Errorf("--tail %s: exit %d, stderr %q", n, code, errOut)
		}
	}
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output after 20 s:\n%s", s, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLogBarViewRedrawsInPlace plays the terminal's part: the escapes the
// view writes, applied to a screen, leave the bar on one line with the
// newest lines under it (cut to the width, escaped) and the outcome last,
// however many times it redrew — nothing scrolled, nothing left over.
func TestLogBarViewRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	v := newLogBarView(&out, 3, 40)
	running := client.Snapshot{JobID: "j1", State: client.Running, Progress: 0.5, Stage: "encode"}
	v.update(running)
	for i := 1; i <= 5+5; i++ {
		v.log(client.LogLine{N: int64(i), Stream: "stdout", Text: fmt.Sprintf("line %d", i)})
		time.Sleep(logRedrawEvery / 2) // some redraws now, some by the timer
	}
	v.log(client.LogLine{N: 11, Stream: "stderr", Stage: "encode", Text: "a very long line \x1b[31m that cannot fit in forty columns"})
	end := running
	end.State, end.Progress = client.Succeeded, 1
	v.done(end)

	screen := playTerminal(t, out.String())
	want := []string{
		"100% |██████████████████████████████| …",
		"9 stdout line 9",
		"10 stdout line 10",
		`11 stderr [encode] a very long line \u…`,
		"job j1 succeeded",
	}
	if strings.Join(screen, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(screen, "\n"), strings.Join(want, "\n"))
	}
	if ups := strings.Count(out.String(), "A\r\x1b[K"); ups < 2 {
		t.Errorf("the block was redrawn in place %d times, want at least 2", ups)
	}
}

// playTerminal applies what the view writes (text, \r, \n, ESC[K, ESC[nA)
// to a screen and returns its lines.
func playTerminal(t *testing.T, s string) []string {
	t.Helper()
	var screen [][]rune
	row, col := 0, 0
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		for len(screen) <= row {
			screen = append(screen, nil)
		}
		switch r := rs[i]; {
		case r == '\r':
			col = 0
		case r == '\n':
			row, col = row+1, 0
		case r == 0x1b:
			j := i + 2
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(string(rs[i+2 : j]))
			switch {
			case rs[i+1] != '[' || j == len(rs):
				t.Fatalf("unexpected escape at %d in %q", i, s)
			case rs[j] == 'K':
				screen[row] = screen[row][:min(col, len(screen[row]))]
			case rs[j] == 'A':
				row -= n
				if row < 0 {
					t.Fatalf("the cursor went above the first line")
				}
			default:
				t.Fatalf("unexpected escape %q", string(rs[i:j+1]))
			}
			i = j
		default:
			for len(screen[row]) <= col {
				screen[row] = append(screen[row], ' ')
			}
			screen[row][col] = r
			col++
		}
	}
	var lines []string
	for _, l := range screen {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
