package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// lapseTests are the suite's tests of Lapsing (store/lapse.go).
var lapseTests = []struct {
	name string
	fn   func(t *testing.T, b *bundle)
}{
	{"LapsingFindsDueJobs", testLapsingFindsDueJobs},
	{"IdleSinceMovesByStep", testIdleSinceMovesByStep},
}

func lapsing(t *testing.T, s store.Store, now, idleBefore time.Time) []string {
	t.Helper()
	var got []string
	if err := s.Lapsing(t.Context(), store.LapseQuery{Now: now, IdleBefore: idleBefore, Limit: 100}, func(ids []string) error {
		got = ids
		return nil
	}); err != nil {
		t.Fatalf("Lapsing: %v", err)
	}
	slices.Sort(got)
	return got
}

// testLapsingFindsDueJobs: a job's stall and its own abandon limit are
// found once due, from the last durable write; jobs under the server's
// limit by how long they have been idle; pipeline and finished jobs
// never; and the deadlines survive a reopen.
func testLapsingFindsDueJobs(t *testing.T, b *bundle) {
	at := func(s float64) time.Time { return b.base.Add(progress.Seconds(s)) }
	newJob := func(j progress.NewJob) progress.Snapshot {
		j.ID, j.Project, j.Owner = b.ids.next(), "pl", "alice"
		s, err := progress.New(j, b.base)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ten, hundred := 10.0, 100.0
	stall := newJob(progress.NewJob{StallAfter: &ten})
	own := newJob(progress.NewJob{AbandonAfter: &hundred})
	idle := newJob(progress.NewJob{})
	pipe := newJob(progress.NewJob{Pipeline: "demo", StallAfter: &hundred})
	done := newJob(progress.NewJob{})
	b.create(t, stall, own, idle, pipe, done)
	stall = apply(t, stall, progress.Report{Progress: new(0.1)}, at(1)) // running, stall due at 11 s
	done = finished(t, done, at(1))
	b.save(t, stall, done)

	if got := lapsing(t, b.store, at(10.9), time.Time{}); len(got) != 0 {
		t.Fatalf("before any deadline: %v", got)
	}
	if got := lapsing(t, b.store, at(11), time.Time{}); !slices.Equal(got, []string{stall.JobID}) {
		t.Fatalf("at 11 s: %v, want the stall %s", got, stall.JobID)
	}
	// The server's limit: idle since their last change (creation).
	if got, want := lapsing(t, b.store, at(11), at(0)), sorted(stall.JobID, idle.JobID); !slices.Equal(got, want) {
		t.Fatalf("idle since 0: %v, want %v (never the pipeline, finished or own-limit jobs)", got, want)
	}
	if got, want := lapsing(t, b.store, at(100), time.Time{}), sorted(stall.JobID, own.JobID); !slices.Equal(got, want) {
		t.Fatalf("at 100 s: %v, want %v", got, want)
	}

	// A report moves the deadline; a stall takes the job off until its
	// next report; a reopen keeps what was written.
	stall = apply(t, stall, progress.Report{Progress: new(0.2)}, at(20))
	b.save(t, stall)
	if got := lapsing(t, b.store, at(29), time.Time{}); len(got) != 0 {
		t.Fatalf("after a report at 20 s, at 29 s: %v", got)
	}
	marked, err := progress.Stall(stall, at(30))
	if err != nil {
		t.Fatal(err)
	}
	b.save(t, marked)
	if err := b.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.store = b.open(t)
	if got := lapsing(t, b.store, at(99), time.Time{}); len(got) != 0 {
		t.Fatalf("a stalled job is due again: %v", got)
	}
	if got := lapsing(t, b.store, at(100), time.Time{}); !slices.Equal(got, []string{own.JobID}) {
		t.Fatalf("after a reopen, at 100 s: %v, want %s", got, own.JobID)
	}
}

// testIdleSinceMovesByStep: with an idle step (SetIdleStep), a Save keeps
// the stored idle_since while the job's updated_at is less than a step
// after it and moves it at a step (the boundary to the millisecond, both
// sides) or back when updated_at went back; a state change writes it
// exactly, an end clears it; a job with its own limit never has one. The
// snapshot itself is written every time.
func testIdleSinceMovesByStep(t *testing.T, b *bundle) {
	b.store.SetIdleStep(10 * time.Second)
	at := func(ms int64) time.Time { return b.base.Add(time.Duration(ms) * time.Millisecond) }
	hundred := 100.0
	j, err := progress.New(progress.NewJob{ID: b.ids.next(), Project: "pl", Owner: "alice"}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	own, err := progress.New(progress.NewJob{ID: b.ids.next(), Project: "pl", Owner: "alice", AbandonAfter: &hundred}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	b.create(t, j, own)
	// stored checks that the stored idle_since is ms: the sweep's query
	// finds the job idle before ms, not before ms − 1.
	stored := func(why string, ms int64) {
		t.Helper()
		if got := lapsing(t, b.store, at(0), at(ms)); !slices.Equal(got, []string{j.JobID}) {
			t.Fatalf("%s: idle before %d ms found %v, want %s", why, ms, got, j.JobID)
		}
		if got := lapsing(t, b.store, at(0), at(ms-1)); len(got) != 0 {
			t.Fatalf("%s: idle before %d ms found %v, want none (idle_since %d)", why, ms-1, got, ms)
		}
	}
	step := func(why string, ms, want int64) {
		t.Helper()
		j = apply(t, j, progress.Report{Progress: new(float64(ms) / 1e6)}, at(ms))
		j.UpdatedAt = progress.At(at(ms))
		own = apply(t, own, progress.Report{Progress: new(float64(ms) / 1e6)}, at(ms))
		b.save(t, j, own)
		if got := b.get(t, j.JobID); got.Seq != j.Seq {
			t.Fatalf("%s: stored seq %d, want %d", why, got.Seq, j.Seq)
		}
		if got := b.get(t, own.JobID); got.Seq != own.Seq {
			t.Fatalf("%s: own limit's stored seq %d, want %d", why, got.Seq, own.Seq)
		}
		stored(why, want)
	}
	stored("created", 0)
	step("queued → running, two steps later", 20_000, 20_000)
	step("a step less a millisecond later", 29_999, 20_000)
	step("a step later", 30_000, 30_000)
	step("a millisecond later", 30_001, 30_000)
	step("updated_at earlier", 25_000, 25_000)
	j = finished(t, j, at(26_000))
	b.save(t, j)
	if got := lapsing(t, b.store, at(0), at(1_000_000)); len(got) != 0 {
		t.Fatalf("finished: idle jobs %v, want none", got)
	}
}

func apply(t *testing.T, s progress.Snapshot, r progress.Report, at time.Time) progress.Snapshot {
	t.Helper()
	next, err := progress.Apply(s, r, at)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
