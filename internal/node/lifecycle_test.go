package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker/brokertest"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestLifecycleBadInput: stall_after_seconds and abandon_after_seconds
// that are not a number > 0 are refused with their own code (or, when not
// JSON or not a number at all, bad_request) and create nothing.
func TestLifecycleBadInput(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	for _, tc := range []struct {
		name, body string
		code       string
	}{
		{"stall 0", `{"project":"p","stall_after_seconds":0}`, progress.CodeInvalidStallAfter},
		{"stall -1", `{"project":"p","stall_after_seconds":-1}`, progress.CodeInvalidStallAfter},
		{"stall over a year", `{"project":"p","stall_after_seconds":1e12}`, progress.CodeInvalidStallAfter},
		{"stall a string", `{"project":"p","stall_after_seconds":"x"}`, "bad_request"},
		{"stall NaN", `{"project":"p","stall_after_seconds":NaN}`, "bad_request"},
		{"abandon 0", `{"project":"p","abandon_after_seconds":0}`, progress.CodeInvalidAbandonAfter},
		{"abandon -1", `{"project":"p","abandon_after_seconds":-1}`, progress.CodeInvalidAbandonAfter},
		{"abandon a string", `{"project":"p","abandon_after_seconds":"x"}`, "bad_request"},
		{"abandon NaN", `{"project":"p","abandon_after_seconds":NaN}`, "bad_request"},
		{"abandon on a pipeline job", `{"project":"p","pipeline":"demo","abandon_after_seconds":60}`, progress.CodeInvalidAbandonAfter},
	} {
		if r := c.do("POST", "/api/v1/jobs", tc.body); r.status != 400 || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.status, r.body, tc.code)
		}
	}
	var page struct{ Jobs []progress.Snapshot }
	c.do("GET", "/api/v1/jobs?project=p", nil).decode(t, &page)
	if len(page.Jobs) != 0 {
		t.Fatalf("bad creates made %d jobs", len(page.Jobs))
	}
	s := create(t, c, `{"project":"p","stall_after_seconds":0.5,"abandon_after_seconds":3600}`)
	if s.StallAfter != 0.5 || s.AbandonAfter != 3600 {
		t.Fatalf("created with stall_after_seconds %v, abandon_after_seconds %v", s.StallAfter, s.AbandonAfter)
	}
}

func isStalled(s progress.Snapshot) bool { return s.Stalled }

func waitJob(t *testing.T, c client, id, what string, cond func(progress.Snapshot) bool) progress.Snapshot {
	t.Helper()
	var last progress.Snapshot
	testsvc.Eventually(t, 30*time.Second, what, func() bool {
		last = get(t, c, id)
		return cond(last)
	})
	return last
}

// fastLapses makes a node look for stalls and abandoned jobs often.
func fastLapses(c *Config) { c.LapseInterval = 20 * time.Millisecond }

// TestStallSetAndCleared: a running job silent for stall_after_seconds is
// marked stalled with one update, written durably at once; its next
// report clears it; it may stall again. A queued job does not stall.
func TestStallSetAndCleared(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", fastLapses)
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	queued := create(t, c, `{"project":"p","stall_after_seconds":0.1}`)
	s := create(t, c, `{"project":"p","stall_after_seconds":0.2}`)
	rec := brokertest.RecordJob(t, n.broker, s.JobID)
	report(t, c, s.JobID, `{"progress":0.3}`)

	stalled := waitJob(t, c, s.JobID, "the job to stall", isStalled)
	if stalled.State != progress.Running || stalled.Progress != 0.3 {
		t.Fatalf("stalled snapshot %+v", stalled)
	}
	stored, err := n.db.Get(t.Context(), s.JobID) // the store itself, not the write-behind
	if err != nil || !stored.Stalled {
		t.Fatalf("the stall is not in the database at once: %v %+v", err, stored)
	}
	testsvc.Eventually(t, 10*time.Second, "the stalled update to be published", func() bool { return rec.Count(isStalled) == 1 })

	cleared := report(t, c, s.JobID, `{"progress":0.4}`)
	if cleared.Stalled {
		t.Fatalf("the next report did not clear the stall: %+v", cleared)
	}
	if stored, err := n.db.Get(t.Context(), s.JobID); err != nil || (stored.Seq == cleared.Seq && stored.Stalled) {
		t.Fatalf("the cleared stall is not in the database at once: %v %+v", err, stored)
	}
	if got := rec.Count(func(s progress.Snapshot) bool { return s.Stalled && s.Seq < cleared.Seq }); got != 1 {
		t.Fatalf("%d stalled updates for one stall", got)
	}
	waitJob(t, c, s.JobID, "the job to stall again", isStalled)
	testsvc.Eventually(t, 10*time.Second, "the second stall's update", func() bool { return rec.Count(isStalled) == 2 })
	if q := get(t, c, queued.JobID); q.Stalled || q.State != progress.Queued {
		t.Fatalf("a queued job stalled: %+v", q)
	}
}

// TestAbandonFiresOnce: a job with no report for its abandon_after_seconds
// fails once with "no report for …", whatever its stall; a report after
// that is refused; the server's --abandon-after applies to jobs without
// their own limit, and 0 turns it off.
func TestAbandonFiresOnce(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", func(c *Config) { fastLapses(c); c.AbandonAfter = 0 })
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	kept := create(t, c, `{"project":"p"}`)
	s := create(t, c, `{"project":"p","abandon_after_seconds":0.3}`)
	rec := brokertest.RecordJob(t, n.broker, s.JobID)

	done := waitJob(t, c, s.JobID, "the job to be abandoned", isTerminal)
	if done.State != progress.Failed || done.Error == nil || *done.Error != "no report for 300ms" {
		t.Fatalf("abandoned job: %+v (error %v)", done, ptrString(done.Error))
	}
	if r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/progress", `{"progress":0.6}`); r.status != 409 {
		t.Fatalf("a report after the job was abandoned: %d %s", r.status, r.body)
	}
	testsvc.Eventually(t, 10*time.Second, "the failed update", func() bool {
		return rec.Count(func(s progress.Snapshot) bool { return s.State.Terminal() }) == 1
	})
	if k := get(t, c, kept.JobID); k.State != progress.Queued {
		t.Fatalf("with --abandon-after 0, a job without a limit of its own ended: %+v", k)
	}

	server := startNode(t, "", func(c *Config) { fastLapses(c); c.AbandonAfter = 200 * time.Millisecond })
	cs := client{t: t, base: server.URL(), contentType: "application/json"}
	plain := create(t, cs, `{"project":"p"}`)
	got := waitJob(t, cs, plain.JobID, "--abandon-after to fail a queued job", func(s progress.Snapshot) bool { return s.State.Terminal() })
	if got.Error == nil || *got.Error != "no report for 200ms" {
		t.Fatalf("abandoned by the server's limit: %+v", got)
	}
}

// TestLapseDeadlinesSurviveRestart: the deadlines are in the database, so
// a node started after the one that took the jobs' reports stalls one and
// abandons the other, having never seen them.
func TestLapseDeadlinesSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startNode(t, dir, func(c *Config) { c.LapseInterval = time.Hour }) // never sweeps
	c := client{t: t, base: first.URL(), contentType: "application/json"}
	stall := create(t, c, `{"project":"p","stall_after_seconds":0.2}`)
	report(t, c, stall.JobID, `{"progress":0.25}`)
	silent := create(t, c, `{"project":"p","abandon_after_seconds":0.5}`)
	stopNode(t, first)

	second := startNode(t, dir, fastLapses)
	c.base = second.URL()
	waitJob(t, c, stall.JobID, "the job to stall after the restart", isStalled)
	done := waitJob(t, c, silent.JobID, "the job to be abandoned after the restart", isTerminal)
	if done.Error == nil || *done.Error != "no report for 500ms" {
		t.Fatalf("after the restart: %+v", done)
	}
}

func isTerminal(s progress.Snapshot) bool { return s.State.Terminal() }

// TestLapseTwoNodes: with PostgreSQL and Redis and both nodes sweeping, a
// job stalls once and another is abandoned once; when the node that
// created them and took their reports is gone, the other acts.
func TestLapseTwoNodes(t *testing.T) {
	shared := scaleOut(t)
	both := func(c *Config) { shared(c); fastLapses(c) }
	a, b := startNode(t, "", both), startNode(t, "", both)
	ca, cb := client{t: t, base: a.URL(), contentType: "application/json"}, client{t: t, base: b.URL(), contentType: "application/json"}

	check := func(on client, via *Node, stallAfter, abandonAfter string, before func()) {
		t.Helper()
		stall := create(t, ca, `{"project":"p","stall_after_seconds":`+stallAfter+`}`)
		silent := create(t, ca, `{"project":"p","abandon_after_seconds":`+abandonAfter+`}`)
		stalls := brokertest.RecordJob(t, via.broker, stall.JobID) // via hears what either node publishes
		ends := brokertest.RecordJob(t, via.broker, silent.JobID)
		report(t, ca, stall.JobID, `{"progress":0.5}`) // running: it may stall
		before()
		waitJob(t, on, stall.JobID, "the job to stall", isStalled)
		done := waitJob(t, on, silent.JobID, "the job to be abandoned", isTerminal)
		if done.Error == nil || *done.Error != "no report for "+abandonAfter+"s" {
			t.Fatalf("abandoned: %+v", done)
		}
		testsvc.Eventually(t, 10*time.Second, "the updates to arrive", func() bool {
			return stalls.Count(isStalled) >= 1 && ends.Count(isTerminal) >= 1
		})
		if n, m := stalls.Count(isStalled), ends.Count(isTerminal); n != 1 || m != 1 {
			t.Fatalf("%d stalled updates for one stall, %d terminal ones for one abandoned job", n, m)
		}
		if r := report(t, on, stall.JobID, `{"progress":0.6}`); r.Stalled {
			t.Fatalf("a report did not clear the stall: %+v", r)
		}
	}
	check(cb, b, "0.2", "1", func() {})
	// The node that created the jobs and took their reports stops; the
	// other stalls one and abandons the other.
	check(cb, b, "0.3", "1.5", func() { stopNode(t, a) })
}

// TestLapseAfterSIGKILL: two progressd processes share PostgreSQL and
// Redis; the one that created three jobs and took their reports is
// killed with SIGKILL (no shutdown, no last flush, its advisory lock
// dropped with its connection). The survivor stalls the one job and
// abandons the two silent ones — under the server's --abandon-after
// (idle_since, kept to a step) and under their own limit — each exactly
// once, as a subscriber on the survivor sees.
func TestLapseAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs progressd processes")
	}
	db := testsvc.PostgresSchema(t)
	redisURL := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, redisURL)
	shared := []string{"--db", db, "--redis", redisURL, "--redis-prefix", prefix, "--abandon-after", "2s"}
	victim, survivor := startProc(t, shared...), startProc(t, shared...)
	cv, cs := client{t: t, base: victim.url(), contentType: "application/json"}, client{t: t, base: survivor.url(), contentType: "application/json"}
	watch := dialWS(t, survivor.url(), "project:killed")

	silent := create(t, cv, `{"project":"killed"}`)
	own := create(t, cv, `{"project":"killed","abandon_after_seconds":1.5}`)
	stall := create(t, cv, `{"project":"killed","stall_after_seconds":1,"abandon_after_seconds":3600}`)
	for _, id := range []string{silent.JobID, own.JobID, stall.JobID} {
		report(t, cv, id, `{"progress":0.5}`) // running, reported on the victim only
	}
	victim.kill(t)

	done := waitJob(t, cs, silent.JobID, "the survivor to abandon the silent job", isTerminal)
	if done.Error == nil || *done.Error != "no report for 2s" || done.Progress != 0.5 {
		t.Fatalf("silent job on the survivor: %+v", done)
	}
	done = waitJob(t, cs, own.JobID, "the survivor to abandon the job with its own limit", isTerminal)
	if done.Error == nil || *done.Error != "no report for 1.5s" {
		t.Fatalf("job with its own limit on the survivor: %+v", done)
	}
	waitJob(t, cs, stall.JobID, "the survivor to mark the job stalled", isStalled)
	// Two more sweeps: nothing is done twice.
	time.Sleep(2500 * time.Millisecond)
	if err := testsvc.WaitFor(10*time.Second, func() error {
		for _, id := range []string{silent.JobID, own.JobID} {
			if last, _, _ := watch.last(id); !last.State.Terminal() {
				return fmt.Errorf("the subscriber has not seen job %s end: %w", id, testsvc.ErrNotYet)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	watch.checkOrder(t, "subscriber on the survivor")
	watch.mu.Lock()
	defer watch.mu.Unlock()
	// Seqs only rise (checkOrder), so a second act would be a second
	// snapshot.
	count := func(id string, cond func(progress.Snapshot) bool) int {
		n := 0
		for _, s := range watch.snaps[id] {
			if cond(s) {
				n++
			}
		}
		return n
	}
	if a, b, c := count(silent.JobID, isTerminal), count(own.JobID, isTerminal), count(stall.JobID, isStalled); a != 1 || b != 1 || c != 1 {
		t.Fatalf("the subscriber saw the silent job end %d times, the one with its own limit %d, the stall %d; want once each", a, b, c)
	}
	if s := get(t, cs, stall.JobID); !s.Stalled || s.State != progress.Running {
		t.Fatalf("stalled job: %+v", s)
	}
}
