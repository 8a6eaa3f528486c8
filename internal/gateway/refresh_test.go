package gateway

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// TestWSRefreshWithFewerRights: a connection refreshed in band to a token
// with fewer rights loses the subscriptions the new token does not allow,
// each named in an error frame, and gets no update of them afterwards
// (SPEC.md part two, issue 10 item 6). An admin token of alice subscribed
// to bob's user: and job: channels refreshes to alice's plain token; a
// plain token narrows to a job-scoped one; a wider token drops nothing.
func TestWSRefreshWithFewerRights(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bobs := e.createJob(t, "bob", "p")
	alices := e.createJob(t, "alice", "p")
	alices2 := e.createJob(t, "alice", "q")
	c := e.dial(t, "token="+url.QueryEscape(e.token(t, "alice", true, time.Hour)), nil)
	kept := []string{"user:alice", "job:" + alices.JobID, "job:" + alices2.JobID, "project:p"}
	for _, ch := range append([]string{"user:bob", "job:" + bobs.JobID}, kept...) {
		c.subscribe(ch)
	}
	c.call("ping", nil) // its reply follows the first snapshots
	c.early = nil

	refresh := func(tok string, wantRevoked ...string) {
		t.Helper()
		c.revoked = nil
		if r := c.call("auth", map[string]any{"token": tok}); r.Error != nil {
			t.Fatalf("refresh: %v", r.Error)
		}
		var got []string
		for _, f := range c.revoked {
			if f.Error == nil || f.Error.Code != CodeForbidden || f.Error.Message == "" {
				t.Errorf("error frame %+v, want code forbidden and a message", f)
			}
			got = append(got, f.Channel)
		}
		slices.Sort(got)
		slices.Sort(wantRevoked)
		if !slices.Equal(got, wantRevoked) {
			t.Fatalf("refresh dropped %v, want %v", got, wantRevoked)
		}
	}
	refresh(e.token(t, "alice", false, time.Hour), "job:"+bobs.JobID, "user:bob")

	// bob's job changes first, then alice's: an update of bob's would be
	// read before alice's, on any channel.
	e.report(t, bobs.JobID, 0.5, "")
	e.report(t, alices.JobID, 0.5, "")
	seen := map[string]bool{}
	for len(seen) < 3 { // job:, user: and project: of alice's job
		f := c.next()
		if f.Job.JobID != alices.JobID {
			t.Fatalf("after the refresh got %s of job %s (owner %s), want only alice's job", f.Channel, f.Job.JobID, f.Job.Owner)
		}
		seen[f.Channel] = true
	}

	// Narrowed to one job: every other channel goes; a wider token again
	// drops nothing, and the dropped channels do not come back.
	scoped, err := auth.MintForJob(testSecret, "alice", alices.JobID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	refresh(scoped, "user:alice", "project:p", "job:"+alices2.JobID)
	refresh(e.token(t, "alice", true, time.Hour))
	e.report(t, alices2.JobID, 0.5, "")
	e.report(t, alices.JobID, 1, progress.Succeeded)
	if f := c.next(); f.Channel != "job:"+alices.JobID || f.Job.State != progress.Succeeded {
		t.Fatalf("after narrowing got %s of job %s, want only job:%s", f.Channel, f.Job.JobID, alices.JobID)
	}
	if v := value(e.gw.m.revoked); v != 5 {
		t.Fatalf("revoked subscriptions metric = %v, want 5", v)
	}
}

// TestRefreshDropsQueuedUpdatesNoLongerVisible: project: channels stay
// after an admin token is replaced by a plain one, but updates of other
// users' jobs queued under the admin token and not yet sent do not go out
// after the refresh.
func TestRefreshDropsQueuedUpdatesNoLongerVisible(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(transportWS, newQueue(100, 1<<20), e.gw.m)
	s.wake, s.overflow = func(bool) bool { return false }, func() {}
	admin, plain := auth.Principal{Subject: "alice", Admin: true}, auth.Principal{Subject: "alice"}
	s.principal.Store(&admin)
	e.gw.hub.subscribe("project:p", s)
	defer e.gw.hub.close(s)
	e.createJob(t, "bob", "p")
	alices := e.createJob(t, "alice", "p")
	owners := func() (out []string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range s.q.take(nil) {
			out = append(out, m.owner)
		}
		return out
	}
	s.mu.Lock()
	queued := s.q.frames
	s.mu.Unlock()
	if queued != 2 {
		t.Fatalf("%d frames queued under the admin token, want 2", queued)
	}
	s.principal.Store(&plain)
	e.gw.recheck(s, admin, plain)
	if got := owners(); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("after the refresh the queue sends jobs of %v, want only alice's (%s)", got, alices.JobID)
	}
}
