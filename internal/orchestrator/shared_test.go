package orchestrator_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/jobs/jobstest"
	"github.com/progressd/progressd/internal/orchestrator"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// fencePipelines: attempt 1 of "loop" records its process group and
// appends to a marker file every 100 ms until stopped; a later attempt
// succeeds at once. "once" does the same the first time it runs,
// whatever the attempt, and succeeds when run again.
const fencePipelines = `
pipelines:
  loop:
    params: [dir]
    max_attempts: 2
    stages:
      - name: work
        run: ["sh", "-c", "if [ \"$PROGRESSD_ATTEMPT\" != 1 ]; then echo 100%; exit 0; fi; echo $$ > \"$1/pgid.tmp\" && mv \"$1/pgid.tmp\" \"$1/pgid\"; echo 10%; while :; do echo x >> \"$1/marker\"; sleep 0.1; done", "sh", "{{dir}}"]
  once:
    params: [dir]
    stages:
      - name: work
        run: ["sh", "-c", "if [ -e \"$1/pgid\" ]; then echo 100%; exit 0; fi; echo $$ > \"$1/pgid.tmp\" && mv \"$1/pgid.tmp\" \"$1/pgid\"; echo 10%; while :; do echo x >> \"$1/marker\"; sleep 0.1; done", "sh", "{{dir}}"]
  quick:
    stages:
      - name: work
        run: ["sh", "-c", "echo 100%"]
`

// TestCutOffNodeStopsItsJobsBeforeAnotherNodeTakesThemOver: node A reaches
// PostgreSQL through a proxy, node B directly. A runs a job whose command
// never ends; the proxy then drops A's connections and refuses new ones.
// A's command must be dead while the job's queue row is still A's
// running attempt, that is before B may rescue it; B then retries the job
// (saying A stopped responding) and the retry succeeds. Once the proxy
// lets A through again, A leaves B's outcome alone and runs jobs again.
func TestCutOffNodeStopsItsJobsBeforeAnotherNodeTakesThemOver(t *testing.T) {
	t.Parallel()
	const nodeTimeout = 3 * time.Second
	direct, viaProxy, proxy := proxiedPostgres(t)

	svc, messages := newJobsService(t)
	logA := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node A's log:\n%s", logA.String())
		}
	})
	a := startNode(t, svc, viaProxy, nodeTimeout, slog.New(slog.NewTextHandler(logA, nil)))
	t.Cleanup(proxy.restore) // before A stops, should the test end early
	svc.SetRunner(a.Runner())

	dir := t.TempDir()
	job, err := svc.Create(t.Context(), "local", jobs.CreateRequest{Project: "p", Pipeline: "loop", Params: map[string]string{"dir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	pgid := readPID(t, filepath.Join(dir, "pgid"))
	t.Cleanup(func() { killGroup(pgid) }) // if the fence failed
	// B starts only now, so the job is A's.
	b := startNode(t, svc, direct, nodeTimeout, slog.New(slog.NewTextHandler(io.Discard, nil)))

	conn, err := pgx.Connect(t.Context(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rowOf := func(id string) (state string, attempt int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := conn.QueryRow(ctx, `SELECT state::text, attempt FROM river_job WHERE kind = 'progressd_pipeline' AND args->>'job_id' = $1`,
			id).Scan(&state, &attempt); err != nil {
			t.Fatalf("read job %s's queue row: %v", id, err)
		}
		return state, attempt
	}
	row := func() (string, int) { return rowOf(job.JobID) }
	if state, attempt := row(); state != "running" || attempt != 1 {
		t.Fatalf("before the cut: queue row %s, attempt %d; want running, attempt 1", state, attempt)
	}

	cut := time.Now()
	proxy.cut()
	// Poll: the row first, then the process group. A live group after the
	// row was rescued is a job running twice.
	deadline := cut.Add(3 * nodeTimeout)
	for {
		state, attempt := row()
		rescued := state != "running" || attempt != 1
		if groupRunning(pgid) {
			if rescued {
				t.Fatalf("%s after the cut, the job's row is %s (attempt %d) but node A's command still runs: the job runs twice",
					time.Since(cut).Round(time.Millisecond), state, attempt)
			}
		} else {
			if state, attempt := row(); state != "running" || attempt != 1 {
				t.Fatalf("node A's command was stopped only as the job was rescued (row %s, attempt %d)", state, attempt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node A's command still runs %s after the cut", time.Since(cut).Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline
	}
	stopped := time.Since(cut)
	size := markerSize(t, dir)
	time.Sleep(300 * time.Millisecond) // three of the command's writes
	if after := markerSize(t, dir); after != size {
		t.Fatalf("marker grew from %d to %d bytes after the command's group was gone", size, after)
	}
	t.Logf("node A stopped its command %s after the cut (node timeout %s)", stopped.Round(time.Millisecond), nodeTimeout)
	testsvc.Eventually(t, 2*time.Second, "node A to log why it stopped the job", func() bool {
		return strings.Contains(logA.String(), "stopped 1 running jobs so no other node runs them twice")
	})

	// B rescues the job, says why, and its retry succeeds.
	done := waitTerminal(t, svc, job.JobID, 3*nodeTimeout)
	if done.State != progress.Succeeded {
		t.Fatalf("after the rescue: %s, error %v", done.State, done.Error)
	}
	if !slicesContain(messages(), "stopped responding") {
		t.Fatalf("no message said node A stopped responding: %q", messages())
	}
	testsvc.Eventually(t, 5*time.Second, "the retry's queue row to be completed", func() bool {
		state, attempt := row()
		return state == "completed" && attempt == 2
	})

	// A comes back: its stopped attempt finds the job settled elsewhere
	// and leaves the row as B left it.
	proxy.restore()
	testsvc.Eventually(t, 3*nodeTimeout, "node A to see the job queue again", func() bool {
		return strings.Contains(logA.String(), "another node took the job over")
	})

	// With B gone, A runs new jobs.
	stopNode(t, b)
	next, err := svc.Create(t.Context(), "local", jobs.CreateRequest{Project: "p", Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	if s := waitTerminal(t, svc, next.JobID, 3*nodeTimeout); s.State != progress.Succeeded {
		t.Fatalf("a job after node A came back: %s, error %v", s.State, s.Error)
	}
	// A's completer has written the new job's row, so it has written
	// whatever the stopped attempt returned before it (no sleep needed to
	// know it is done): the first job's row is still B's.
	testsvc.Eventually(t, 5*time.Second, "node A's completer to record the new job", func() bool {
		state, _ := rowOf(next.JobID)
		return state == "completed"
	})
	if state, attempt := row(); state != "completed" || attempt != 2 {
		t.Fatalf("after node A came back: queue row %s, attempt %d; want completed, attempt 2", state, attempt)
	}
}

// TestCutOffNodeRunsItsJobAgainIfNoOtherNodeTookIt: a node cut off from
// PostgreSQL for less than the node timeout stops its command all the
// same, reports nothing on the job, and, back, runs the job again without
// using up an attempt (the pipeline allows one), since no node rescued it.
func TestCutOffNodeRunsItsJobAgainIfNoOtherNodeTookIt(t *testing.T) {
	t.Parallel()
	const nodeTimeout = 3 * time.Second
	_, viaProxy, proxy := proxiedPostgres(t)

	svc, _ := newJobsService(t)
	logA := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node A's log:\n%s", logA.String())
		}
	})
	a := startNode(t, svc, viaProxy, nodeTimeout, slog.New(slog.NewTextHandler(logA, nil)))
	t.Cleanup(proxy.restore)
	svc.SetRunner(a.Runner())

	dir := t.TempDir()
	job, err := svc.Create(t.Context(), "local", jobs.CreateRequest{Project: "p", Pipeline: "once", Params: map[string]string{"dir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	pgid := readPID(t, filepath.Join(dir, "pgid"))
	t.Cleanup(func() { killGroup(pgid) })

	cut := time.Now()
	proxy.cut()
	testsvc.Eventually(t, nodeTimeout, "node A to stop its command", func() bool { return !groupRunning(pgid) })
	proxy.restore()
	t.Logf("node A stopped its command %s after the cut", time.Since(cut).Round(time.Millisecond))
	if snap, err := svc.Get(t.Context(), job.JobID); err != nil || snap.State != progress.Running {
		t.Fatalf("after the fence: %s, %v; want the job still running", snap.State, err)
	}

	done := waitTerminal(t, svc, job.JobID, 3*nodeTimeout)
	if done.State != progress.Succeeded {
		t.Fatalf("after node A came back: %s, error %v", done.State, done.Error)
	}
	if !strings.Contains(logA.String(), "no other node took the job") {
		t.Fatalf("node A did not say why the job ran again:\n%s", logA.String())
	}
}

// proxiedPostgres returns the URL of a fresh schema in the test database,
// the same URL through a proxy, and the proxy.
func proxiedPostgres(t *testing.T) (direct, viaProxy string, proxy *pgProxy) {
	t.Helper()
	direct = testsvc.PostgresSchema(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	proxy = startProxy(t, target)
	u.Host = proxy.addr()
	return direct, u.String(), proxy
}

// newJobsService is a jobs service on a SQLite store of the test's own,
// shared by the test's nodes, and a function returning the distinct
// messages it published so far.
func newJobsService(t *testing.T) (*jobs.Service, func() []string) {
	t.Helper()
	p := jobstest.New(t, jobstest.Options{FlushInterval: 50 * time.Millisecond})
	var mu sync.Mutex
	var msgs []string
	stop := p.Broker.Subscribe(func(u broker.Update) {
		mu.Lock()
		defer mu.Unlock()
		if m := u.Snapshot.Message; m != "" && (len(msgs) == 0 || msgs[len(msgs)-1] != m) {
			msgs = append(msgs, m)
		}
	})
	t.Cleanup(stop) // after the nodes' cleanups, which were added later; then jobstest closes the path
	svc := p.Jobs
	if err := svc.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	return svc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

// startNode starts an orchestrator on the PostgreSQL queue at dsn.
func startNode(t *testing.T, svc *jobs.Service, dsn string, nodeTimeout time.Duration, log *slog.Logger) *orchestrator.Orchestrator {
	t.Helper()
	pipelines, err := orchestrator.ParsePipelines([]byte(fencePipelines), "test")
	if err != nil {
		t.Fatal(err)
	}
	o, err := orchestrator.New(orchestrator.Config{
		Jobs: svc, Pipelines: pipelines, DataDir: t.TempDir(), Postgres: dsn, NodeTimeout: nodeTimeout,
		KillGrace: time.Second, RetryBackoff: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, o) })
	if err := o.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return o
}

func stopNode(t *testing.T, o *orchestrator.Orchestrator) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := o.Stop(ctx); err != nil {
		t.Errorf("stop node: %v", err)
	}
}

func waitTerminal(t *testing.T, svc *jobs.Service, id string, timeout time.Duration) progress.Snapshot {
	t.Helper()
	var snap progress.Snapshot
	testsvc.Eventually(t, timeout, "job "+id+" to finish", func() bool {
		var err error
		snap, err = svc.Get(t.Context(), id)
		return err == nil && snap.State.Terminal()
	})
	return snap
}

func slicesContain(list []string, part string) bool {
	for _, s := range list {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

func markerSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, "marker"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// groupRunning reports whether a process of group pgid runs (zombies,
// which run nothing, do not count).
func groupRunning(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		// Fields from 3 on: state, ppid, pgrp, …
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

func killGroup(pgid int) {
	if pgid > 1 && groupRunning(pgid) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pgProxy forwards TCP connections to a PostgreSQL server until cut,
// which drops every connection and refuses new ones until restore.
type pgProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	down   bool
	closed bool
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *pgProxy) addr() string { return p.ln.Addr().String() }

func (p *pgProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close() // refused: the client sees its connection closed at once
			continue
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// track records c, unless the proxy is cut or closed.
func (p *pgProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *pgProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *pgProxy) forward(c net.Conn) {
	defer p.drop(c)
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(s) {
		s.Close()
		return
	}
	defer p.drop(s)
	p.wg.Go(func() {
		_, _ = io.Copy(s, c)
		s.Close() // ends the other copy
	})
	_, _ = io.Copy(c, s)
	c.Close()
}

// cut drops every connection and refuses new ones.
func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore lets connections through again.
func (p *pgProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *pgProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cut()
	p.wg.Wait()
}
