package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/progressd/progressd/internal/testsvc"
)

// mintClaims signs claims (JSON, without exp: an hour is added).
func mintClaims(t *testing.T, secret, claims string) string {
	t.Helper()
	var m jwt.MapClaims
	if err := json.Unmarshal([]byte(claims), &m); err != nil {
		t.Fatal(err)
	}
	m["exp"] = time.Now().Add(time.Hour).Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestDeleteJob: DELETE /api/v1/jobs/{id} (SPEC.md part two,
// "Lifecycle") on one node (SQLite, memory) and on two nodes sharing
// PostgreSQL and Redis: a finished job of the caller's, 204, then GET is
// 404 on every node and its log lines are gone; not finished, 409;
// another user's, 404 and nothing deleted; a scoped or read-only token,
// 403; reports racing the delete get 409 or 404, never a 2xx, and the job
// stays deleted; /metrics counts the deletes.
func TestDeleteJob(t *testing.T) {
	t.Parallel()
	for name, shared := range map[string]bool{"single": false, "postgres+redis": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const secret = "delete-test-secret"
			mod := func(c *Config) { c.AuthSecret = secret }
			if shared {
				sh := scaleOut(t)
				mod = func(c *Config) { c.AuthSecret = secret; sh(c) }
			}
			a := startNode(t, "", mod)
			b := a
			if shared {
				b = startNode(t, "", mod)
			}
			alice := client{t: t, base: a.URL(), token: mustMint(t, secret, "alice")}
			aliceB := client{t: t, base: b.URL(), token: alice.token}
			bob := client{t: t, base: a.URL(), token: mustMint(t, secret, "bob")}

			running := create(t, alice, `{"project":"p"}`)
			done := create(t, alice, `{"project":"p"}`)
			report(t, alice, done.JobID, `{"progress":0.5,"log":["one","two"]}`)
			report(t, alice, done.JobID, `{"state":"succeeded"}`)
			get(t, aliceB, done.JobID) // cached on the other node too

			for _, tc := range []struct {
				c      client
				id     string
				status int
				code   string
			}{
				{alice, running.JobID, 409, "job_not_finished"},
				{bob, done.JobID, 404, "not_found"},
				{alice, "no-such-job", 404, "not_found"},
			} {
				if r := tc.c.do("DELETE", "/api/v1/jobs/"+tc.id, nil); r.status != tc.status || r.errCode() != tc.code {
					t.Errorf("DELETE %s: %d %s, want %d %s", tc.id, r.status, r.body, tc.status, tc.code)
				}
			}
			get(t, alice, done.JobID)

			// Reports race the delete: none may succeed, none may bring it back.
			var wg sync.WaitGroup
			bad := make(chan string, 64)
			for i := range 8 {
				wg.Go(func() {
					c := []client{alice, aliceB}[i%2]
					for range 4 {
						r := c.do("POST", "/api/v1/jobs/"+done.JobID+"/progress", `{"progress":0.9}`)
						if r.status != http.StatusConflict && r.status != http.StatusNotFound {
							bad <- fmt.Sprintf("%d %s", r.status, r.body)
						}
					}
				})
			}
			if r := alice.do("DELETE", "/api/v1/jobs/"+done.JobID, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("DELETE of a finished job: %d %s, want 204", r.status, r.body)
			}
			wg.Wait()
			close(bad)
			for b := range bad {
				t.Errorf("a report racing the delete got %s, want 409 or 404", b)
			}
			for _, c := range []client{alice, aliceB} {
				for _, path := range []string{"/api/v1/jobs/" + done.JobID, "/api/v1/jobs/" + done.JobID + "/logs"} {
					if r := c.do("GET", path, nil); r.status != http.StatusNotFound {
						t.Errorf("GET %s on %s after the delete: %d %s, want 404", path, c.base, r.status, r.body)
					}
				}
			}
			if r := alice.do("GET", "/api/v1/jobs?project=p", nil); strings.Contains(string(r.body), done.JobID) {
				t.Errorf("the list still has the deleted job: %s", r.body)
			}
			if r := alice.do("DELETE", "/api/v1/jobs/"+done.JobID, nil); r.status != http.StatusNotFound {
				t.Errorf("second DELETE: %d, want 404", r.status)
			}
			if m := metric(alice, `progressd_jobs_deleted_total{reason="request"}`); !strings.HasSuffix(m, " 1") {
				t.Errorf("metric: %q, want 1 request delete", m)
			}
		})
	}
}

// TestDeleteRefusedToScopedTokens: a scoped token never deletes, and a
// read-only one writes nothing (403), even on a job its scope names.
func TestDeleteRefusedToScopedTokens(t *testing.T) {
	t.Parallel()
	const secret = "delete-test-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	done := create(t, alice, `{"project":"p"}`)
	report(t, alice, done.JobID, `{"state":"succeeded"}`)
	for _, o := range []string{`"scope":["job:` + done.JobID + `"]`, `"read_only":true`} {
		tok := mintClaims(t, secret, `{"sub":"alice",`+o+`}`)
		if r := (client{t: t, base: n.URL(), token: tok}).do("DELETE", "/api/v1/jobs/"+done.JobID, nil); r.status != http.StatusForbidden {
			t.Errorf("DELETE with %s: %d %s, want 403", o, r.status, r.body)
		}
	}
	get(t, alice, done.JobID)
}

// TestRetention: with --retention, finished jobs older than it are
// deleted by the sweep (at least as often as the retention), running ones
// never; /metrics counts them.
func TestRetention(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", func(c *Config) { c.Retention = 200 * time.Millisecond })
	local := client{t: t, base: n.URL()}
	running := create(t, local, `{"project":"p"}`)
	var done []string
	for range 3 {
		j := create(t, local, `{"project":"p"}`)
		report(t, local, j.JobID, `{"state":"failed","error":"x"}`)
		done = append(done, j.JobID)
	}
	testsvc.Eventually(t, 20*time.Second, "the finished jobs to be swept", func() bool {
		for _, id := range done {
			if local.do("GET", "/api/v1/jobs/"+id, nil).status != http.StatusNotFound {
				return false
			}
		}
		return true
	})
	get(t, local, running.JobID)
	if m := metric(local, `progressd_jobs_deleted_total{reason="retention"}`); !strings.HasSuffix(m, " 3") {
		t.Errorf("metric: %q, want 3 retention deletes", m)
	}
}

// TestRetentionNegativeRefused: --retention -1h refuses to start and says
// why.
func TestRetentionNegativeRefused(t *testing.T) {
	cfg := Defaults()
	cfg.Retention = -time.Hour
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--retention") {
		t.Fatalf("Validate: %v", err)
	}
}
