package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/snapshot/snapshottest"
)

func TestMemory(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T) snapshot.Store {
		return snapshot.NewMemory(snapshot.MemoryOptions{})
	})
}

// TestMemoryForgetsOldestFinished checks the memory bound: finished jobs
// beyond MaxFinished are forgotten, oldest first, and active ones never are.
func TestMemoryForgetsOldestFinished(t *testing.T) {
	ctx := context.Background()
	m := snapshot.NewMemory(snapshot.MemoryOptions{MaxFinished: 5, RecentFinished: 3})
	active := snapshottest.Job(t, 0, "p", "alice")
	if err := m.Put(ctx, active); err != nil {
		t.Fatal(err)
	}
	done := progress.Succeeded
	for n := 1; n <= 20; n++ {
		s := snapshottest.Job(t, n, "p", "alice")
		if err := m.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Update(ctx, s.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
			return progress.Apply(prev, progress.Report{State: &done}, prev.UpdatedAt.Time)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 20; n++ {
		_, err := m.Get(ctx, fmt.Sprintf("job-%06d", n))
		kept := n > 15
		if kept != (err == nil) || (!kept && !errors.Is(err, snapshot.ErrNotFound)) {
			t.Fatalf("job %d: kept=%v err=%v", n, kept, err)
		}
	}
	if _, err := m.Get(ctx, active.JobID); err != nil {
		t.Fatalf("the active job was forgotten: %v", err)
	}
	recent, err := m.Recent(ctx, progress.Filter{Project: "p"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 4 || recent[0].JobID != active.JobID || recent[1].JobID != "job-000020" {
		t.Fatalf("Recent = %d jobs starting %v", len(recent), recent)
	}
}

func BenchmarkMemoryUpdate(b *testing.B) {
	ctx := context.Background()
	m := snapshot.NewMemory(snapshot.MemoryOptions{})
	const jobs = 1024
	for n := 0; n < jobs; n++ {
		s, _ := progress.New(progress.NewJob{ID: fmt.Sprint(n), Project: "p", Owner: "o",
			Stages: []progress.StageSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}}}, snapshottestNow)
		_ = m.Put(ctx, s)
	}
	stage := "b"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p := float64(i%1000) / 1000
			_, err := m.Update(ctx, fmt.Sprint(i%jobs), func(prev progress.Snapshot) (progress.Snapshot, error) {
				return progress.Apply(prev, progress.Report{Stage: &stage, Progress: &p}, snapshottestNow)
			})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func TestMemoryRecentBoundsActive(t *testing.T) {
	ctx := context.Background()
	m := snapshot.NewMemory(snapshot.MemoryOptions{})
	for n := 0; n < snapshot.MaxRecentActive+10; n++ {
		if err := m.Put(ctx, snapshottest.Job(t, n, "p", "alice")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.Recent(ctx, progress.Filter{Project: "p"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != snapshot.MaxRecentActive || got[0].JobID != fmt.Sprintf("job-%06d", snapshot.MaxRecentActive+9) {
		t.Fatalf("Recent returned %d active jobs starting at %s; want the newest %d", len(got), got[0].JobID, snapshot.MaxRecentActive)
	}
}
