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
