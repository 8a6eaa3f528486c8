package gateway

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// mintScoped mints sub's token limited to scope.
func mintScoped(t *testing.T, sub string, readOnly bool, ttl time.Duration, scope ...string) string {
	t.Helper()
	tok, err := auth.MintWith(testSecret, sub, auth.Options{Scope: scope, ReadOnly: readOnly}, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestWSScopedTokens: the token a backend hands to an end user (SPEC.md
// part two, "Scoped tokens") subscribes only to the channels its scope
// names, literally, and only gets jobs of its own user on them: a scope
// naming another user's job grants nothing. A refresh in band to another
// scope re-checks every subscription and drops, with an error frame each,
// those the new scope does not name.
func TestWSScopedTokens(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	create := func(owner string, r jobs.CreateRequest) progress.Snapshot {
		t.Helper()
		s, err := e.svc.Create(ctx, owner, r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parent := create("alice", jobs.CreateRequest{Project: "p"})
	child := create("alice", jobs.CreateRequest{ParentID: parent.JobID})
	blue := create("alice", jobs.CreateRequest{Project: "p", Tags: []string{"blue"}})
	bobsBlue := create("bob", jobs.CreateRequest{Project: "web", Tags: []string{"blue"}})
	web := create("alice", jobs.CreateRequest{Project: "web"})
	bobs := e.createJob(t, "bob", "p")

	tok := mintScoped(t, "alice", true, time.Hour, "children:"+parent.JobID, "tag:blue", "project:web", "job:"+bobs.JobID)
	c := e.dial(t, "token="+url.QueryEscape(tok), nil)
	ch := func(s string) map[string]any { return map[string]any{"channel": s} }
	for _, name := range []string{
		"job:" + child.JobID,  // covered by children:, but not named
		"job:" + parent.JobID, // the parent is not named
		"project:p",           // unlike part one, project: must be named
		"project:*",           // no wildcards
		"user:alice",          // never for a scoped token
		"tag:red",             // another tag
		"children:" + blue.JobID,
	} {
		c.expectError(CodeForbidden, "subscribe", ch(name))
	}
	// Named, but bob's: the scope grants nothing beyond alice's rights.
	c.expectError(CodeForbidden, "subscribe", ch("job:"+bobs.JobID))

	for _, name := range []string{"children:" + parent.JobID, "tag:blue", "project:web"} {
		c.subscribe(name)
	}
	c.call("ping", nil)
	got := map[string][]string{}
	for _, f := range c.early {
		got[f.Channel] = append(got[f.Channel], f.Job.JobID)
	}
	c.early = nil
	want := map[string][]string{
		"children:" + parent.JobID: {child.JobID},
		"tag:blue":                 {blue.JobID},
		"project:web":              {web.JobID},
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("first snapshots of %s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}

	// bob's blue job changes first: nothing of it may arrive.
	e.report(t, bobsBlue.JobID, 0.5, "")
	e.report(t, child.JobID, 0.5, "")
	if f := c.next(); f.Job.JobID != child.JobID || f.Channel != "children:"+parent.JobID {
		t.Fatalf("update %s of %s (owner %s), want the child on children:", f.Channel, f.Job.JobID, f.Job.Owner)
	}

	// Refresh to another scope: what it does not name goes, the rest stays.
	c.revoked = nil
	if r := c.call("auth", map[string]any{"token": mintScoped(t, "alice", true, time.Hour, "project:web")}); r.Error != nil {
		t.Fatalf("refresh: %v", r.Error)
	}
	var dropped []string
	for _, f := range c.revoked {
		if f.Error == nil || f.Error.Code != CodeForbidden {
			t.Errorf("error frame %+v, want forbidden", f)
		}
		dropped = append(dropped, f.Channel)
	}
	slices.Sort(dropped)
	if wantDropped := []string{"children:" + parent.JobID, "tag:blue"}; !slices.Equal(dropped, wantDropped) {
		t.Fatalf("refresh dropped %v, want %v", dropped, wantDropped)
	}
	e.report(t, child.JobID, 0.7, "")
	e.report(t, blue.JobID, 0.7, "")
	e.report(t, web.JobID, 0.7, "")
	if f := c.next(); f.Job.JobID != web.JobID || f.Channel != "project:web" {
		t.Fatalf("after the refresh got %s of %s, want only project:web", f.Channel, f.Job.JobID)
	}
	// Back to an unscoped token: nothing more to drop, nothing comes back.
	if r := c.call("auth", map[string]any{"token": e.token(t, "alice", false, time.Hour)}); r.Error != nil || len(c.revoked) != 2 {
		t.Fatalf("widening refresh: %v, revoked %d", r.Error, len(c.revoked))
	}
}

// TestWSScopedTokenExpires: a scoped token that expires on an open
// connection closes it with 4001; a fresh scoped token sent as an auth
// frame before that keeps it.
func TestWSScopedTokenExpires(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	short := func() string { return mintScoped(t, "alice", true, 1500*time.Millisecond, "job:"+job.JobID) }
	first := short()
	p, err := e.gw.cfg.Auth.Verify(first)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, "token="+url.QueryEscape(first), nil)
	c.subscribe("job:" + job.JobID)
	if r := c.call("auth", map[string]any{"token": mintScoped(t, "alice", true, time.Hour, "job:"+job.JobID)}); r.Error != nil {
		t.Fatalf("refresh: %v", r.Error)
	}
	// The first token's expiry passes; the connection lives on.
	testsvc.Eventually(t, 15*time.Second, "the first token's expiry", func() bool { return time.Now().After(p.Expires.Add(300 * time.Millisecond)) })
	e.report(t, job.JobID, 0.5, "")
	for f := c.next(); f.Job.Progress != 0.5; f = c.next() {
	}

	d := e.dial(t, "token="+url.QueryEscape(short()), nil)
	d.subscribe("job:" + job.JobID)
	d.expectClose(StatusUnauthorized)
}
