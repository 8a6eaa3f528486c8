package jobs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
)

// TestAbandonWithinOneIdleStep: with the durable idle_since kept to a
// step (store.IdleStep), a silent job is abandoned neither before the
// server's limit from its last change, nor more than a step after it,
// and once.
func TestAbandonWithinOneIdleStep(t *testing.T) {
	ctx := context.Background()
	const limit = 100 * time.Second // a step of 1 s
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetIdleStep(store.IdleStep(limit))
	wb := store.NewWriteBehind(db, time.Hour, nil)
	t.Cleanup(func() {
		_ = wb.Close(context.Background())
		_ = db.Close()
	})
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	svc := jobs.New(jobs.Config{Snapshots: snapshot.NewMemory(snapshot.MemoryOptions{}), DB: wb, Broker: broker.NewLocal(), Now: c.Now})
	t.Cleanup(svc.Close)
	j, err := svc.Create(ctx, "alice", jobs.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	report := func(at time.Duration, p float64) {
		t.Helper()
		c.set(t0.Add(at))
		if _, err := svc.Report(ctx, j.JobID, progress.Report{Progress: &p}); err != nil {
			t.Fatal(err)
		}
		if err := wb.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	report(500*time.Millisecond, 0.1)  // queued → running: idle_since 0.5 s
	report(1400*time.Millisecond, 0.2) // 0.9 s later, under a step: idle_since stays 0.5 s
	sweepAt := func(at time.Duration) progress.Snapshot {
		t.Helper()
		c.set(t0.Add(at))
		if err := svc.SweepLapses(ctx, limit); err != nil {
			t.Fatalf("sweep at %s: %v", at, err)
		}
		s, err := svc.Get(ctx, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	due := 1400*time.Millisecond + limit
	for _, at := range []time.Duration{due - time.Second, due - time.Millisecond} {
		if s := sweepAt(at); s.State.Terminal() {
			t.Fatalf("abandoned at %s, before its limit (due at %s): %+v", at, due, s)
		}
	}
	var seq uint64
	for at := due; at <= due+store.IdleStep(limit); at += 100 * time.Millisecond {
		if s := sweepAt(at); s.State == progress.Failed {
			seq = s.Seq
			break
		}
	}
	if seq == 0 {
		t.Fatalf("not abandoned by %s, a step after its limit", due+store.IdleStep(limit))
	}
	if s := sweepAt(due + time.Minute); s.Seq != seq || s.Error == nil || *s.Error != "no report for 1m40s" {
		t.Fatalf("after a later sweep: %+v, want it failed once (seq %d) with \"no report for 1m40s\"", s, seq)
	}
}

func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }
