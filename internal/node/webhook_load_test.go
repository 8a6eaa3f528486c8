package node

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/testsvc"
	"github.com/progressd/progressd/internal/webhook/webhooktest"
)

// TestWebhookLoad is issue 14's webhook figure, run by hand (about 3
// minutes; docs/benchmarks.md has the command and the figures):
//
//	PROGRESSD_WEBHOOK_LOAD=1 go test -run TestWebhookLoad -v -timeout 20m ./internal/node/
//
// N jobs (PROGRESSD_WEBHOOK_LOAD_JOBS, 10,000) are created, then finished
// over HTTP by 8 clients (one report each), first on a node without
// webhooks (the baseline), then on one whose receiver answers 503 for the
// first minute (PROGRESSD_WEBHOOK_LOAD_DOWN) from the first event on; with
// the product's retry schedule and poll interval. It checks that every event is
// delivered exactly once (by id) and prints how long that took after the
// receiver came back, and the terminal reports' latency in both runs.
func TestWebhookLoad(t *testing.T) {
	if os.Getenv("PROGRESSD_WEBHOOK_LOAD") == "" {
		t.Skip("set PROGRESSD_WEBHOOK_LOAD=1 to run (about 3 minutes)")
	}
	jobs := envInt(t, "PROGRESSD_WEBHOOK_LOAD_JOBS", 10000)
	down := 60 * time.Second
	if v := os.Getenv("PROGRESSD_WEBHOOK_LOAD_DOWN"); v != "" {
		var err error
		if down, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}

	// PROGRESSD_WEBHOOK_LOAD_DB=postgres runs both nodes on a fresh
	// PostgreSQL schema instead of SQLite.
	var db func(*Config)
	if os.Getenv("PROGRESSD_WEBHOOK_LOAD_DB") == "postgres" {
		url := testsvc.PostgresSchema(t)
		db = func(c *Config) { c.DB = url }
	}
	base := startNode(t, "", db)
	baseLat, baseTook := finishJobs(t, base.URL(), createJobs(t, base.URL(), jobs))
	stopNode(t, base)
	t.Logf("baseline, no webhooks: %d jobs finished in %s; terminal report p50 %s p99 %s max %s",
		jobs, baseTook.Round(time.Millisecond), pct(baseLat, 50), pct(baseLat, 99), pct(baseLat, 100))

	rcv := webhooktest.NewReceiver(t, webhookSecret)
	rcv.SetStatus(http.StatusServiceUnavailable)
	n := startNode(t, "", func(c *Config) {
		if db != nil {
			db(c)
		}
		c.WebhookURLs, c.WebhookSecret = []string{rcv.URL}, webhookSecret
	})
	ids := createJobs(t, n.URL(), jobs)
	start := time.Now() // the first event is made now
	up := time.AfterFunc(down, func() { rcv.SetStatus(http.StatusOK) })
	defer up.Stop()
	lat, took := finishJobs(t, n.URL(), ids)
	t.Logf("webhooks on, receiver down: %d jobs finished in %s; terminal report p50 %s p99 %s max %s",
		jobs, took.Round(time.Millisecond), pct(lat, 50), pct(lat, 99), pct(lat, 100))
	if wait := time.Until(start.Add(down)); wait > 0 {
		time.Sleep(wait) // the receiver comes back at start+down
	}
	failedTries := 0
	for _, try := range rcv.Tries() {
		if try.Status != http.StatusOK {
			failedTries++
		}
	}
	back := start.Add(down)
	rcv.WaitDelivered(t, jobs, 10*time.Minute)
	all := time.Since(back)
	events, dups := rcv.Delivered()
	t.Logf("receiver back after %s (%d tries answered 503): all %d events delivered %s later; %d duplicates; %d tries in all",
		down, failedTries, len(events), all.Round(time.Millisecond), dups, len(rcv.Tries()))
	if dups != 0 || len(events) != jobs {
		t.Errorf("%d events, %d duplicates: want each of %d exactly once", len(events), dups, jobs)
	}
	if all > time.Minute {
		t.Errorf("delivering took %s after the receiver came back, want ≤ 1 minute", all)
	}
}

// createJobs creates n jobs on the node at base with 8 clients.
func createJobs(t *testing.T, base string, n int) []string {
	ids := make([]string, n)
	each(n, func(c client, i int) {
		r := c.do("POST", "/api/v1/jobs", `{"project":"load"}`)
		var s struct {
			JobID string `json:"job_id"`
		}
		if err := r.decodeErr(&s); err != nil || r.status != http.StatusCreated {
			t.Errorf("create: %d %s", r.status, r.body)
		}
		ids[i] = s.JobID
	}, client{t: t, base: base})
	return ids
}

// finishJobs reports succeeded on each job with 8 clients, returning each
// report's latency, sorted, and the time it all took.
func finishJobs(t *testing.T, base string, ids []string) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, len(ids))
	start := time.Now()
	each(len(ids), func(c client, i int) {
		t0 := time.Now()
		if r := c.do("POST", "/api/v1/jobs/"+ids[i]+"/progress", `{"state":"succeeded"}`); r.status != http.StatusOK {
			t.Errorf("report: %d %s", r.status, r.body)
		}
		lat[i] = time.Since(t0)
	}, client{t: t, base: base})
	took := time.Since(start)
	slices.Sort(lat)
	return lat, took
}

// each runs fn for 0…n-1 on 8 goroutines.
func each(n int, fn func(c client, i int), c client) {
	const clients = 8
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := w; i < n; i += clients {
				fn(c, i)
			}
		})
	}
	wg.Wait()
}

// pct is the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return sorted[i].Round(10 * time.Microsecond)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatal(fmt.Errorf("%s=%q: want a positive number", name, v))
	}
	return n
}
