package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
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
