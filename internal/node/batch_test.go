package node

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// batchResult is one entry of POST /api/v1/reports' results.
type batchResult struct {
	Seq   uint64 `json:"seq"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func postBatch(t *testing.T, c client, body any) []batchResult {
	t.Helper()
	r := c.do("POST", "/api/v1/reports", body)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var out struct {
		Results []batchResult `json:"results"`
	}
	r.decode(t, &out)
	return out.Results
}

// TestBatchReports: each report of a batch is applied in order as if
// posted alone; a refused one (unknown job, a bad value, a finished job,
// no job id) gets the error it would get alone and changes nothing, and
// the reports around it are applied.
func TestBatchReports(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	a := create(t, c, `{"project":"p","stages":[{"name":"x"},{"name":"y"}]}`)
	b := create(t, c, `{"project":"p"}`)
	done := create(t, c, `{"project":"p"}`)
	report(t, c, done.JobID, `{"state":"succeeded"}`)
	doneBefore := get(t, c, done.JobID)

	res := postBatch(t, c, fmt.Sprintf(`{"reports":[
		{"job_id":%[1]q,"stage":"x","progress":0.5},
		{"job_id":"no-such-job","progress":0.5},
		{"job_id":%[2]q,"progress":0.25},
		{"job_id":%[1]q,"progress":1.5},
		{"job_id":%[3]q,"progress":0.5},
		{"job_id":%[1]q,"stage":"nope"},
		{"progress":0.5},
		{"job_id":%[1]q,"stage":"y","progress":0.5,"log":["y begins","y half"]},
		{"job_id":%[2]q,"state":"succeeded"},
		{"job_id":%[1]q,"log":["a\u0000b"]}
	]}`, a.JobID, b.JobID, done.JobID))
	want := []string{"", "not_found", "", progress.CodeInvalidProgress, progress.CodeJobFinished, progress.CodeUnknownStage, "bad_request", "", "", progress.CodeInvalidLog}
	if len(res) != len(want) {
		t.Fatalf("%d results for %d reports: %+v", len(res), len(want), res)
	}
	for i, code := range want {
		switch {
		case code == "" && (res[i].Error != nil || res[i].Seq == 0):
			t.Errorf("report %d: %+v, want a seq", i, res[i])
		case code != "" && (res[i].Error == nil || res[i].Error.Code != code || res[i].Error.Message == "" || res[i].Seq != 0):
			t.Errorf("report %d: %+v, want error %s", i, res[i], code)
		}
	}
	// In order: a's two good reports in turn, the bad ones between
	// them changing nothing.
	if res[7].Seq != res[0].Seq+1 {
		t.Errorf("a's seqs %d then %d: the refused reports between them changed the job", res[0].Seq, res[7].Seq)
	}
	if g := get(t, c, a.JobID); g.Seq != res[7].Seq || !near(g.Progress, 0.75) || g.Stage != "y" {
		t.Errorf("a after the batch: seq %d progress %v stage %q, want seq %d, 0.75 in y", g.Seq, g.Progress, g.Stage, res[7].Seq)
	}
	var logs struct {
		Lines []struct{ Text string } `json:"lines"`
	}
	c.do("GET", "/api/v1/jobs/"+a.JobID+"/logs", nil).decode(t, &logs)
	if len(logs.Lines) != 2 || logs.Lines[1].Text != "y half" {
		t.Errorf("a's log lines: %+v, want the two of its good report", logs.Lines)
	}
	if g := get(t, c, b.JobID); g.Seq != res[8].Seq || g.State != progress.Succeeded {
		t.Errorf("b after the batch: %+v, want succeeded at seq %d", g, res[8].Seq)
	}
	if g := get(t, c, done.JobID); g.Seq != doneBefore.Seq {
		t.Errorf("the finished job changed: seq %d → %d", doneBefore.Seq, g.Seq)
	}
	traced := c
	traced.header = http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	if res := postBatch(t, traced, fmt.Sprintf(`{"reports":[{"job_id":%q,"progress":0.8}]}`, a.JobID)); res[0].Error != nil {
		t.Fatalf("traced batch: %+v", res)
	}
	if g := get(t, c, a.JobID); g.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace_id after a traced batch: %q", g.TraceID)
	}
	if res := postBatch(t, c, `{"reports":[]}`); len(res) != 0 {
		t.Errorf("empty batch: %+v", res)
	}
}

// TestBadBatches: a batch that cannot be read as a whole — malformed
// (NaN is not JSON), a report of the wrong shape, too many reports, too
// large — is refused whole and applies nothing.
func TestBadBatches(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p"}`)
	item := fmt.Sprintf(`{"job_id":%q,"progress":0.5}`, s.JobID)
	many := strings.TrimSuffix(strings.Repeat(item+",", progress.MaxBatchReports+1), ",")
	// Under 1,000 reports, but each near the message limit: over 1 MiB + 64 KiB.
	bigItem := fmt.Sprintf(`{"job_id":%q,"message":%q}`, s.JobID, strings.Repeat("m", 1000))
	big := strings.TrimSuffix(strings.Repeat(bigItem+",", 1200), ",")
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"NaN", `{"reports":[` + item + `,{"job_id":"x","progress":NaN}]}`, 400, "bad_request"},
		{"not a number", `{"reports":[` + item + `,{"job_id":"x","progress":"half"}]}`, 400, "bad_request"},
		{"unknown field", `{"reports":[` + item + `,{"job_id":"x","progres":0.5}]}`, 400, "bad_request"},
		{"no reports", `{}`, 400, "bad_request"},
		{"not a list", `{"reports":{}}`, 400, "bad_request"},
		{"too many", `{"reports":[` + many + `]}`, 400, "bad_request"},
		{"too large", `{"reports":[` + big + `]}`, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/reports", tc.body)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %.300s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if g := get(t, c, s.JobID); g.Seq != s.Seq {
				t.Fatalf("a refused batch changed the job: seq %d → %d", s.Seq, g.Seq)
			}
		})
	}
	// Exactly the limit is accepted.
	full := strings.TrimSuffix(strings.Repeat(item+",", progress.MaxBatchReports), ",")
	if res := postBatch(t, c, `{"reports":[`+full+`]}`); len(res) != progress.MaxBatchReports || res[len(res)-1].Error != nil {
		t.Fatalf("a batch of %d: %d results, last %+v", progress.MaxBatchReports, len(res), res[len(res)-1])
	}
}

// TestBatchReportsAuth: a batch is applied with the caller's rights, per
// report: a token scoped to one job may report on it and is refused
// (forbidden) for any other in the same batch; a read-only token is
// refused whole (403); another user's job is
// not_found, as for a single report; no token at all is refused whole.
func TestBatchReportsAuth(t *testing.T) {
	t.Parallel()
	const secret = "batch-test-secret-0123456789"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	bob := client{t: t, base: n.URL(), token: mustMint(t, secret, "bob")}
	mine := create(t, alice, `{"project":"p"}`)
	other := create(t, alice, `{"project":"p"}`)
	bobs := create(t, bob, `{"project":"p"}`)
	tok, err := auth.MintForJob(secret, "alice", mine.JobID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stage := client{t: t, base: n.URL(), token: tok}

	res := postBatch(t, stage, fmt.Sprintf(`{"reports":[{"job_id":%q,"progress":0.5},{"job_id":%q,"progress":0.5},{"job_id":%q,"progress":0.6}]}`,
		mine.JobID, other.JobID, mine.JobID))
	if res[0].Error != nil || res[2].Error != nil || res[1].Error == nil || res[1].Error.Code != "forbidden" {
		t.Fatalf("job-scoped token: %+v, want seq, forbidden, seq", res)
	}
	if g := get(t, alice, other.JobID); g.Seq != other.Seq {
		t.Fatalf("the forbidden report changed the other job: seq %d → %d", other.Seq, g.Seq)
	}
	if g := get(t, alice, mine.JobID); !near(g.Progress, 0.6) {
		t.Fatalf("the scoped job: progress %v, want 0.6", g.Progress)
	}

	res = postBatch(t, alice, fmt.Sprintf(`{"reports":[{"job_id":%q,"progress":0.5},{"job_id":%q,"progress":0.5}]}`, bobs.JobID, other.JobID))
	if res[0].Error == nil || res[0].Error.Code != "not_found" || res[1].Error != nil {
		t.Fatalf("another user's job: %+v, want not_found then a seq", res)
	}
	if g := get(t, bob, bobs.JobID); g.Seq != bobs.Seq {
		t.Fatalf("alice's report changed bob's job: seq %d → %d", bobs.Seq, g.Seq)
	}
	ro, err := auth.MintWith(secret, "alice", auth.Options{Scope: []string{"job:" + mine.JobID}, ReadOnly: true}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"reports":[{"job_id":%q,"progress":0.9}]}`, mine.JobID)
	if r := (client{t: t, base: n.URL(), token: ro}).do("POST", "/api/v1/reports", body); r.status != http.StatusForbidden || r.errCode() != "forbidden" {
		t.Fatalf("read-only token: %d %s, want 403", r.status, r.body)
	}
	if g := get(t, alice, mine.JobID); !near(g.Progress, 0.6) {
		t.Fatalf("the read-only token's batch changed the job: progress %v", g.Progress)
	}
	if r := (client{t: t, base: n.URL()}).do("POST", "/api/v1/reports", `{"reports":[]}`); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s, want 401", r.status, r.body)
	}
}
