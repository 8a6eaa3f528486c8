package node

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

func create(t *testing.T, c client, body any) progress.Snapshot {
	t.Helper()
	r := c.do("POST", "/api/v1/jobs", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var s progress.Snapshot
	r.decode(t, &s)
	return s
}

func report(t *testing.T, c client, id string, body any) progress.Snapshot {
	t.Helper()
	r := c.do("POST", "/api/v1/jobs/"+id+"/progress", body)
	if r.status != http.StatusOK {
		t.Fatalf("report %v: %d %s", body, r.status, r.body)
	}
	var s progress.Snapshot
	r.decode(t, &s)
	return s
}

func get(t *testing.T, c client, id string) progress.Snapshot {
	t.Helper()
	r := c.do("GET", "/api/v1/jobs/"+id, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	var s progress.Snapshot
	r.decode(t, &s)
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestJobLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL(), contentType: "application/json"}

	s := create(t, c, `{"project":"p1","stages":[{"name":"fetch"},{"name":"encode","weight":8}]}`)
	if s.State != progress.Queued || s.Seq != 1 || s.Owner != auth.LocalUser || len(s.Stages) != 2 || s.Stages[1].Weight != 8 || s.StartedAt != nil {
		t.Fatalf("created: %+v", s)
	}
	// curl -d sends a form content type; the body is JSON all the same.
	curl := client{t: t, base: n.URL(), contentType: "application/x-www-form-urlencoded"}
	s = report(t, curl, s.JobID, `{"stage":"encode","progress":0.5,"message":"half"}`)
	if s.State != progress.Running || s.StartedAt == nil || !near(s.Progress, 5.0/9) || s.Stages[0].State != progress.Succeeded || s.Stage != "encode" || s.Message != "half" || s.Seq != 2 {
		t.Fatalf("after encode 0.5: %+v", s)
	}
	// A lower report is accepted and clamped.
	s = report(t, c, s.JobID, `{"progress":0.1}`)
	if !near(s.Progress, 5.0/9) || s.Seq != 3 {
		t.Fatalf("lower report was not clamped: %+v", s)
	}
	s = report(t, c, s.JobID, `{"current":900,"total":1000}`)
	if !near(s.Progress, (1+8*0.9)/9) || *s.Current != 900 || *s.Total != 1000 {
		t.Fatalf("current/total: %+v", s)
	}
	if g := get(t, c, s.JobID); g.Seq != s.Seq || !near(g.Progress, s.Progress) {
		t.Fatalf("GET %+v differs from the report's reply %+v", g, s)
	}
	s = report(t, c, s.JobID, `{"state":"succeeded"}`)
	if s.State != progress.Succeeded || s.Progress != 1 || s.FinishedAt == nil || s.Stages[1].State != progress.Succeeded {
		t.Fatalf("succeeded: %+v", s)
	}
	r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", `{"progress":0.2}`)
	if r.status != http.StatusConflict || r.errCode() != progress.CodeJobFinished {
		t.Fatalf("report after success: %d %s", r.status, r.body)
	}
	r = c.do("POST", "/api/v1/jobs/"+s.JobID+"/cancel", nil)
	if r.status != http.StatusConflict {
		t.Fatalf("cancel after success: %d %s", r.status, r.body)
	}
	if g := get(t, c, s.JobID); g.Seq != s.Seq || g.State != progress.Succeeded {
		t.Fatalf("a rejected report changed the job: %+v", g)
	}
}

func TestWireShape(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	r := c.do("POST", "/api/v1/jobs", `{"project":"p1"}`)
	body := string(r.body)
	for _, field := range []string{`"job_id":`, `"project":"p1"`, `"owner":"local"`, `"state":"queued"`, `"progress":0`,
		`"stages":[]`, `"current":null`, `"total":null`, `"message":""`, `"eta_seconds":null`, `"seq":1`,
		`"created_at":"`, `"started_at":null`, `"updated_at":"`, `"finished_at":null`, `"error":null`} {
		if !strings.Contains(body, field) {
			t.Errorf("snapshot %s lacks %s", body, field)
		}
	}
	if strings.Contains(body, "$schema") || strings.Contains(body, "rate") {
		t.Errorf("snapshot carries fields outside the contract: %s", body)
	}
	var s progress.Snapshot
	r.decode(t, &s)
	if ts := s.CreatedAt.Format(progress.TimeLayout); !strings.Contains(body, `"created_at":"`+ts+`"`) || !strings.HasSuffix(ts, "Z") {
		t.Errorf("created_at is not RFC 3339 UTC with milliseconds: %s", body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p1"}`)
	report(t, c, s.JobID, `{"progress":0.3}`)
	r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/cancel", nil)
	if r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	r.decode(t, &s)
	if s.State != progress.Canceled || !near(s.Progress, 0.3) || s.Error == nil || s.FinishedAt == nil {
		t.Fatalf("canceled: %+v", s)
	}
}

// TestBadReports sends every kind of bad report and checks the precise
// error and that the job did not change.
func TestBadReports(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p1","stages":[{"name":"a"},{"name":"b"}]}`)
	s = report(t, c, s.JobID, `{"stage":"a","current":5,"total":10}`)

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"NaN", `{"progress": NaN}`, 400, "bad_request"},
		{"Infinity", `{"progress": Infinity}`, 400, "bad_request"},
		{"huge number", `{"progress": 1e400}`, 400, "bad_request"},
		{"above one", `{"progress": 1.5}`, 400, progress.CodeInvalidProgress},
		{"negative", `{"progress": -0.1}`, 400, progress.CodeInvalidProgress},
		{"not a number", `{"progress": "half"}`, 400, "bad_request"},
		{"current above total", `{"current": 11}`, 400, progress.CodeInvalidCount},
		{"current above new total", `{"current": 5, "total": 3}`, 400, progress.CodeInvalidCount},
		{"negative total", `{"total": -1}`, 400, progress.CodeInvalidCount},
		{"unknown stage", `{"stage": "zzz"}`, 400, progress.CodeUnknownStage},
		{"unknown state", `{"state": "paused"}`, 400, progress.CodeInvalidState},
		{"back to queued", `{"state": "queued"}`, 400, progress.CodeInvalidState},
		{"error with success", `{"state": "succeeded", "error": "x"}`, 400, progress.CodeInvalidState},
		{"long message", `{"message": "` + strings.Repeat("m", 2000) + `"}`, 400, progress.CodeInvalidMessage},
		{"malformed JSON", `{"progress": 0.5`, 400, "bad_request"},
		{"not an object", `[1,2]`, 400, "bad_request"},
		{"unknown field", `{"progres": 0.5}`, 400, "bad_request"},
		{"oversized body", `{"message": "` + strings.Repeat("m", 70<<10) + `"}`, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", tc.body)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if g := get(t, c, s.JobID); g.Seq != s.Seq || g.Progress != s.Progress {
				t.Fatalf("a rejected report changed the job: seq %d → %d", s.Seq, g.Seq)
			}
		})
	}
	r := c.do("POST", "/api/v1/jobs/nope/progress", `{"progress":0.5}`)
	if r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("unknown job: %d %s", r.status, r.body)
	}
	r = c.do("GET", "/api/v1/jobs/nope", nil)
	if r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("GET unknown job: %d %s", r.status, r.body)
	}
}

func TestBadCreates(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	for _, tc := range []struct {
		name, body string
		code       string
	}{
		{"no project", `{}`, "bad_request"},
		{"empty project", `{"project": ""}`, progress.CodeInvalidJob},
		{"project with space", `{"project": "a b"}`, progress.CodeInvalidJob},
		{"duplicate stages", `{"project": "p", "stages": [{"name": "a"}, {"name": "a"}]}`, progress.CodeInvalidJob},
		{"zero weight", `{"project": "p", "stages": [{"name": "a", "weight": 0}]}`, progress.CodeInvalidJob},
		{"negative weight", `{"project": "p", "stages": [{"name": "a", "weight": -2}]}`, progress.CodeInvalidJob},
		{"unknown pipeline", `{"project": "p", "pipeline": "nope"}`, "unknown_pipeline"},
		{"params without pipeline", `{"project": "p", "params": {"a": "b"}}`, "invalid_param"},
		{"bad JSON", `{"project": `, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/jobs", tc.body)
			if r.status != 400 || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.body, tc.code)
			}
		})
	}
	var list struct{ Jobs []progress.Snapshot }
	c.do("GET", "/api/v1/jobs", nil).decode(t, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("rejected creates left %d jobs", len(list.Jobs))
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, create(t, c, `{"project":"pa"}`).JobID)
	}
	done := create(t, c, `{"project":"pb"}`)
	report(t, c, done.JobID, `{"state":"succeeded"}`)

	var seen []string
	path := "/api/v1/jobs?project=pa&limit=3"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var page struct {
			Jobs       []progress.Snapshot `json:"jobs"`
			NextCursor *string             `json:"next_cursor"`
		}
		r := c.do("GET", path, nil)
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		r.decode(t, &page)
		for _, j := range page.Jobs {
			seen = append(seen, j.JobID)
		}
		if page.NextCursor == nil {
			break
		}
		path = "/api/v1/jobs?project=pa&limit=3&cursor=" + *page.NextCursor
	}
	for i := range ids {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("pages = %v, want newest first %v", seen, ids)
		}
	}
	var only struct{ Jobs []progress.Snapshot }
	c.do("GET", "/api/v1/jobs?state=succeeded", nil).decode(t, &only)
	if len(only.Jobs) != 1 || only.Jobs[0].JobID != done.JobID {
		t.Fatalf("state filter: %+v", only.Jobs)
	}
	if r := c.do("GET", "/api/v1/jobs?state=bogus", nil); r.status != 400 {
		t.Fatalf("bad state filter: %d %s", r.status, r.body)
	}
	if r := c.do("GET", "/api/v1/jobs?limit=100000", nil); r.status != 400 {
		t.Fatalf("limit over 500: %d %s", r.status, r.body)
	}
}

func TestListByOwner(t *testing.T) {
	t.Parallel()
	const secret = "api-owner-filter-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	bob := client{t: t, base: n.URL(), token: mustMint(t, secret, "bob")}
	rootTok, err := auth.Mint(secret, "root", true, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admin := client{t: t, base: n.URL(), token: rootTok}
	a1 := create(t, alice, `{"project":"owned"}`)
	a2 := create(t, alice, `{"project":"owned"}`)
	b1 := create(t, bob, `{"project":"owned"}`)
	forCarol := create(t, admin, `{"project":"owned","owner":"carol"}`)

	ids := func(c client, path string) []string {
		t.Helper()
		var list struct{ Jobs []progress.Snapshot }
		r := c.do("GET", path, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		r.decode(t, &list)
		var out []string
		for _, j := range list.Jobs {
			out = append(out, j.JobID)
		}
		return out
	}
	for _, tc := range []struct {
		who  string
		c    client
		path string
		want []string
	}{
		{"admin", admin, "/api/v1/jobs?project=owned&owner=alice", []string{a2.JobID, a1.JobID}},
		{"admin", admin, "/api/v1/jobs?owner=bob", []string{b1.JobID}},
		{"admin", admin, "/api/v1/jobs?project=owned&owner=carol&state=queued", []string{forCarol.JobID}},
		{"admin", admin, "/api/v1/jobs?project=owned", []string{forCarol.JobID, b1.JobID, a2.JobID, a1.JobID}},
		{"admin", admin, "/api/v1/jobs?owner=nobody", nil},
		{"alice", alice, "/api/v1/jobs?project=owned&owner=alice", []string{a2.JobID, a1.JobID}},
		// Not an admin: another owner matches none of the jobs it may see.
		{"alice", alice, "/api/v1/jobs?project=owned&owner=bob", nil},
		{"bob", bob, "/api/v1/jobs?owner=carol", nil},
	} {
		if got := ids(tc.c, tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("%s GET %s = %v, want %v", tc.who, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"a%20b", "x%00y", strings.Repeat("o", 300)} {
		if r := admin.do("GET", "/api/v1/jobs?owner="+bad, nil); r.status != 400 || !strings.Contains(string(r.body), "owner") {
			t.Errorf("owner %q: %d %s", bad, r.status, r.body)
		}
	}
}

func TestAuthAndVisibility(t *testing.T) {
	t.Parallel()
	const secret = "api-visibility-test-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	tok := func(sub string, admin bool, ttl time.Duration) string {
		now := time.Now()
		if ttl < 0 { // already expired: issued in the past
			now, ttl = now.Add(2*ttl), -ttl
		}
		s, err := auth.Mint(secret, sub, admin, ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice := client{t: t, base: n.URL(), token: tok("alice", false, time.Hour)}
	bob := client{t: t, base: n.URL(), token: tok("bob", false, time.Hour)}
	admin := client{t: t, base: n.URL(), token: tok("root", true, time.Hour)}

	for name, c := range map[string]client{
		"no token":  {t: t, base: n.URL()},
		"bad token": {t: t, base: n.URL(), token: "garbage"},
		"expired":   {t: t, base: n.URL(), token: tok("alice", false, -time.Minute)},
		"wrong key": {t: t, base: n.URL(), token: mustMint(t, "other-secret", "alice")},
	} {
		if r := c.do("GET", "/api/v1/jobs", nil); r.status != 401 || r.errCode() != "unauthorized" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	job := create(t, alice, `{"project":"shared"}`)
	if job.Owner != "alice" {
		t.Fatalf("owner = %q, want the token's sub", job.Owner)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/jobs/" + job.JobID, ""},
		{"POST", "/api/v1/jobs/" + job.JobID + "/progress", `{"progress":0.5}`},
		{"POST", "/api/v1/jobs/" + job.JobID + "/cancel", ""},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		if r := bob.do(tc.method, tc.path, body); r.status != 404 {
			t.Errorf("bob %s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
	}
	var list struct{ Jobs []progress.Snapshot }
	bob.do("GET", "/api/v1/jobs?project=shared", nil).decode(t, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("bob lists alice's jobs: %+v", list.Jobs)
	}
	admin.do("GET", "/api/v1/jobs?project=shared", nil).decode(t, &list)
	if len(list.Jobs) != 1 {
		t.Fatalf("admin list: %+v", list.Jobs)
	}
	report(t, admin, job.JobID, `{"progress":0.5}`)
	if g := get(t, alice, job.JobID); !near(g.Progress, 0.5) {
		t.Fatalf("alice sees %+v", g)
	}
	// Open endpoints need no token.
	open := client{t: t, base: n.URL()}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/"} {
		if r := open.do("GET", p, nil); r.status != 200 {
			t.Errorf("GET %s without a token: %d", p, r.status)
		}
	}
}

func mustMint(t *testing.T, secret, sub string) string {
	s, err := auth.Mint(secret, sub, false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRefusesOpenAddressWithoutSecret(t *testing.T) {
	cfg := Defaults()
	cfg.Addr = "0.0.0.0:0"
	cfg.DataDir = t.TempDir()
	_, err := Start(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "--auth-secret") {
		t.Fatalf("Start on 0.0.0.0 without a secret: %v", err)
	}
}

// TestRestartLosesNothing reports progress that is only written behind,
// stops the node cleanly and starts a new one on the same data dir.
func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, dir, func(c *Config) { c.FlushInterval = time.Hour })
	c := client{t: t, base: n.URL()}
	var want []progress.Snapshot
	for i := 0; i < 5; i++ {
		s := create(t, c, fmt.Sprintf(`{"project":"p%d","stages":[{"name":"a"},{"name":"b"}]}`, i%2))
		for p := 1; p <= 10; p++ {
			s = report(t, c, s.JobID, fmt.Sprintf(`{"stage":"b","progress":%g}`, float64(p)/20))
		}
		want = append(want, s)
	}
	done := report(t, c, want[0].JobID, `{"state":"succeeded"}`)
	want[0] = done
	stopNode(t, n)

	n2 := startNode(t, dir, nil)
	c2 := client{t: t, base: n2.URL()}
	for _, w := range want {
		g := get(t, c2, w.JobID)
		wantSeq := w.Seq
		if !w.State.Terminal() {
			wantSeq += jobs.ReloadSeqGap
		}
		if g.Seq != wantSeq || !near(g.Progress, w.Progress) || g.State != w.State || g.Stage != w.Stage {
			t.Fatalf("after restart %s = seq %d %v %s, want seq %d %v %s", w.JobID, g.Seq, g.Progress, g.State, wantSeq, w.Progress, w.State)
		}
	}
	// Reports go on where they left off, with a seq above anything a
	// client saw before the restart (jobs.ReloadSeqGap).
	s := report(t, c2, want[1].JobID, `{"progress":0.9}`)
	if s.Seq <= want[1].Seq+jobs.ReloadSeqGap || !near(s.Progress, 0.95) { // stage b at 0.9 of two equal stages
		t.Fatalf("after restart seq = %d progress %v, want seq > %d", s.Seq, s.Progress, want[1].Seq+jobs.ReloadSeqGap)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p"}`)
	report(t, c, s.JobID, `{"progress":0.5}`)
	c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", `{"progress":7}`)

	if r := c.do("GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	r := c.do("GET", "/readyz", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"database":"ok"`) {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	r = c.do("GET", "/metrics", nil)
	for _, m := range []string{
		"progressd_reports_accepted_total 1",
		`progressd_reports_rejected_total{reason="invalid_progress"} 1`,
		`progressd_job_transitions_total{state="running"} 1`,
		`progressd_jobs{state="queued"} 0`,
		`progressd_jobs{state="running"} 1`,
		"progressd_http_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	r = c.do("GET", "/openapi.json", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"openapi":"3.1.0"`) || !strings.Contains(string(r.body), "/api/v1/jobs/{id}/progress") {
		t.Fatalf("openapi.json: %d %.200s", r.status, r.body)
	}
	r = c.do("GET", "/docs", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "swagger-ui-bundle.js") || strings.Contains(string(r.body), "https://") {
		t.Fatalf("/docs: %d %s", r.status, r.body)
	}
	if r := c.do("GET", "/docs/swagger-ui-bundle.js", nil); r.status != 200 || len(r.body) < 100_000 {
		t.Fatalf("swagger bundle: %d, %d bytes", r.status, len(r.body))
	}

	// With the database gone, readiness says so.
	if err := n.db.Close(); err != nil {
		t.Fatal(err)
	}
	r = c.do("GET", "/readyz", nil)
	if r.status != 503 || !strings.Contains(string(r.body), `"database"`) || strings.Contains(string(r.body), `"database":"ok"`) {
		t.Fatalf("readyz with the database closed: %d %s", r.status, r.body)
	}
}
