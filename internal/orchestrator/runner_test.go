package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/node/nodetest"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// processGone reports whether pid has exited (a zombie nobody reaped yet
// counts as gone: it runs nothing).
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(data, ')')
	fields := strings.Fields(string(data[i+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testsvc.Eventually(t, 10*time.Second, "pid file "+path, func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 0
	})
	return pid
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPipelineReportsWhatItsCommandsPrint(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  weighted:
    stages:
      - name: fetch
        run: ["sh", "-c", "echo 'fetching 50%'; sleep 0.1; echo 'noise without numbers'; sleep 0.1"]
      - name: encode
        weight: 3
        run: ["sh", "-c", "echo '{\"current\": 1, \"total\": 4, \"message\": \"a quarter\"}'; sleep 0.1; printf 'frame 2/4\\r'; sleep 0.1; echo '{\"progress\": 0.75}'; sleep 0.1"]
`})
	snap := s.Create(t, "p", "weighted", nil)
	rec := s.Record(t, snap.JobID)
	done := s.WaitTerminal(t, snap.JobID, 20*time.Second)
	if done.State != progress.Succeeded || done.Progress != 1 {
		t.Fatalf("got %s at %v, error %v; want succeeded at 1", done.State, done.Progress, done.Error)
	}

	// Each value the commands printed shows up, with the weights applied:
	// fetch counts 1/4 of the job, encode 3/4.
	want := []struct {
		stage    string
		overall  float64
		cur, tot float64
		message  string
	}{
		{"fetch", 0.5 * 0.25, 0, 0, "fetching 50%"},
		{"encode", 0.25 + 0.75*0.25, 1, 4, "a quarter"},
		{"encode", 0.25 + 0.75*0.5, 2, 4, "frame 2/4"},
		{"encode", 0.25 + 0.75*0.75, 0, 0, ""},
	}
	snaps := rec.Snapshots()
	for _, w := range want {
		found := false
		for _, got := range snaps {
			if got.Stage != w.stage || !near(got.Progress, w.overall) {
				continue
			}
			if w.tot > 0 && (got.Current == nil || got.Total == nil || *got.Current != w.cur || *got.Total != w.tot) {
				continue
			}
			if w.message != "" && got.Message != w.message {
				continue
			}
			found = true
		}
		if !found {
			t.Errorf("no snapshot with stage %s, progress %v, %v/%v, message %q; saw:\n%s", w.stage, w.overall, w.cur, w.tot, w.message, dump(snaps))
		}
	}
	for i := 1; i < len(snaps); i++ {
		if snaps[i].Progress < snaps[i-1].Progress {
			t.Fatalf("progress went down from %v to %v", snaps[i-1].Progress, snaps[i].Progress)
		}
	}
}

func dump(snaps []progress.Snapshot) string {
	var b strings.Builder
	for _, s := range snaps {
		fmt.Fprintf(&b, "  seq %d %s stage=%s progress=%.4f message=%q\n", s.Seq, s.State, s.Stage, s.Progress, s.Message)
	}
	return b.String()
}

func TestFailingStageFailsTheJob(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  broken:
    stages:
      - name: fetch
        run: ["true"]
      - name: encode
        run: ["sh", "-c", "echo 40%; echo 'warming up' >&2; echo 'encoder: disk full' >&2; exit 3"]
      - name: upload
        run: ["sh", "-c", "echo never runs; exit 1"]
`})
	snap := s.Create(t, "p", "broken", nil)
	done := s.WaitTerminal(t, snap.JobID, 20*time.Second)
	if done.State != progress.Failed || done.Error == nil {
		t.Fatalf("got %s, error %v; want failed", done.State, done.Error)
	}
	for _, want := range []string{"stage encode", "exit status 3", "encoder: disk full"} {
		if !strings.Contains(*done.Error, want) {
			t.Errorf("error %q does not mention %q", *done.Error, want)
		}
	}
	if strings.Contains(*done.Error, "warming up") {
		t.Errorf("error %q should hold only the last stderr line", *done.Error)
	}
	// fetch done, encode at 40%: 1/3 + 0.4/3 of the job; failing keeps it.
	if !near(done.Progress, 1.4/3) {
		t.Errorf("progress %v, want %v kept from before the failure", done.Progress, 1.4/3)
	}
	if done.Stages[1].State != progress.Failed || done.Stages[2].State != progress.Queued {
		t.Errorf("stages %+v: want encode failed and upload still queued", done.Stages)
	}
}

func TestCommandThatCannotStartFailsTheJob(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  missing:
    stages:
      - name: fetch
        run: ["/nonexistent/progressd-test-tool", "x"]
`})
	done := s.WaitTerminal(t, s.Create(t, "p", "missing", nil).JobID, 20*time.Second)
	if done.State != progress.Failed || !strings.Contains(*done.Error, "stage fetch could not start") {
		t.Fatalf("got %s, error %v", done.State, done.Error)
	}
}

func TestCancelKillsTheWholeProcessTree(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script string
	}{
		// sh and its child both die of SIGTERM.
		{"term", `sleep 300 & echo $! > "$1"; echo 10%; wait`},
		// Both ignore SIGTERM (ignored signals survive exec): SIGKILL
		// after the grace period ends them.
		{"ignores-term", `trap "" TERM; sleep 300 & echo $! > "$1"; echo 10%; wait; wait`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := nodetest.Start(t, nodetest.Options{KillGrace: 300 * time.Millisecond, Pipelines: fmt.Sprintf(`
pipelines:
  tree:
    params: [pidfile]
    stages:
      - name: work
        run: ["sh", "-c", %q, "sh", "{{pidfile}}"]
`, tc.script)})
			pidfile := filepath.Join(dir, "child.pid")
			snap := s.Create(t, "p", "tree", map[string]string{"pidfile": pidfile})
			child := readPID(t, pidfile)
			s.Wait(t, snap.JobID, 10*time.Second, "at 10%", func(s progress.Snapshot) bool { return s.Progress >= 0.1 })

			start := time.Now()
			if _, err := s.Jobs.Cancel(context.Background(), snap.JobID, "test cancel"); err != nil {
				t.Fatal(err)
			}
			testsvc.Eventually(t, 10*time.Second, fmt.Sprintf("child %d to die", child), func() bool { return processGone(child) })
			testsvc.Eventually(t, 10*time.Second, "the worker to return", func() bool { return s.Orch.Running() == 0 })
			t.Logf("child gone and worker free %s after cancel", time.Since(start).Round(time.Millisecond))
			done, _ := s.Jobs.Get(context.Background(), snap.JobID)
			if done.State != progress.Canceled || *done.Error != "test cancel" {
				t.Fatalf("got %s, error %v", done.State, done.Error)
			}
		})
	}
}

func TestStageLeavesNoBackgroundProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  leaky:
    params: [pidfile]
    stages:
      - name: work
        run: ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $! > \"$1\"; echo started", "sh", "{{pidfile}}"]
`})
	pidfile := filepath.Join(dir, "bg.pid")
	snap := s.Create(t, "p", "leaky", map[string]string{"pidfile": pidfile})
	child := readPID(t, pidfile)
	if done := s.WaitTerminal(t, snap.JobID, 20*time.Second); done.State != progress.Succeeded {
		t.Fatalf("got %s, error %v", done.State, done.Error)
	}
	testsvc.Eventually(t, 5*time.Second, "the background child to be killed", func() bool { return processGone(child) })
}

func TestStageTimeout(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{KillGrace: 200 * time.Millisecond, Pipelines: `
pipelines:
  slow:
    stages:
      - name: encode
        timeout: 300ms
        run: ["sh", "-c", "echo 5%; sleep 300"]
`})
	snap := s.Create(t, "p", "slow", nil)
	start := time.Now()
	done := s.WaitTerminal(t, snap.JobID, 20*time.Second)
	if done.State != progress.Failed || *done.Error != "stage encode timed out after 300ms" {
		t.Fatalf("got %s, error %v", done.State, done.Error)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timeout took %s to fail the job", took)
	}
}

func TestRetriesStopAtTheLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  flaky:
    params: [counter, succeed_on]
    max_attempts: 3
    stages:
      - name: prepare
        run: ["true"]
      - name: work
        run: ["sh", "-c", "n=$(cat \"$1\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$1\"; echo 50%; [ $n -ge $2 ] || { echo \"try $n failed\" >&2; exit 1; }", "sh", "{{counter}}", "{{succeed_on}}"]
`})
	t.Run("gives-up", func(t *testing.T) {
		counter := filepath.Join(dir, "gives-up")
		snap := s.Create(t, "p", "flaky", map[string]string{"counter": counter, "succeed_on": "99"})
		rec := s.Record(t, snap.JobID)
		done := s.WaitTerminal(t, snap.JobID, 30*time.Second)
		if done.State != progress.Failed {
			t.Fatalf("got %s, error %v", done.State, done.Error)
		}
		for _, want := range []string{"stage work", "exit status 1", "try 3 failed", "attempt 3 of 3"} {
			if !strings.Contains(*done.Error, want) {
				t.Errorf("error %q does not mention %q", *done.Error, want)
			}
		}
		if n, _ := os.ReadFile(counter); strings.TrimSpace(string(n)) != "3" {
			t.Errorf("the stage ran %q times, want 3", n)
		}
		msgs := strings.Join(rec.Messages(), "\n")
		for _, want := range []string{"attempt 1 of 3 failed", "attempt 2 of 3", "attempt 3 of 3"} {
			if !strings.Contains(msgs, want) {
				t.Errorf("messages do not mention %q:\n%s", want, msgs)
			}
		}
		if snap.Attempt != 1 || snap.MaxAttempts != 3 {
			t.Errorf("created with attempt %d of %d, want 1 of 3", snap.Attempt, snap.MaxAttempts)
		}
		if done.Attempt != 3 || done.MaxAttempts != 3 || done.RetryAt != nil {
			t.Errorf("ended at attempt %d of %d, retry_at %v; want 3 of 3 and no retry_at", done.Attempt, done.MaxAttempts, done.RetryAt)
		}
		checkAttempts(t, rec.Snapshots(), 3)
	})
	t.Run("succeeds-on-retry", func(t *testing.T) {
		counter := filepath.Join(dir, "succeeds")
		snap := s.Create(t, "p", "flaky", map[string]string{"counter": counter, "succeed_on": "2"})
		rec := s.Record(t, snap.JobID)
		done := s.WaitTerminal(t, snap.JobID, 30*time.Second)
		if done.State != progress.Succeeded || done.Error != nil {
			t.Fatalf("got %s, error %v", done.State, done.Error)
		}
		if n, _ := os.ReadFile(counter); strings.TrimSpace(string(n)) != "2" {
			t.Errorf("the stage ran %q times, want 2", n)
		}
		checkAttempts(t, rec.Snapshots(), 2)
		if done.Attempt != 2 || done.RetryAt != nil {
			t.Errorf("succeeded at attempt %d, retry_at %v; want 2 and none", done.Attempt, done.RetryAt)
		}
	})
}

// checkAttempts checks what a subscriber saw of a job whose attempts
// 1…last-1 failed: the bar never went back; attempts only went up; each
// failed attempt was followed by a wait with retry_at and the failure in
// error while the job stayed running, cleared when the next attempt began.
func checkAttempts(t *testing.T, snaps []progress.Snapshot, last int) {
	t.Helper()
	waited := map[int]bool{}
	for i, s := range snaps {
		if i > 0 && s.Progress < snaps[i-1].Progress {
			t.Fatalf("progress went down on retry:\n%s", dump(snaps))
		}
		if i > 0 && s.Attempt < snaps[i-1].Attempt {
			t.Fatalf("attempt went down (%d after %d):\n%s", s.Attempt, snaps[i-1].Attempt, dump(snaps))
		}
		if s.MaxAttempts != 3 {
			t.Fatalf("snapshot %d: max_attempts %d, want 3", s.Seq, s.MaxAttempts)
		}
		if s.RetryAt != nil {
			if s.State != progress.Running || s.Error == nil || !strings.Contains(*s.Error, "exit status 1") {
				t.Fatalf("waiting for a retry: state %s, error %v; want running with the failure", s.State, s.Error)
			}
			if !s.RetryAt.After(s.UpdatedAt.Add(-time.Second)) {
				t.Fatalf("retry_at %s is before the failure at %s", s.RetryAt, s.UpdatedAt)
			}
			waited[s.Attempt] = true
		} else if s.State == progress.Running && s.Error != nil {
			t.Fatalf("running with error %q but no retry_at", *s.Error)
		}
	}
	for n := 1; n < last; n++ {
		if !waited[n] {
			t.Errorf("no snapshot showed the wait for a retry after attempt %d:\n%s", n, dump(snaps))
		}
	}
}

func TestParamsReachArgvLiterally(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  echo:
    params: [value, out]
    stages:
      - name: write
        run: ["sh", "-c", "printf '%s' \"$1\" > \"$2\"", "sh", "{{value}}", "{{out}}"]
`})
	for i, value := range []string{
		"x; touch " + pwned,
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"a\"b'c\\d",
		"line one\nline two; touch " + pwned,
		"{{out}}",
		"&& touch " + pwned + " || true",
		"-n",
		"",
	} {
		out := filepath.Join(dir, fmt.Sprintf("out-%d", i))
		snap := s.Create(t, "p", "echo", map[string]string{"value": value, "out": out})
		if done := s.WaitTerminal(t, snap.JobID, 20*time.Second); done.State != progress.Succeeded {
			t.Fatalf("value %q: got %s, error %v", value, done.State, done.Error)
		}
		got, err := os.ReadFile(out)
		if err != nil || string(got) != value {
			t.Errorf("value %q reached the command as %q (%v)", value, got, err)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a param value was run as a command")
	}
}

func TestWorkersBoundConcurrency(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Workers: 2, Pipelines: `
pipelines:
  nap:
    stages:
      - name: nap
        run: ["sleep", "1.5"]
`})
	// Each nap is long enough that two running at once are seen even when a
	// loaded machine polls Running() seldom; four jobs keep the test short.
	var ids []string
	for range 4 {
		ids = append(ids, s.Create(t, "p", "nap", nil).JobID)
	}
	most := 0
	testsvc.Eventually(t, 30*time.Second, "all jobs to finish", func() bool {
		most = max(most, s.Orch.Running())
		for _, id := range ids {
			if snap, _ := s.Jobs.Get(context.Background(), id); !snap.State.Terminal() {
				return false
			}
		}
		return true
	})
	if most > 2 {
		t.Fatalf("%d jobs ran at once with 2 workers", most)
	}
	if most < 2 {
		t.Errorf("at most %d job ran at once; want 2 to overlap", most)
	}
}

func TestCancelWhileQueuedNeverRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := nodetest.Start(t, nodetest.Options{Workers: 1, Pipelines: `
pipelines:
  mark:
    params: [file, nap]
    stages:
      - name: mark
        run: ["sh", "-c", "touch \"$1\"; sleep \"$2\"", "sh", "{{file}}", "{{nap}}"]
`})
	first := s.Create(t, "p", "mark", map[string]string{"file": filepath.Join(dir, "first"), "nap": "0.5"})
	second := filepath.Join(dir, "second")
	queued := s.Create(t, "p", "mark", map[string]string{"file": second, "nap": "0"})
	if _, err := s.Jobs.Cancel(context.Background(), queued.JobID, ""); err != nil {
		t.Fatal(err)
	}
	s.WaitTerminal(t, first.JobID, 20*time.Second)
	third := s.Create(t, "p", "mark", map[string]string{"file": filepath.Join(dir, "third"), "nap": "0"})
	s.WaitTerminal(t, third.JobID, 20*time.Second) // the queue is past the canceled job
	if _, err := os.Stat(second); err == nil {
		t.Fatal("a job canceled while queued ran")
	}
}

func TestCreateValidatesPipelineAndParams(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  thumb:
    params: [input]
    stages:
      - name: fetch
        run: ["true", "{{input}}"]
`})
	for _, tc := range []struct {
		pipeline string
		params   map[string]string
		code     string
	}{
		{"nope", nil, jobs.CodeUnknownPipeline},
		{"thumb", nil, jobs.CodeInvalidParam},
		{"thumb", map[string]string{"input": "a", "extra": "b"}, jobs.CodeInvalidParam},
	} {
		_, err := s.Jobs.Create(context.Background(), "local", jobs.CreateRequest{Project: "p", Pipeline: tc.pipeline, Params: tc.params})
		var pe *progress.Error
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s %v: got %v, want code %s", tc.pipeline, tc.params, err, tc.code)
		}
	}
	snap := s.Create(t, "p", "thumb", map[string]string{"input": "a"})
	if len(snap.Stages) != 1 || snap.Stages[0].Name != "fetch" {
		t.Fatalf("stages %+v", snap.Stages)
	}
}

func TestChattyCommandIsCoalesced(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: `
pipelines:
  chatty:
    stages:
      - name: spam
        run: ["sh", "-c", "i=1; while [ $i -le 20000 ]; do echo \"$i/20000\"; i=$((i+1)); done"]
      - name: after
        run: ["true"]
`})
	snap := s.Create(t, "p", "chatty", nil)
	rec := s.Record(t, snap.JobID)
	start := time.Now()
	if done := s.WaitTerminal(t, snap.JobID, 60*time.Second); done.State != progress.Succeeded {
		t.Fatalf("got %s, error %v", done.State, done.Error)
	}
	took := time.Since(start)
	snaps := rec.Snapshots()
	// About 100 reports a second at most, plus the few of each stage's
	// start and end.
	if limit := int(took.Seconds()*150) + 10; len(snaps) > limit {
		t.Errorf("%d snapshots in %s for 20000 lines; want at most %d", len(snaps), took, limit)
	}
	last := false
	for _, s := range snaps {
		if s.Stage == "spam" && s.Current != nil && *s.Current == 20000 {
			last = true
		}
	}
	if !last {
		t.Errorf("the last line (20000/20000) was merged away:\n%s", dump(snaps))
	}
	t.Logf("%d snapshots for 20000 lines in %s", len(snaps), took.Round(time.Millisecond))
}

func TestJobEndedElsewhereStopsItsCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := nodetest.Start(t, nodetest.Options{KillGrace: 200 * time.Millisecond, Pipelines: `
pipelines:
  quiet:
    params: [pidfile]
    stages:
      - name: wait
        run: ["sh", "-c", "sleep 300 & echo $! > \"$1\"; wait", "sh", "{{pidfile}}"]
`})
	pidfile := filepath.Join(dir, "pid")
	snap := s.Create(t, "p", "quiet", map[string]string{"pidfile": pidfile})
	child := readPID(t, pidfile)
	s.Wait(t, snap.JobID, 10*time.Second, "running", func(s progress.Snapshot) bool { return s.State == progress.Running })
	// A worker (or another node) marks the job failed over the API; the
	// command prints nothing, so only the watch can notice.
	msg := "given up by the operator"
	if _, err := s.Jobs.Report(context.Background(), snap.JobID, progress.Report{State: ptr(progress.Failed), Error: &msg}); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the command to be stopped", func() bool { return processGone(child) && s.Orch.Running() == 0 })
	done, _ := s.Jobs.Get(context.Background(), snap.JobID)
	if done.State != progress.Failed || *done.Error != msg {
		t.Fatalf("got %s, error %v", done.State, done.Error)
	}
}

// TestCommandEnvironment is not parallel: it sets the process environment.
// A stage gets the PROGRESSD_ variables the orchestrator sets for it and
// none of the server's own (its database and Redis URLs carry passwords),
// and the rest of the environment unchanged.
func TestCommandEnvironment(t *testing.T) {
	for k, v := range map[string]string{
		"PROGRESSD_AUTH_SECRET": "do-not-leak", "PROGRESSD_AUTH_SECRET_FILE": "/do/not/leak",
		"PROGRESSD_DB": "postgres://u:do-not-leak@127.0.0.1:5432/x", "PROGRESSD_REDIS": "redis://:do-not-leak@127.0.0.1:6379/0",
		"PROGRESSD_ANYTHING_ELSE": "do-not-leak", "PROGRESSD_TOKEN": "the server's own, do-not-leak",
		"SEC_TEST_KEPT": "kept",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	s := nodetest.Start(t, nodetest.Options{AuthSecret: "command-env-secret-0123456789", Pipelines: `
pipelines:
  env:
    params: [out]
    stages:
      - name: show
        run: ["sh", "-c", "printf '%s|%s|%s|%s\\n' \"$PROGRESSD_JOB_ID\" \"$PROGRESSD_STAGE\" \"$PROGRESSD_ATTEMPT\" \"$SEC_TEST_KEPT\" > \"$1\"; env | grep '^PROGRESSD_' | cut -d= -f1 | sort >> \"$1\"; env | grep -c do-not-leak >> \"$1\"", "sh", "{{out}}"]
`})
	out := filepath.Join(dir, "env")
	snap := s.Create(t, "p", "env", map[string]string{"out": out})
	s.WaitTerminal(t, snap.JobID, 20*time.Second)
	got, _ := os.ReadFile(out)
	want := snap.JobID + "|show|1|kept\n" +
		"PROGRESSD_ATTEMPT\nPROGRESSD_JOB_ID\nPROGRESSD_SERVER\nPROGRESSD_STAGE\nPROGRESSD_TOKEN\n" +
		"0\n" // no value of the server's environment reached the command
	if string(got) != want {
		t.Fatalf("the command saw\n%s\nwant\n%s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }
