package node

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// withKey returns c sending Idempotency-Key key.
func withKey(c client, key string) client {
	c.header = http.Header{"Idempotency-Key": {key}}
	return c
}

// listIDs returns the ids of the caller's jobs, newest first.
func listIDs(t *testing.T, c client) []string {
	t.Helper()
	r := c.do("GET", "/api/v1/jobs?limit=500", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var page struct{ Jobs []progress.Snapshot }
	r.decode(t, &page)
	ids := make([]string, len(page.Jobs))
	for i, j := range page.Jobs {
		ids[i] = j.JobID
	}
	return ids
}

// TestCreateDuringRedisOutage: with Redis down a create still happens
// whole — the job is in the database, the answer is 201, a retry with the
// same Idempotency-Key gets the same job — and the pipeline job runs once
// and is seen to finish once Redis is back. (Before, the create answered
// 503 "nothing was changed" and left the job behind, so a client that
// retried ran the pipeline twice.)
func TestCreateDuringRedisOutage(t *testing.T) {
	t.Parallel()
	g := startGated(t)
	c, body := g.c, g.body()

	g.rs.Stop()
	s := create(t, withKey(c, "outage-1"), body)
	if again := create(t, withKey(c, "outage-1"), body); again.JobID != s.JobID {
		t.Fatalf("the retry made job %s, want %s", again.JobID, s.JobID)
	}
	if ids := listIDs(t, c); len(ids) != 1 || ids[0] != s.JobID {
		t.Fatalf("jobs with Redis down: %v, want only %s", ids, s.JobID)
	}
	g.rs.Start()
	if again := create(t, withKey(c, "outage-1"), body); again.JobID != s.JobID {
		t.Fatalf("with Redis back the retry made job %s, want %s", again.JobID, s.JobID)
	}
	if err := os.WriteFile(filepath.Join(g.gate, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, s.JobID, progress.Succeeded, 30*time.Second)
	if runs, err := os.ReadFile(filepath.Join(g.gate, "runs")); err != nil || string(runs) != "run\n" {
		t.Fatalf("the command should have run once: %q %v", runs, err)
	}
	if ids := listIDs(t, c); len(ids) != 1 {
		t.Fatalf("jobs: %v, want 1", ids)
	}
}

// TestIdempotencyKey: the same key and body from the same user return the
// first answer (201, the same job, nothing created or run again), also
// when eight requests race; another body is 422 idempotency_conflict;
// another user's same key is another job; a key over 200 characters is
// refused.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	const secret = "idempotency-test-secret-0123456789"
	gate := t.TempDir()
	n := startNode(t, "", func(c *Config) { c.AuthSecret, c.Pipelines = secret, writePipelines(t, gatedPipelines) })
	mint := func(sub string) string {
		tok, err := auth.Mint(secret, sub, false, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice := client{t: t, base: n.URL(), token: mint("alice")}
	bob := client{t: t, base: n.URL(), token: mint("bob")}
	body := map[string]any{"project": "p", "pipeline": "gated", "params": map[string]string{"dir": gate}}

	first := alice.do("POST", "/api/v1/jobs", body) // no key: a job of its own
	if first.status != http.StatusCreated {
		t.Fatalf("create: %d %s", first.status, first.body)
	}
	r1 := withKey(alice, "order-42").do("POST", "/api/v1/jobs", body)
	r2 := withKey(alice, "order-42").do("POST", "/api/v1/jobs", body)
	if r1.status != http.StatusCreated || r2.status != http.StatusCreated || string(r1.body) != string(r2.body) {
		t.Fatalf("same key twice:\n%d %s\n%d %s", r1.status, r1.body, r2.status, r2.body)
	}
	var s progress.Snapshot
	r1.decode(t, &s)
	r := withKey(alice, "order-42").do("POST", "/api/v1/jobs", map[string]any{"project": "p", "pipeline": "gated", "params": map[string]string{"dir": gate + "/other"}})
	if r.status != http.StatusUnprocessableEntity || r.errCode() != "idempotency_conflict" || !strings.Contains(string(r.body), s.JobID) {
		t.Fatalf("same key, another body: %d %s", r.status, r.body)
	}
	var b progress.Snapshot
	withKey(bob, "order-42").do("POST", "/api/v1/jobs", `{"project":"p"}`).decode(t, &b)
	if b.JobID == "" || b.JobID == s.JobID || b.Owner != "bob" {
		t.Fatalf("bob's create with alice's key: %+v", b)
	}

	// Eight at once with a new key: one job.
	const racers = 8
	ids := make([]string, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			r := withKey(alice, "race").do("POST", "/api/v1/jobs", `{"project":"race"}`)
			var got progress.Snapshot
			if r.status == http.StatusCreated {
				_ = r.decodeErr(&got)
			}
			ids[i] = fmt.Sprintf("%d %s", r.status, got.JobID)
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "201 ") || len(id) < 10 {
			t.Fatalf("racing creates with one key: %v", ids)
		}
	}
	if got := listIDs(t, alice); len(got) != 3 {
		t.Fatalf("alice's jobs: %v, want 3 (no key, order-42, race)", got)
	}

	for _, tc := range []struct {
		key  string
		want int
	}{{strings.Repeat("é", 200), http.StatusCreated}, {strings.Repeat("k", 201), http.StatusBadRequest}} {
		if r := withKey(alice, tc.key).do("POST", "/api/v1/jobs", `{"project":"len"}`); r.status != tc.want {
			t.Errorf("a key of %d characters: %d %s", len([]rune(tc.key)), r.status, r.body)
		}
	}

	if r := alice.do("GET", "/openapi.json", nil); !strings.Contains(string(r.body), `"name":"Idempotency-Key"`) {
		t.Errorf("the OpenAPI document does not declare the Idempotency-Key header")
	}

	// The keyed pipeline job ran once.
	waitState(t, alice, s.JobID, progress.Running, 20*time.Second)
	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, s.JobID, progress.Succeeded, 20*time.Second)
	if m := metric(alice, "progressd_jobs_create_replayed_total"); m != "progressd_jobs_create_replayed_total 8" {
		t.Errorf("replays counted: %q, want 8 (one order-42, seven racers)", m)
	}
}

// TestIdempotencyKeyAcrossNodesAndRestarts: two nodes sharing PostgreSQL
// know each other's keys, racing creates on both make one job, and a
// restarted node still knows them.
func TestIdempotencyKeyAcrossNodesAndRestarts(t *testing.T) {
	shared := scaleOut(t)
	a, b := startNode(t, "", shared), startNode(t, "", shared)
	ca, cb := client{t: t, base: a.URL()}, client{t: t, base: b.URL()}
	s := create(t, withKey(ca, "k1"), `{"project":"p"}`)
	if got := create(t, withKey(cb, "k1"), `{"project":"p"}`); got.JobID != s.JobID {
		t.Fatalf("node b made job %s for a key node a used for %s", got.JobID, s.JobID)
	}

	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		c := []client{ca, cb}[i%2]
		wg.Go(func() {
			var got progress.Snapshot
			if r := withKey(c, "race").do("POST", "/api/v1/jobs", `{"project":"race"}`); r.status == http.StatusCreated {
				_ = r.decodeErr(&got)
			}
			ids[i] = got.JobID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("racing creates on two nodes: %v", ids)
		}
	}

	stopNode(t, a)
	a = startNode(t, "", shared)
	ca.base = a.URL()
	if got := create(t, withKey(ca, "k1"), `{"project":"p"}`); got.JobID != s.JobID {
		t.Fatalf("after a restart the key made job %s, want %s", got.JobID, s.JobID)
	}
	if got := listIDs(t, ca); len(got) != 2 {
		t.Fatalf("jobs: %v, want 2", got)
	}
}
