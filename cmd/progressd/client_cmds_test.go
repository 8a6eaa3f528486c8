package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// asCLI makes the test binary act as the progressd command when a test
// runs it as a subprocess (or a pipeline stage runs it): the commands
// under test are then exercised as a real process, exit status included.
const asCLI = "PROGRESSD_TEST_AS_CLI"

func TestMain(m *testing.M) {
	// A pipeline stage that runs this binary gets PROGRESSD_JOB_ID: it
	// must be the CLI then too, never the tests again.
	if os.Getenv(asCLI) == "1" || os.Getenv("PROGRESSD_JOB_ID") != "" {
		if err := testRoot().Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "progressd:", err)
			os.Exit(exitCode(err))
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testRoot is the root command, as main runs it.
func testRoot() *cobra.Command { return newRoot() }

// run runs the CLI in-process and returns stdout, stderr and exit status.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runIn(t, strings.NewReader(""), args...)
}

const cliPipelines = `
pipelines:
  quick:
    params: [word]
    stages:
      - name: one
        run: ["sh", "-c", "echo 50%; sleep 0.05; echo 100%"]
      - name: two
        run: ["sh", "-c", "echo 1/2; sleep 0.05; echo \"$1 2/2\"", "sh", "{{word}}"]
  broken:
    stages:
      - name: encode
        run: ["sh", "-c", "echo 30%; echo 'encoder: bad input' >&2; exit 4"]
  forever:
    stages:
      - name: wait
        run: ["sleep", "300"]
`

func TestSubmitPrintsTheJobIDAlone(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	out, errOut, code := run(t, "submit", "--server", s.URL, "--project", "p", "--pipeline", "quick", "--param", "word=a=b; $(x)")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	id := strings.TrimSuffix(out, "\n")
	if strings.Contains(id, "\n") || uuid.Validate(id) != nil {
		t.Fatalf("stdout %q: want the job id alone", out)
	}
	snap := s.WaitTerminal(t, id, 20*time.Second)
	if snap.State != client.Succeeded || snap.Params["word"] != "a=b; $(x)" {
		t.Fatalf("job %s, params %v", snap.State, snap.Params)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pipeline", "quick"}, `"project" not set`},
		{[]string{"--project", "p", "--pipeline", "nope"}, "unknown_pipeline"},
		{[]string{"--project", "p", "--pipeline", "quick"}, "needs param word"},
		{[]string{"--project", "p", "--pipeline", "quick", "--param", "word"}, "key=value"},
		{[]string{"--project", "p", "--pipeline", "quick", "--param", "word=1", "--param", "word=2"}, "twice"},
	} {
		out, errOut, code := run(t, append([]string{"submit", "--server", s.URL}, tc.args...)...)
		if code == 0 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error saying %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestSubmitWatchAndWatchExitStatus(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})

	out, errOut, code := run(t, "submit", "--project", "p", "--pipeline", "quick", "--param", "word=hi", "--watch", "--server", s.URL)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || uuid.Validate(lines[0]) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "job "+lines[0]+" succeeded in ") {
		t.Errorf("last line %q", last)
	}
	// Intermediate snapshots may be coalesced away (write spacing); the
	// start of the job (a state change) and its last snapshot never are.
	if !strings.Contains(out, "one (1/2)") || !strings.Contains(lines[len(lines)-2], "two (2/2)") || !strings.Contains(lines[len(lines)-2], "hi 2/2") {
		t.Errorf("lines do not show the stages and messages:\n%s", out)
	}

	failed := s.Create(t, "p", "broken", nil)
	out, errOut, code = run(t, "watch", failed.JobID, "--server", s.URL) // flags after the argument
	if code != 1 || !strings.Contains(errOut, "stage encode failed: exit status 4: encoder: bad input") {
		t.Fatalf("failed job: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	forever := s.Create(t, "p", "forever", nil)
	go func() {
		s.Wait(t, forever.JobID, 10*time.Second, "running", func(s client.Snapshot) bool { return s.State == client.Running })
		_, _ = s.Jobs.Cancel(context.Background(), forever.JobID, "stopped by test")
	}()
	_, errOut, code = run(t, "watch", "--server", s.URL, forever.JobID)
	if code != 1 || !strings.Contains(errOut, "canceled: stopped by test") {
		t.Fatalf("canceled job: exit %d, stderr %q", code, errOut)
	}

	_, errOut, code = run(t, "watch", "--server", s.URL, "no-such-job")
	if code != 2 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("unknown job: exit %d, stderr %q", code, errOut)
	}
}

func TestReportFromAScript(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p", Stages: []client.StageSpec{{Name: "a"}, {Name: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "report", job.JobID, "--server", s.URL, "--stage", "b", "--progress", "0.5", "--message", "half of b")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	snap, _ := c.Get(t.Context(), job.JobID)
	if snap.Progress != 0.75 || snap.Message != "half of b" || snap.Stage != "b" {
		t.Fatalf("after report: progress %v, stage %q, message %q", snap.Progress, snap.Stage, snap.Message)
	}
	out, _, code = run(t, "report", job.JobID, "--server", s.URL, "--current", "3", "--total", "4", "--json")
	if code != 0 || !strings.Contains(out, `"current":3`) {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if _, errOut, code = run(t, "report", job.JobID, "--server", s.URL, "--progress", "1.5"); code != 2 || !strings.Contains(errOut, "invalid_progress") {
		t.Fatalf("bad progress: exit %d, %q", code, errOut)
	}
	if _, errOut, code = run(t, "report", job.JobID, "--server", s.URL); code != 2 || !strings.Contains(errOut, "nothing to report") {
		t.Fatalf("empty report: exit %d, %q", code, errOut)
	}
	if _, _, code = run(t, "report", job.JobID, "--server", s.URL, "--state", "succeeded"); code != 0 {
		t.Fatalf("succeeded: exit %d", code)
	}
	if _, errOut, code = run(t, "report", job.JobID, "--server", s.URL, "--progress", "0.1"); code != 2 || !strings.Contains(errOut, "job_finished") {
		t.Fatalf("after the end: exit %d, %q", code, errOut)
	}
}

// TestCLIAsAProcess runs the commands as real processes: a pipeline stage
// calls `report` with the job id from its environment, `submit` prints the
// id, and `watch` exits with the job's outcome.
func TestCLIAsAProcess(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := nodetest.Start(t, nodetest.Options{Pipelines: fmt.Sprintf(`
pipelines:
  reporting:
    params: [server]
    stages:
      - name: work
        run: ["env", "PROGRESSD_TEST_AS_CLI=1", %q, "report", "--server", "{{server}}", "--progress", "0.5", "--message", "reported by progressd report"]
      - name: fail
        run: ["sh", "-c", "echo 'the end' >&2; exit 7"]
`, self)})
	cli := func(args ...string) (string, string, int) {
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), asCLI+"=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	out, errOut, code := cli("submit", "--server", s.URL, "--project", "p", "--pipeline", "reporting", "--param", "server="+s.URL)
	id := strings.TrimSpace(out)
	if code != 0 || uuid.Validate(id) != nil {
		t.Fatalf("submit: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	rec := s.Record(t, id)
	_, errOut, code = cli("watch", id, "--server", s.URL)
	if code != 1 || !strings.Contains(errOut, "stage fail failed: exit status 7: the end") {
		t.Fatalf("watch: exit %d, stderr %q", code, errOut)
	}
	if msgs := strings.Join(rec.Messages(), "\n"); !strings.Contains(msgs, "reported by progressd report") {
		t.Fatalf("the stage's report did not arrive; messages:\n%s", msgs)
	}
}

// TestServerAndTokenFromTheEnvironment is not parallel: it sets the
// process environment.
func TestServerAndTokenFromTheEnvironment(t *testing.T) {
	const secret = "cli-test-secret-cli-test-secret"
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines, AuthSecret: secret})
	token, err := auth.Mint(secret, "carol", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROGRESSD_SERVER", s.URL)
	if _, errOut, code := run(t, "submit", "--project", "p", "--pipeline", "quick", "--param", "word=x"); code == 0 || !strings.Contains(errOut, "unauthorized") {
		t.Fatalf("no token: exit %d, %q", code, errOut)
	}
	t.Setenv("PROGRESSD_TOKEN", token)
	out, errOut, code := run(t, "submit", "--project", "p", "--pipeline", "quick", "--param", "word=x", "--watch")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	id := strings.SplitN(out, "\n", 2)[0]
	snap, err := s.Jobs.Get(context.Background(), id)
	if err != nil || snap.Owner != "carol" {
		t.Fatalf("job owner %q, %v", snap.Owner, err)
	}
	// A flag beats the environment.
	if _, errOut, code := run(t, "watch", id, "--server", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("--server over PROGRESSD_SERVER: exit %d, %q", code, errOut)
	}
}

func TestViews(t *testing.T) {
	eta, cur, tot := 75.0, 420.0, 1200.0
	errText := "stage encode failed: exit status 1"
	start, _ := time.Parse(time.RFC3339, "2025-01-01T00:00:00Z")
	running := client.Snapshot{JobID: "j1", State: client.Running, Progress: 0.4267, Stage: "encode",
		Stages: []client.Stage{{Name: "fetch"}, {Name: "encode"}}, ETASeconds: &eta, Current: &cur, Total: &tot,
		Message: "frame 420/1200", StartedAt: client.Time{Time: start}.Ptr()}
	failed := running
	failed.State, failed.Error, failed.FinishedAt = client.Failed, &errText, client.Time{Time: start.Add(90 * time.Second)}.Ptr()

	var b bytes.Buffer
	l := &lineView{out: &b}
	l.update(running)
	l.update(running) // no change, no line
	l.update(failed)
	l.done(failed)
	want := "running    42%  encode (2/2) · ETA 1m15s · frame 420/1200\n" +
		"failed     42%  encode (2/2) · frame 420/1200\n" +
		"job j1 failed at 42% in 1m30s: stage encode failed: exit status 1\n"
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	barView := newBarView(&b)
	barView.update(running)
	barView.done(failed)
	for _, w := range []string{"42%", "encode (2/2) · ETA 1m15s", "job j1 failed at 42%"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("bar output %q lacks %q", b.String(), w)
		}
	}
}

// TestTokenForOneJob mints a job-scoped token with the CLI and uses it as
// a worker would: it reports on its job and is refused on another job of
// the same user.
func TestTokenForOneJob(t *testing.T) {
	t.Parallel()
	const secret = "cli-job-token-secret-cli-job-token"
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines, AuthSecret: secret})
	dave, err := auth.Mint(secret, "dave", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.URL, dave)
	if err != nil {
		t.Fatal(err)
	}
	var ids [2]string
	for i := range ids {
		job, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = job.JobID
	}
	out, errOut, code := run(t, "token", "--auth-secret", secret, "--sub", "dave", "--job", ids[0], "--ttl", "10m")
	if code != 0 {
		t.Fatalf("token --job: exit %d: %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	if _, errOut, code := run(t, "report", ids[0], "--server", s.URL, "--token", token, "--progress", "0.25"); code != 0 {
		t.Fatalf("report on its own job: exit %d: %s", code, errOut)
	}
	if snap, err := c.Get(t.Context(), ids[0]); err != nil || snap.Progress != 0.25 {
		t.Fatalf("after the report: progress %v, %v", snap.Progress, err)
	}
	if _, errOut, code := run(t, "report", ids[1], "--server", s.URL, "--token", token, "--progress", "0.5"); code == 0 || !strings.Contains(errOut, "forbidden") {
		t.Fatalf("report on another job: exit %d, %q; want forbidden", code, errOut)
	}
	if snap, err := c.Get(t.Context(), ids[1]); err != nil || snap.Progress != 0 {
		t.Fatalf("the other job changed: progress %v, %v", snap.Progress, err)
	}
	if _, errOut, code := run(t, "token", "--auth-secret", secret, "--sub", "dave", "--job", ids[0], "--admin"); code == 0 || !strings.Contains(errOut, "does not go with") {
		t.Fatalf("--job --admin: exit %d, %q", code, errOut)
	}

	// --scope --read-only: the job reads, a report is refused.
	out, errOut, code = run(t, "token", "--auth-secret", secret, "--sub", "dave", "--scope", "job:"+ids[0]+",logs:"+ids[0], "--read-only", "--ttl", "15m")
	if code != 0 {
		t.Fatalf("token --scope --read-only: exit %d: %s", code, errOut)
	}
	ro, err := client.New(s.URL, strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := ro.Get(t.Context(), ids[0]); err != nil || snap.Progress != 0.25 {
		t.Fatalf("read-only get: %v, %v", snap.Progress, err)
	}
	if _, errOut, code := run(t, "report", ids[0], "--server", s.URL, "--token", strings.TrimSpace(out), "--progress", "0.5"); code == 0 || !strings.Contains(errOut, "read-only") {
		t.Fatalf("report with a read-only token: exit %d, %q", code, errOut)
	}
	for _, bad := range [][]string{{"--scope", "project:*"}, {"--scope", ""}, {"--scope", "user:dave"}, {"--scope", "job:x", "--job", "x"}} {
		args := append([]string{"token", "--auth-secret", secret, "--sub", "dave"}, bad...)
		if out, errOut, code := run(t, args...); code == 0 || out != "" || errOut == "" {
			t.Errorf("token %q: exit %d, out %q, err %q; want refused", bad, code, out, errOut)
		}
	}
}

// TestDeleteCommand: `progressd delete JOB` deletes a finished job, and
// exits non-zero naming the reason for one that runs.
func TestDeleteCommand(t *testing.T) {
	t.Parallel()
	const secret = "cli-delete-secret-cli-delete"
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines, AuthSecret: secret})
	tok, err := auth.Mint(secret, "erin", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.URL, tok)
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "delete", job.JobID, "--server", s.URL, "--token", tok); code == 0 || !strings.Contains(errOut, "job_not_finished") {
		t.Fatalf("delete of a running job: exit %d, %q", code, errOut)
	}
	if _, err := c.Cancel(t.Context(), job.JobID); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run(t, "delete", job.JobID, "--server", s.URL, "--token", tok); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d, %q %q", code, out, errOut)
	}
	if _, err := c.Get(t.Context(), job.JobID); !client.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}
