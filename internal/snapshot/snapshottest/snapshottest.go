// Package snapshottest is the one test suite every snapshot.Store
// implementation passes (memory now, Redis when scaling out), so they cannot
// drift apart in what they promise.
package snapshottest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
)

// Run runs the suite; open returns a new, empty store for each subtest.
// MaxFinished and RecentFinished, when the store takes them, must be at
// least 1,000 and 5.
func Run(t *testing.T, open func(t *testing.T) snapshot.Store) {
	t.Run("PutGet", func(t *testing.T) { testPutGet(t, open(t)) })
	t.Run("PutKeepsNewer", func(t *testing.T) { testPutKeepsNewer(t, open(t)) })
	t.Run("UpdateAtomicSeq", func(t *testing.T) { testUpdateAtomic(t, open(t)) })
	t.Run("UpdateErrorChangesNothing", func(t *testing.T) { testUpdateError(t, open(t)) })
	t.Run("UpdateMustAdvanceSeq", func(t *testing.T) { testUpdateMustAdvance(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
	t.Run("Recent", func(t *testing.T) { testRecent(t, open(t)) })
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Job returns the first snapshot of a job with two stages. Ids sort by n.
func Job(t *testing.T, n int, project, owner string) progress.Snapshot {
	t.Helper()
	s, err := progress.New(progress.NewJob{
		ID: fmt.Sprintf("job-%06d", n), Project: project, Owner: owner,
		Stages: []progress.StageSpec{{Name: "a"}, {Name: "b"}},
	}, t0.Add(time.Duration(n)*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func report(r progress.Report) func(progress.Snapshot) (progress.Snapshot, error) {
	return func(prev progress.Snapshot) (progress.Snapshot, error) {
		return progress.Apply(prev, r, t0.Add(time.Minute))
	}
}

func ptr[T any](v T) *T { return &v }

func testPutGet(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	s := Job(t, 1, "p", "alice")
	if err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, s.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.JobID != s.JobID || got.Seq != 1 || got.State != progress.Queued || len(got.Stages) != 2 {
		t.Fatalf("Get = %+v, want %+v", got, s)
	}
}

func testPutKeepsNewer(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	s := Job(t, 1, "p", "alice")
	must(t, st.Put(ctx, s))
	next, err := st.Update(ctx, s.JobID, report(progress.Report{Progress: ptr(0.5)}))
	must(t, err)
	must(t, st.Put(ctx, s)) // stale: seq 1 < 2
	got, err := st.Get(ctx, s.JobID)
	must(t, err)
	if got.Seq != next.Seq || got.Progress != next.Progress {
		t.Fatalf("a stale Put replaced seq %d with seq %d", next.Seq, got.Seq)
	}
}

func testUpdateAtomic(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	s := Job(t, 1, "p", "alice")
	must(t, st.Put(ctx, s))
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := st.Update(ctx, s.JobID, report(progress.Report{Message: ptr("x")})); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := st.Get(ctx, s.JobID)
	must(t, err)
	if want := uint64(1 + workers*each); got.Seq != want {
		t.Fatalf("after %d concurrent updates seq = %d, want %d: an update was lost", workers*each, got.Seq, want)
	}
}

func testUpdateError(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	s := Job(t, 1, "p", "alice")
	must(t, st.Put(ctx, s))
	_, err := st.Update(ctx, s.JobID, report(progress.Report{Progress: ptr(2.0)}))
	var pe *progress.Error
	if !errors.As(err, &pe) || pe.Code != progress.CodeInvalidProgress {
		t.Fatalf("Update error = %v, want invalid_progress", err)
	}
	got, err := st.Get(ctx, s.JobID)
	must(t, err)
	if got.Seq != 1 || got.State != progress.Queued {
		t.Fatalf("a rejected update changed the job: %+v", got)
	}
}

func testUpdateMustAdvance(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	s := Job(t, 1, "p", "alice")
	must(t, st.Put(ctx, s))
	_, err := st.Update(ctx, s.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) { return prev, nil })
	if err == nil {
		t.Fatal("an update that kept seq was stored")
	}
}

func testNotFound(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	if _, err := st.Get(ctx, "nope"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if _, err := st.Update(ctx, "nope", report(progress.Report{})); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Update unknown: %v", err)
	}
	recent, err := st.Recent(ctx, progress.Filter{Project: "nope"}, 10)
	if err != nil || len(recent) != 0 {
		t.Fatalf("Recent of an unknown project = %v, %v", recent, err)
	}
}

func testRecent(t *testing.T, st snapshot.Store) {
	ctx := context.Background()
	// Jobs 1–10 in project p: 1–7 finish (in order), 8–10 stay active.
	// Job 11 is in project q, owned by bob.
	for n := 1; n <= 10; n++ {
		must(t, st.Put(ctx, Job(t, n, "p", "alice")))
	}
	must(t, st.Put(ctx, Job(t, 11, "q", "bob")))
	for n := 1; n <= 7; n++ {
		_, err := st.Update(ctx, fmt.Sprintf("job-%06d", n), report(progress.Report{State: ptr(progress.Succeeded)}))
		must(t, err)
	}
	got, err := st.Recent(ctx, progress.Filter{Project: "p"}, 3)
	must(t, err)
	var ids []string
	for _, s := range got {
		ids = append(ids, s.JobID)
	}
	want := []string{"job-000010", "job-000009", "job-000008", "job-000007", "job-000006", "job-000005"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("Recent(project p, 3) = %v, want active newest first then the 3 newest finished: %v", ids, want)
	}
	if got[3].State != progress.Succeeded {
		t.Fatalf("finished job has state %s", got[3].State)
	}
	got, err = st.Recent(ctx, progress.Filter{Owner: "bob"}, 10)
	must(t, err)
	if len(got) != 1 || got[0].JobID != "job-000011" {
		t.Fatalf("Recent(owner bob) = %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
