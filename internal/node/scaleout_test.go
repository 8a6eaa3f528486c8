package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// scaleOut returns a Config modifier pointing nodes at one fresh PostgreSQL
// schema and one Redis key prefix: what several nodes of one system share.
func scaleOut(t *testing.T) func(*Config) {
	t.Helper()
	db := testsvc.PostgresSchema(t)
	url := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, url)
	return func(c *Config) { c.DB, c.Redis, c.RedisPrefix = db, url, prefix }
}

// TestTwoNodesBehaveAsOne: a job created and reported on one node is read,
// listed and streamed (SSE) on the other.
func TestTwoNodesBehaveAsOne(t *testing.T) {
	shared := scaleOut(t)
	a, b := startNode(t, "", shared), startNode(t, "", shared)
	ca, cb := client{t: t, base: a.URL()}, client{t: t, base: b.URL()}

	s := create(t, ca, `{"project":"p1","stages":[{"name":"x"},{"name":"y"}]}`)
	if g := get(t, cb, s.JobID); g.Seq != 1 || g.Project != "p1" {
		t.Fatalf("GET on the other node: %+v", g)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL()+"/api/v1/jobs/"+s.JobID+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan progress.Snapshot, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				var snap progress.Snapshot
				if json.Unmarshal([]byte(strings.TrimSpace(data)), &snap) == nil {
					events <- snap
				}
			}
		}
	}()
	first := <-events
	if first.JobID != s.JobID || first.Seq != 1 {
		t.Fatalf("first SSE event on node b: %+v", first)
	}
	report(t, ca, s.JobID, `{"stage":"y","progress":0.5}`)
	report(t, cb, s.JobID, `{"message":"from b"}`) // seq 3, decided on b
	last := report(t, ca, s.JobID, `{"state":"succeeded"}`)
	if last.Seq != 4 || last.Message != "from b" {
		t.Fatalf("node a did not build on node b's update: %+v", last)
	}
	for snap := range events {
		if snap.Seq == 4 {
			if snap.State != progress.Succeeded {
				t.Fatalf("seq 4 on node b: %+v", snap)
			}
			break
		}
	}
	cancel()

	// The durable record is shared too.
	if err := testsvc.WaitFor(10*time.Second, func() error {
		r := cb.do("GET", "/api/v1/jobs?project=p1", nil)
		if !strings.Contains(string(r.body), `"succeeded"`) {
			return testsvc.ErrNotYet
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := cb.do("GET", "/readyz", nil)
	for _, name := range []string{`"database":"ok"`, `"redis":"ok"`, `"redis_pubsub":"ok"`} {
		if !strings.Contains(string(r.body), name) {
			t.Fatalf("readyz %d %s lacks %s", r.status, r.body, name)
		}
	}
}

// TestRedisDownReportsGet503: with Redis gone, a report gets a clear 503
// (nothing changed, retry) instead of vanishing, /readyz names redis, and
// when Redis is back reports go through again.
func TestRedisDownReportsGet503(t *testing.T) {
	rs := testsvc.StartRedis(t)
	db := testsvc.PostgresSchema(t)
	n := startNode(t, "", func(c *Config) { c.DB, c.Redis, c.RedisPrefix = db, rs.URL(), "t503:" })
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p1"}`)
	report(t, c, s.JobID, `{"progress":0.2}`)

	rs.Stop()
	r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", `{"progress":0.5}`)
	if r.status != http.StatusServiceUnavailable || r.errCode() != "unavailable" {
		t.Fatalf("report with Redis down: %d %s", r.status, r.body)
	}
	r = c.do("GET", "/readyz", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"redis"`) || strings.Contains(string(r.body), `"redis":"ok"`) {
		t.Fatalf("readyz with Redis down: %d %s", r.status, r.body)
	}
	// Reads fall back to the durable record.
	if g := get(t, c, s.JobID); g.JobID != s.JobID {
		t.Fatalf("GET with Redis down: %+v", g)
	}

	rs.Start()
	if err := testsvc.WaitFor(20*time.Second, func() error {
		if r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", `{"progress":0.5}`); r.status != 200 {
			return fmt.Errorf("report: %d %s", r.status, r.body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Redis came back empty: the job was reloaded from PostgreSQL with its
	// seq raised above anything clients saw (jobs.ReloadSeqGap).
	if g := get(t, c, s.JobID); !near(g.Progress, 0.5) || g.Seq <= 2+jobs.ReloadSeqGap {
		t.Fatalf("after Redis came back: %+v", g)
	}
}

// slowPipelines: a job whose second stage records its process group and the
// node running it (PROGRESSD_SERVER), then sleeps.
const slowPipelines = `
pipelines:
  slow:
    params: [dir]
    stages:
      - name: start
        run: ["true"]
      - name: slow
        run: ["sh", "-c", "printf '%s %s\\n' $$ \"$PROGRESSD_SERVER\" > \"$1/ran.tmp\" && mv \"$1/ran.tmp\" \"$1/ran\"; echo 10%; sleep 120", "sh", "{{dir}}"]
`

// TestThreeProcessesOneSystem runs three `progressd serve` processes on one
// PostgreSQL schema and Redis prefix. WebSocket clients on node 1 get every
// update reported on nodes 2 and 3 in seq order, ending with the terminal
// snapshot. Then node 3 (or 2) is killed (SIGKILL) while it runs a pipeline job:
// its clients reconnect to node 1 and see the job as it is, and another
// node fails the job, saying why, once node 3's heartbeat is too old.
func TestThreeProcessesOneSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs progressd processes")
	}
	db := testsvc.PostgresSchema(t)
	redisURL := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, redisURL)
	pipelines := filepath.Join(t.TempDir(), "pipelines.yaml")
	if err := os.WriteFile(pipelines, []byte(slowPipelines), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := []string{"--db", db, "--redis", redisURL, "--redis-prefix", prefix, "--pipelines", pipelines}
	n1, n2, n3 := startProc(t, shared...), startProc(t, shared...), startProc(t, shared...)
	c1, c2, c3 := client{t: t, base: n1.url()}, client{t: t, base: n2.url()}, client{t: t, base: n3.url()}

	// 1. Fan-out across nodes: 200 reports over 4 jobs, alternately on
	// nodes 2 and 3; 5 subscribers on node 1.
	const nJobs, perJob = 4, 50
	ids := make([]string, nJobs)
	for i := range ids {
		ids[i] = create(t, c2, `{"project":"fan"}`).JobID
	}
	subs := make([]*wsClient, 5)
	for i := range subs {
		subs[i] = dialWS(t, n1.url(), "project:fan")
	}
	final := map[string]uint64{}
	for i := range nJobs * perJob {
		id, k := ids[i%nJobs], i/nJobs
		via := c2
		if k%2 == 1 {
			via = c3
		}
		body := fmt.Sprintf(`{"progress":%g,"message":"step %d"}`, float64(k+1)/perJob, k)
		if k == perJob-1 {
			body = `{"state":"succeeded"}`
		}
		final[id] = report(t, via, id, body).Seq
	}
	if err := testsvc.WaitFor(20*time.Second, func() error {
		for i, s := range subs {
			for _, id := range ids {
				last, ended, err := s.last(id)
				if ended {
					return fmt.Errorf("subscriber %d: connection ended: %v", i, err)
				}
				if last.Seq != final[id] || last.State != progress.Succeeded {
					return fmt.Errorf("subscriber %d: job %s: last seq %d state %s; want seq %d succeeded: %w",
						i, id, last.Seq, last.State, final[id], testsvc.ErrNotYet)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		s.checkOrder(t, fmt.Sprintf("subscriber %d", i))
	}

	// 2. Kill node 3 (or 2: the reports are done) while it runs a pipeline
	// job. Any node may take the job from the shared queue; if node 1,
	// whose clients watch, took it, cancel it and try again.
	var job progress.Snapshot
	var pgid int
	var victim *proc
	for try := 0; victim == nil; try++ {
		if try == 10 {
			t.Fatal("ten pipeline jobs all ran on node 1")
		}
		dir := t.TempDir()
		job = create(t, c3, map[string]any{"project": "crash", "pipeline": "slow", "params": map[string]string{"dir": dir}})
		var server string
		if err := testsvc.WaitFor(20*time.Second, func() error {
			data, err := os.ReadFile(filepath.Join(dir, "ran"))
			if err != nil {
				return testsvc.ErrNotYet
			}
			if _, err := fmt.Sscan(string(data), &pgid, &server); err != nil {
				return err
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }) // the dead node's command outlives it
		switch server {
		case n3.url():
			victim = n3
		case n2.url():
			victim = n2
		default:
			t.Logf("pipeline job ran on %s, node 1; again", server)
			c1.do("POST", "/api/v1/jobs/"+job.JobID+"/cancel", nil)
		}
	}
	onVictim := []*wsClient{dialWS(t, victim.url(), "job:"+job.JobID), dialWS(t, victim.url(), "project:crash")}
	if err := testsvc.WaitFor(10*time.Second, func() error {
		for _, s := range onVictim {
			if last, _, _ := s.last(job.JobID); last.Stage != "slow" {
				return testsvc.ErrNotYet
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim.kill(t)
	killed := time.Now()
	var seen []uint64
	for i, s := range onVictim {
		select {
		case <-s.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d on the killed node still connected", i)
		}
		last, _, _ := s.last(job.JobID)
		seen = append(seen, last.Seq)
	}
	// The clients reconnect to node 1: the job is still running its slow
	// stage there (no node has taken it over yet), at no lower seq.
	again := []*wsClient{dialWS(t, n1.url(), "job:"+job.JobID), dialWS(t, n1.url(), "project:crash")}
	for i, s := range again {
		if err := testsvc.WaitFor(10*time.Second, func() error {
			last, _, _ := s.last(job.JobID)
			if last.Seq == 0 {
				return testsvc.ErrNotYet
			}
			if last.Seq < seen[i] || (last.State != progress.Running && !last.State.Terminal()) {
				return fmt.Errorf("client %d reconnected to node 1 sees seq %d %s; had seq %d", i, last.Seq, last.State, seen[i])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if first := s.first(job.JobID); first.State == progress.Running && first.Stage != "slow" {
			t.Fatalf("client %d reconnected: running but at stage %q", i, first.Stage)
		}
	}
	// Another node notices the killed node's heartbeat stopped (--node-timeout 8s,
	// set in startProc) and fails the job: it has one attempt.
	for i, s := range again {
		if err := testsvc.WaitFor(60*time.Second, func() error {
			last, ended, err := s.last(job.JobID)
			if ended {
				return fmt.Errorf("client %d: connection ended: %v", i, err)
			}
			if !last.State.Terminal() {
				return testsvc.ErrNotYet
			}
			if last.State != progress.Failed || last.Error == nil ||
				!strings.Contains(*last.Error, "stopped responding") || !strings.Contains(*last.Error, "during stage slow") {
				return fmt.Errorf("client %d: job ended %s, error %v; want failed because the killed node stopped responding", i, last.State, ptrString(last.Error))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		s.checkOrder(t, fmt.Sprintf("reconnected client %d", i))
	}
	took := time.Since(killed)
	t.Logf("job of the killed node %s failed after %s: %s", victim.addr, took.Round(time.Second), ptrString(get(t, c1, job.JobID).Error))
	if took > 45*time.Second {
		t.Fatalf("failing the dead node's job took %s", took)
	}
}

func ptrString(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
