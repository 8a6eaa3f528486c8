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
		got = append(got, ids...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("purged %v, want %v (oldest finished first)", got, want)
	}
	b.get(t, live.JobID)
	if jobs, _, err := b.store.List(t.Context(), progress.Query{Project: "pp", Limit: 10}); err != nil || len(jobs) != 3 {
		t.Fatalf("left %d jobs (%v), want 3", len(jobs), err)
	}
}
