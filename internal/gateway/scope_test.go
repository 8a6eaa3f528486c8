package gateway

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// scopedToken mints the kind of token a pipeline stage gets: alice's,
// scoped to job.
func scopedToken(t *testing.T, job string) string {
	t.Helper()
	return mintScoped(t, "alice", false, time.Hour, "job:"+job, "logs:"+job)
}

// TestWSJobScopedToken: a stage's token may watch its own job over
// WebSocket, and nothing else of its owner's — not another job, not the
// owner's project: or user: channels. A refresh to a token of another
// scope of the same user is taken, and what it does not allow is dropped
// (TestWSRefreshWithFewerRights).
func TestWSJobScopedToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mine := e.createJob(t, "alice", "p")
	other := e.createJob(t, "alice", "p")
	c := e.dial(t, "token="+url.QueryEscape(scopedToken(t, mine.JobID)), nil)

	ch := func(s string) map[string]any { return map[string]any{"channel": s} }
	for _, name := range []string{"job:" + other.JobID, "job:no-such-job", "project:p", "user:alice"} {
		c.expectError(CodeForbidden, "subscribe", ch(name))
	}
	c.subscribe("job:" + mine.JobID)
	if f := c.next(); f.Job.JobID != mine.JobID {
		t.Fatalf("first update %+v, want job %s", f.Job, mine.JobID)
	}
	e.report(t, other.JobID, 0.3, "")
	e.report(t, mine.JobID, 0.6, "")
	if f := c.next(); f.Job.JobID != mine.JobID || f.Job.Progress != 0.6 {
		t.Fatalf("update %+v, want job %s at 0.6 (and nothing of job %s)", f.Job, mine.JobID, other.JobID)
	}
	if r := c.call("auth", map[string]any{"token": scopedToken(t, mine.JobID)}); r.Error != nil || len(c.revoked) > 0 {
		t.Fatalf("refresh with a token of the same scope: %v, revoked %+v", r.Error, c.revoked)
	}
	c.expectError(CodeForbidden, "subscribe", ch("project:p"))
}

// TestSSEJobScopedToken: the same over Server-Sent Events. Another job is
// 403 (not 404 as for another user's job: the refusal comes before any
// read of the job, and says why).
func TestSSEJobScopedToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mine := e.createJob(t, "alice", "p")
	other := e.createJob(t, "alice", "p")
	tok := "token=" + url.QueryEscape(scopedToken(t, mine.JobID))
	events := func(chs ...string) string {
		return "/api/v1/events?" + tok + "&" + url.Values{"channel": chs}.Encode()
	}
	for _, path := range []string{
		"/api/v1/jobs/" + other.JobID + "/events?" + tok,
		"/api/v1/jobs/no-such-job/events?" + tok,
		events("job:" + other.JobID),
		events("project:p"),
		events("user:alice"),
		events("job:"+mine.JobID, "project:p"),
	} {
		resp := e.get(t, path, nil)
		var body struct{ Error protoError }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("GET %s: body: %v", path, err)
			continue
		}
		if resp.StatusCode != 403 || body.Error.Code != CodeForbidden {
			t.Errorf("GET %s: %d %+v, want 403 forbidden", path, resp.StatusCode, body.Error)
		}
	}
	for _, path := range []string{"/api/v1/jobs/" + mine.JobID + "/events?" + tok, events("job:" + mine.JobID)} {
		s := e.stream(t, path, nil)
		ev := s.update()
		if path == events("job:"+mine.JobID) {
			var d struct{ Job json.RawMessage }
			if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
				t.Fatal(err)
			}
			ev.data = string(d.Job)
		}
		if got := decodeSnapshot(t, ev.data); got.JobID != mine.JobID {
			t.Errorf("GET %s: first snapshot is of job %s, want %s", path, got.JobID, mine.JobID)
		}
		s.resp.Body.Close()
	}
}
