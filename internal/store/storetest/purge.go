package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// purgeTests are the suite's tests of Delete and Purge (store/purge.go).
var purgeTests = []struct {
	name string
	fn   func(t *testing.T, b *bundle)
}{
	{"DeleteFinishedOnly", testDeleteFinishedOnly},
	{"PurgeOldestInBatches", testPurgeOldestInBatches},
	{"DeletedChildLeavesItsParent", testDeletedChildLeavesItsParent},
}

// finished returns s succeeded at at.
func finished(t *testing.T, s progress.Snapshot, at time.Time) progress.Snapshot {
	t.Helper()
	st := progress.Succeeded
	next, err := progress.Apply(s, progress.Report{State: &st}, at)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func testDeleteFinishedOnly(t *testing.T, b *bundle) {
	done := b.job(t, "pd", "alice", "a")
	done.Tags = []string{"gone"}
	running := b.job(t, "pd", "alice", "a")
	b.create(t, done, running)
	done = finished(t, done, done.CreatedAt.Add(time.Minute))
	b.save(t, done)
	if err := b.store.SaveLogs(t.Context(), []progress.JobLogs{{JobID: done.JobID, Lines: logLines(1, 3)}}, 100); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Delete(t.Context(), running.JobID); !errors.Is(err, store.ErrNotFinished) {
		t.Fatalf("Delete of a running job: %v, want ErrNotFinished", err)
	}
	if err := b.store.Delete(t.Context(), "no-such-job"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of an unknown job: %v, want ErrNotFound", err)
	}
	if err := b.store.Delete(t.Context(), done.JobID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Get(t.Context(), done.JobID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := b.store.Delete(t.Context(), done.JobID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if page, err := b.store.ReadLogs(t.Context(), done.JobID, -1, 10); err != nil || len(page.Lines) != 0 {
		t.Fatalf("log lines after Delete: %+v, %v", page, err)
	}
	if jobs, _, err := b.store.List(t.Context(), progress.Query{Tag: "gone", Limit: 10}); err != nil || len(jobs) != 0 {
		t.Fatalf("tagged jobs after Delete: %v, %v", jobs, err)
	}
	projects, _, err := b.store.Projects(t.Context(), progress.ProjectQuery{Owner: "alice", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range projects {
		if p.Project == "pd" && (p.Jobs.Succeeded != 0 || p.Jobs.Queued != 1) {
			t.Fatalf("project counts after Delete: %+v, want the running job only", p.Jobs)
		}
	}
	b.get(t, running.JobID)
}

func testPurgeOldestInBatches(t *testing.T, b *bundle) {
	var want []string
	live := b.job(t, "pp", "alice", "a")
	b.create(t, live)
	for i := range 5 {
		s := b.job(t, "pp", "alice", "a")
		b.create(t, s)
		s = finished(t, s, b.base.Add(time.Hour+time.Duration(5-i)*time.Minute)) // newest created, oldest finished
		b.save(t, s)
		if i >= 2 {
			want = append(want, s.JobID) // finished at base+1h1m..1h3m
		}
	}
	slices.Reverse(want) // oldest finished first
	var got []string
	for range 10 {
		ids, err := b.store.Purge(t.Context(), b.base.Add(time.Hour+3*time.Minute+time.Second), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 2 {
			t.Fatalf("Purge deleted %d jobs, limit 2", len(ids))
		}
		if len(ids) == 0 {
			break
		}
		for _, d := range ids {
			got = append(got, d.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("purged %v, want %v (oldest finished first)", got, want)
	}
	b.get(t, live.JobID)
	if jobs, _, err := b.store.List(t.Context(), progress.Query{Project: "pp", Limit: 10}); err != nil || len(jobs) != 3 {
		t.Fatalf("left %d jobs (%v), want 3", len(jobs), err)
	}
}

// testDeletedChildLeavesItsParent: deleting a finished child takes it out
// of its parent's totals (count, weight, terminal share; the version
// moves), so they agree with the children listed; a parent deleted with
// its children, or before them, leaves no totals behind.
func testDeletedChildLeavesItsParent(t *testing.T, b *bundle) {
	parent := b.job(t, "pc", "alice")
	b.create(t, parent)
	done, failed, running := b.child(t, parent, 2), b.child(t, parent, 1), b.child(t, parent, 1)
	b.create(t, done, failed, running)
	done, failed = finished(t, to(t, done, progress.Running, 0.5), b.base.Add(time.Minute)), to(t, failed, progress.Failed, 0)
	b.save(t, done, failed, to(t, running, progress.Running, 0.25))
	before := b.totals(t, parent.JobID)
	if err := b.store.Delete(t.Context(), done.JobID); err != nil {
		t.Fatal(err)
	}
	after := b.totals(t, parent.JobID)
	want := progress.Children{Total: 2, Running: 1, Failed: 1}
	if after.Counts != want || !near(after.WeightSum, 2) || !near(after.DoneWP, 0) || after.Version <= before.Version {
		t.Fatalf("totals after deleting a succeeded child of weight 2: %+v (before %+v), want counts %+v, weight 2, DoneWP 0, a newer version",
			after, before, want)
	}
	if kids, _ := pages(t, b.store, progress.Query{Parent: parent.JobID}); len(kids) != after.Counts.Total {
		t.Fatalf("%d children listed, totals say %d", len(kids), after.Counts.Total)
	}

	// The parent and its last children go in one batch, then a child
	// finished after its parent was deleted: no totals come back.
	late := b.child(t, parent, 1)
	b.create(t, late)
	b.save(t, to(t, to(t, running, progress.Running, 0.25), progress.Canceled, 0), finished(t, parent, b.base.Add(2*time.Minute)))
	b.save(t, finished(t, late, b.base.Add(time.Hour)))
	if _, err := b.store.Purge(t.Context(), b.base.Add(30*time.Minute), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Purge(t.Context(), b.base.Add(2*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	if tot := b.totals(t, parent.JobID); tot != (progress.ChildTotals{}) {
		t.Fatalf("a deleted parent has totals %+v", tot)
	}
	if marks, err := b.store.DirtyGroups(t.Context(), time.Now().Add(time.Minute), 10); err != nil || len(marks) != 0 {
		t.Fatalf("dirty groups after deleting a whole family: %v, %v", marks, err)
	}
}
