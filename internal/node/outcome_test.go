package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// gatedPipelines: a one-stage job that notes each run of its command in
// $dir/runs, reports 20%, and exits 0 once $dir/go exists.
const gatedPipelines = `
pipelines:
  gated:
    params: [dir]
    stages:
      - name: work
        run: ["sh", "-c", "echo run >> \"$1/runs\"; echo 20%; while [ ! -e \"$1/go\" ]; do sleep 0.05; done", "sh", "{{dir}}"]
`

func writePipelines(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipelines.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gated is a node with a Redis of its own and the gated pipeline.
type gated struct {
	rs            *testsvc.RedisServer
	dataDir, gate string
	mod           func(*Config) // restarts it on dataDir
	n             *Node
	c             client
}

func startGated(t *testing.T) *gated {
	t.Helper()
	g := &gated{rs: testsvc.StartRedis(t), dataDir: t.TempDir(), gate: t.TempDir()}
	pipelines := writePipelines(t, gatedPipelines)
	g.mod = func(c *Config) { c.Redis, c.RedisPrefix, c.Pipelines = g.rs.URL(), "gated:", pipelines }
	g.n = startNode(t, g.dataDir, g.mod)
	g.c = client{t: t, base: g.n.URL()}
	return g
}

// body creates a gated job.
func (g *gated) body() map[string]any {
	return map[string]any{"project": "p", "pipeline": "gated", "params": map[string]string{"dir": g.gate}}
}

// metric returns the line of /metrics that starts with series, or "".
func metric(c client, series string) string {
	for line := range strings.Lines(string(c.do("GET", "/metrics", nil).body)) {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// waitHeld waits until the node has held a job's outcome in the queue
// because it could not record it.
func waitHeld(t *testing.T, c client) {
	t.Helper()
	const held = `progressd_pipeline_attempts_total{outcome="held"}`
	if err := testsvc.WaitFor(20*time.Second, func() error {
		if m := metric(c, held); m == "" || m == held+" 0" {
			return fmt.Errorf("metric %q", m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// waitState polls GET until job id is in state want.
func waitState(t *testing.T, c client, id string, want progress.State, timeout time.Duration) progress.Snapshot {
	t.Helper()
	var last progress.Snapshot
	if err := testsvc.WaitFor(timeout, func() error {
		if last = get(t, c, id); last.State != want {
			return fmt.Errorf("job is %s, want %s", last.State, want)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v: %+v", err, last)
	}
	return last
}

// TestOutcomeOutlastsRedisOutage: a pipeline command exits 0 while Redis is
// down. The outcome is held in the job's queue row, and once Redis is back
// the job is succeeded for GET and for a subscriber — with the node running
// throughout, or restarted while Redis was down — and the command ran once.
func TestOutcomeOutlastsRedisOutage(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			t.Parallel()
			g := startGated(t)
			rs, dataDir, gate, mod, n, c := g.rs, g.dataDir, g.gate, g.mod, g.n, g.c
			s := create(t, c, g.body())
			if err := testsvc.WaitFor(20*time.Second, func() error {
				if g := get(t, c, s.JobID); g.State != progress.Running || !near(g.Progress, 0.2) {
					return fmt.Errorf("job: %+v", g)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			rs.Stop()
			if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			waitHeld(t, c)
			if g := get(t, c, s.JobID); g.State != progress.Running {
				t.Fatalf("with Redis down the durable record should still say running: %+v", g)
			}

			if restart {
				stopNode(t, n)
				rs.Start()
				n = startNode(t, dataDir, mod)
				c.base = n.URL()
			} else {
				rs.Start()
			}
			ws := dialWS(t, n.URL(), "job:"+s.JobID)
			if done := waitState(t, c, s.JobID, progress.Succeeded, 30*time.Second); done.Progress != 1 {
				t.Fatalf("succeeded job: %+v", done)
			}
			if err := testsvc.WaitFor(10*time.Second, func() error {
				if last, _, err := ws.last(s.JobID); last.State != progress.Succeeded {
					return fmt.Errorf("subscriber's last snapshot: %+v (%v)", last, err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			runs, err := os.ReadFile(filepath.Join(gate, "runs"))
			if err != nil || string(runs) != "run\n" {
				t.Fatalf("the command should have run once: %q %v", runs, err)
			}
		})
	}
}

// TestOutcomeOutlastsFullDisk: the database's disk (a real tmpfs) fills up
// while a pipeline command runs. A create is refused with 503 and /readyz
// turns 503 naming the database although it still answers reads. The
// command exits 0; its outcome cannot be made durable and is held in the
// queue (on another disk). The node stops while the disk is full; once
// space is freed and it starts again, the job is succeeded — not failed for
// a lost queue entry — /readyz is 200 again, and the command ran once.
func TestOutcomeOutlastsFullDisk(t *testing.T) {
	t.Parallel()
	disk := testsvc.TinyDisk(t, 2<<20)
	dataDir, gate := t.TempDir(), t.TempDir()
	mod := func(c *Config) {
		c.DB, c.Pipelines = filepath.Join(disk.Dir(), "progressd.db"), writePipelines(t, gatedPipelines)
	}
	cfg := Defaults()
	cfg.Addr, cfg.DataDir, cfg.FlushInterval = "127.0.0.1:0", dataDir, 50*time.Millisecond
	mod(&cfg)
	n, err := Start(t.Context(), cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = n.Shutdown(context.Background())
		}
	})
	c := client{t: t, base: n.URL()}
	s := create(t, c, map[string]any{"project": "p", "pipeline": "gated", "params": map[string]string{"dir": gate}})
	waitState(t, c, s.JobID, progress.Running, 20*time.Second)
	if r := c.do("GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("readyz before the disk filled: %d %s", r.status, r.body)
	}

	disk.Fill()
	if r := c.do("POST", "/api/v1/jobs", `{"project":"p"}`); r.status != 503 || r.errCode() != "unavailable" {
		t.Fatalf("create with the disk full: %d %s", r.status, r.body)
	}
	r := c.do("GET", "/readyz", nil)
	if r.status != 503 || !strings.Contains(string(r.body), `"database":"`) || strings.Contains(string(r.body), `"database":"ok"`) ||
		!strings.Contains(string(r.body), "writes fail") {
		t.Fatalf("readyz with the disk full: %d %s", r.status, r.body)
	}
	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, c)
	stopped = true
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err == nil {
		t.Fatal("shutdown with the disk full flushed everything: the test did not fill the disk")
	}

	disk.Free()
	n = startNode(t, dataDir, mod)
	c.base = n.URL()
	if g := waitState(t, c, s.JobID, progress.Succeeded, 30*time.Second); g.Progress != 1 {
		t.Fatalf("succeeded job: %+v", g)
	}
	if r := c.do("GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("readyz after space was freed: %d %s", r.status, r.body)
	}
	runs, err := os.ReadFile(filepath.Join(gate, "runs"))
	if err != nil || string(runs) != "run\n" {
		t.Fatalf("the command should have run once: %q %v", runs, err)
	}
}

// TestOutcomeLandsOnAnotherNode: two nodes share PostgreSQL (and its job
// queue) and a Redis. A command exits 0 while Redis is down, the node that
// ran it holds the outcome in the queue row and then stops; once Redis is
// back the other node records the outcome, and the command ran once.
func TestOutcomeLandsOnAnotherNode(t *testing.T) {
	t.Parallel()
	rs := testsvc.StartRedis(t)
	db := testsvc.PostgresSchema(t)
	gate := t.TempDir()
	pipelines := writePipelines(t, gatedPipelines)
	shared := func(c *Config) { c.DB, c.Redis, c.RedisPrefix, c.Pipelines = db, rs.URL(), "anynode:", pipelines }
	nodes := []*Node{startNode(t, "", shared), startNode(t, "", shared)}
	clients := []client{{t: t, base: nodes[0].URL()}, {t: t, base: nodes[1].URL()}}
	s := create(t, clients[0], map[string]any{"project": "p", "pipeline": "gated", "params": map[string]string{"dir": gate}})
	waitState(t, clients[0], s.JobID, progress.Running, 20*time.Second)

	rs.Stop()
	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const held = `progressd_pipeline_attempts_total{outcome="held"}`
	ran := -1
	if err := testsvc.WaitFor(20*time.Second, func() error {
		for i, c := range clients {
			if m := metric(c, held); m != "" && m != held+" 0" {
				ran = i
				return nil
			}
		}
		return testsvc.ErrNotYet
	}); err != nil {
		t.Fatalf("no node held the outcome: %v", err)
	}
	stopNode(t, nodes[ran])
	rs.Start()
	other := clients[1-ran]
	waitState(t, other, s.JobID, progress.Succeeded, 40*time.Second)
	if runs, err := os.ReadFile(filepath.Join(gate, "runs")); err != nil || string(runs) != "run\n" {
		t.Fatalf("the command should have run once: %q %v", runs, err)
	}
}
