package orchestrator_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/progressd/progressd/internal/node/nodetest"
	"github.com/progressd/progressd/internal/orchestrator"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/testsvc"
)

// restartPipelines have one stage that, the first time, starts a child,
// writes its pid and waits; run again, it finishes at once.
const restartPipelines = `
pipelines:
  once:
    params: [dir]
    stages:
      - name: prepare
        run: ["true"]
      - name: work
        run: ["sh", "-c", "if [ -e \"$1/ran\" ]; then echo 100%; exit 0; fi; touch \"$1/ran\"; sleep 300 & echo $! > \"$1/child.pid\"; echo 10%; wait", "sh", "{{dir}}"]
  twice:
    params: [dir]
    max_attempts: 2
    stages:
      - name: prepare
        run: ["true"]
      - name: work
        run: ["sh", "-c", "if [ -e \"$1/ran\" ]; then echo 100%; exit 0; fi; touch \"$1/ran\"; sleep 300 & echo $! > \"$1/child.pid\"; echo 10%; wait", "sh", "{{dir}}"]
`

func TestShutdownHandsRunningJobsBack(t *testing.T) {
	t.Parallel()
	dataDir, workDir := t.TempDir(), t.TempDir()
	first, err := nodetest.New(nodetest.Options{Dir: dataDir, Pipelines: restartPipelines}, t.TempDir)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	snap := first.Create(t, "p", "once", map[string]string{"dir": workDir})
	child := readPID(t, filepath.Join(workDir, "child.pid"))
	first.Close()
	if !processGone(child) {
		t.Fatalf("shutdown left the stage's child %d running", child)
	}
	left, _ := first.Jobs.Get(t.Context(), snap.JobID)
	if left.State != progress.Running || !strings.Contains(left.Message, "run again") {
		t.Fatalf("after shutdown: %s, message %q; want running, handed back", left.State, left.Message)
	}

	// max_attempts is 1, yet the job runs again: a hand-back is not a
	// failed attempt.
	second := nodetest.Start(t, nodetest.Options{Dir: dataDir, Pipelines: restartPipelines})
	done := second.WaitTerminal(t, snap.JobID, 20*time.Second)
	if done.State != progress.Succeeded {
		t.Fatalf("after restart: %s, error %v", done.State, done.Error)
	}
}

// TestCrashHelper is the node that crashes: run by TestCrashRecovery as a
// subprocess, it starts a server, creates a job, prints its id and waits
// to be killed with SIGKILL.
func TestCrashHelper(t *testing.T) {
	dataDir := os.Getenv("PROGRESSD_TEST_CRASH_DATA")
	if dataDir == "" {
		t.Skip("run by TestCrashRecovery")
	}
	s, err := nodetest.New(nodetest.Options{Dir: dataDir, Pipelines: restartPipelines}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Create(t, "p", os.Getenv("PROGRESSD_TEST_CRASH_PIPELINE"), map[string]string{"dir": os.Getenv("PROGRESSD_TEST_CRASH_WORK")})
	fmt.Printf("JOB %s\n", snap.JobID)
	select {} // until killed
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pipeline string
		// held, the outcome the row holds when the node dies: the state a
		// node leaves that dies while recording a held outcome (its
		// stages had ended; see outcome.go). Recovery records it instead
		// of retrying or failing the job.
		held    string
		want    progress.State
		message string
	}{
		{"once", "once", "", progress.Failed, "the node running this job stopped during stage work (attempt 1 of 1); not retried"},
		{"twice", "twice", "", progress.Succeeded, "the node running it stopped"},
		{"held", "once", `{"state":"succeeded"}`, progress.Succeeded, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dataDir, workDir := t.TempDir(), t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
			cmd.Env = append(os.Environ(), "PROGRESSD_TEST_CRASH_DATA="+dataDir,
				"PROGRESSD_TEST_CRASH_WORK="+workDir, "PROGRESSD_TEST_CRASH_PIPELINE="+tc.pipeline)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(out).ReadString('\n')
			id, ok := strings.CutPrefix(strings.TrimSpace(line), "JOB ")
			if err != nil || !ok {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("helper printed %q (%v); stderr:\n%s", line, err, stderr.String())
			}
			child := readPID(t, filepath.Join(workDir, "child.pid"))
			// Intermediate progress is written behind (within 50 ms here):
			// wait until the durable store knows stage work is running,
			// as it would after any real run of more than a moment.
			db, err := sqlite.Open(t.Context(), filepath.Join(dataDir, "progressd.db"))
			if err != nil {
				t.Fatal(err)
			}
			testsvc.Eventually(t, 10*time.Second, "stage work in the durable store", func() bool {
				snap, err := db.Get(t.Context(), id)
				return err == nil && snap.Stage == "work"
			})
			db.Close()

			// The crash: no hand-back, no flush. The stage runs on in its
			// own process group.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if processGone(child) {
				t.Fatal("the stage died with the node; the test would prove nothing")
			}
			if tc.held != "" {
				holdOutcome(t, filepath.Join(dataDir, orchestrator.QueueFile), tc.held)
			}

			start := time.Now()
			s := nodetest.Start(t, nodetest.Options{Dir: dataDir, Pipelines: restartPipelines})
			rec := s.Record(t, id)
			done := s.WaitTerminal(t, id, 20*time.Second)
			t.Logf("recovered to %s in %s", done.State, time.Since(start).Round(time.Millisecond))
			if done.State != tc.want {
				t.Fatalf("got %s, error %v; want %s", done.State, done.Error, tc.want)
			}
			text := strings.Join(rec.Messages(), "\n")
			if done.Error != nil {
				text += "\n" + *done.Error
			}
			if !strings.Contains(text, tc.message) {
				t.Errorf("no message says %q; saw:\n%s", tc.message, text)
			}
			testsvc.Eventually(t, 5*time.Second, "the crashed node's command to be killed", func() bool { return processGone(child) })
		})
	}
}

// holdOutcome writes outcome into the metadata of the queue's running
// row, as an attempt recording a held outcome has it.
func holdOutcome(t *testing.T, queue, outcome string) {
	t.Helper()
	db, err := sql.Open("sqlite", queue+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(t.Context(),
		`UPDATE river_job SET metadata = json_set(metadata, '$.progressd_outcome', json(?)) WHERE state = 'running'`, outcome)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("rows holding the outcome: %d, %v; want the one running row", n, err)
	}
}

func TestQueueIsExclusive(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	_, err := orchestrator.New(orchestrator.Config{Jobs: s.Jobs, DataDir: s.Dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another progressd process") {
		t.Fatalf("second orchestrator on one data dir: %v", err)
	}
}

func TestPingAndMetrics(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	if err := s.Orch.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o, err := orchestrator.New(orchestrator.Config{Jobs: s.Jobs, DataDir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop(t.Context())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"progressd_pipeline_attempts_total", "progressd_pipeline_jobs_running"} {
		if !names[want] {
			t.Errorf("metric %s not registered; have %v", want, names)
		}
	}
	if err := o.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Ping(t.Context()); err == nil {
		t.Error("ping after Stop succeeded")
	}
}
