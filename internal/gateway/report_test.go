package gateway

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// TestWSReport: a report frame is applied as an HTTP report would be and
// answered with the seq it produced; subscribers see the change. Each bad
// report gets its error reply, changes nothing, and the connection stays.
func TestWSReport(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + job.JobID)
	if f := c.next(); f.Job.Seq != job.Seq {
		t.Fatalf("first update %+v, want the snapshot at seq %d", f.Job, job.Seq)
	}

	r := c.call("report", map[string]any{"job_id": job.JobID, "progress": 0.5, "message": "half"})
	if r.Error != nil || r.Seq != job.Seq+1 {
		t.Fatalf("report reply %+v, want seq %d", r, job.Seq+1)
	}
	if f := c.next(); f.Job.Seq != r.Seq || f.Job.Progress != 0.5 || f.Job.Message != "half" {
		t.Fatalf("update after the report: %+v", f.Job)
	}

	for _, tc := range []struct {
		name  string
		extra map[string]any
		code  string
	}{
		{"no job id", map[string]any{"progress": 0.6}, CodeBadRequest},
		{"unknown job", map[string]any{"job_id": "no-such-job", "progress": 0.6}, CodeNotFound},
		{"above one", map[string]any{"job_id": job.JobID, "progress": 1.5}, CodeBadRequest},
		{"unknown stage", map[string]any{"job_id": job.JobID, "stage": "zzz"}, CodeBadRequest},
		{"wrong type", map[string]any{"job_id": job.JobID, "progress": "half"}, CodeBadRequest},
		{"unknown field", map[string]any{"job_id": job.JobID, "progres": 0.6}, CodeBadRequest},
		{"long message", map[string]any{"job_id": job.JobID, "message": strings.Repeat("m", 2000)}, CodeBadRequest},
	} {
		if r := c.call("report", tc.extra); r.Error == nil || r.Error.Code != tc.code || r.Seq != 0 {
			t.Errorf("%s: reply %+v, want error %s", tc.name, r, tc.code)
		}
	}
	// NaN is not JSON: the frame is malformed, and the reply still comes.
	c.sendRaw([]byte(`{"op":"report","id":99,"job_id":"` + job.JobID + `","progress":NaN}`))
	if f := c.awaitReply("null"); f.Error == nil || f.Error.Code != CodeBadRequest {
		t.Fatalf("NaN: %+v, want bad_request", f)
	}

	r = c.call("report", map[string]any{"job_id": job.JobID, "state": "succeeded"})
	if r.Error != nil || r.Seq != job.Seq+2 {
		t.Fatalf("terminal report reply %+v, want seq %d: the refused reports changed the job", r, job.Seq+2)
	}
	if f := c.untilTerminal(job.JobID); f.Job.State != progress.Succeeded {
		t.Fatalf("terminal update %+v", f.Job)
	}
	c.expectError(CodeConflict, "report", map[string]any{"job_id": job.JobID, "progress": 0.9})
	if s, err := e.svc.Get(context.Background(), job.JobID); err != nil || s.Seq != job.Seq+2 {
		t.Fatalf("after the refused reports: seq %d (%v), want %d", s.Seq, err, job.Seq+2)
	}
}

// TestWSReportAuth: reports need a principal; a token scoped to one job
// may report on it only (forbidden for another), a read-only one on
// nothing; another user's job is
// not_found, as over HTTP.
func TestWSReportAuth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mine := e.createJob(t, "alice", "p")
	other := e.createJob(t, "alice", "p")
	bobs := e.createJob(t, "bob", "p")

	anon := e.dial(t, "", nil)
	anon.expectError(CodeUnauthorized, "report", map[string]any{"job_id": mine.JobID, "progress": 0.1})

	stage := e.dial(t, "token="+url.QueryEscape(scopedToken(t, mine.JobID)), nil)
	if r := stage.call("report", map[string]any{"job_id": mine.JobID, "progress": 0.2}); r.Error != nil || r.Seq == 0 {
		t.Fatalf("report on its own job: %+v", r)
	}
	stage.expectError(CodeForbidden, "report", map[string]any{"job_id": other.JobID, "progress": 0.2})

	ro, err := auth.MintWith(testSecret, "alice", auth.Options{Scope: []string{"job:" + mine.JobID}, ReadOnly: true}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reader := e.dial(t, "token="+url.QueryEscape(ro), nil)
	reader.expectError(CodeForbidden, "report", map[string]any{"job_id": mine.JobID, "progress": 0.9})

	alice := e.dialAs(t, "alice")
	alice.expectError(CodeNotFound, "report", map[string]any{"job_id": bobs.JobID, "progress": 0.2})

	if s, err := e.svc.Get(context.Background(), mine.JobID); err != nil || s.Progress != 0.2 {
		t.Fatalf("the read-only token's report changed its job: progress %v (%v)", s.Progress, err)
	}
	for _, j := range []progress.Snapshot{other, bobs} {
		if s, err := e.svc.Get(context.Background(), j.JobID); err != nil || s.Seq != j.Seq {
			t.Fatalf("job %s changed by a refused report: seq %d → %d (%v)", j.JobID, j.Seq, s.Seq, err)
		}
	}
}
