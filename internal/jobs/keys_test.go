package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
)

// clock is a settable time source for jobs.Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestIdempotencyKeyExpires: a key holds for jobs.IdempotencyTTL and no
// longer — a create after that with the same key makes a new job — and
// ExpireKeys deletes only the keys past it.
func TestIdempotencyKeyExpires(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	wb := store.NewWriteBehind(db, time.Hour, nil)
	t.Cleanup(func() {
		_ = wb.Close(context.Background())
		_ = db.Close()
	})
	c := &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc := jobs.New(jobs.Config{Snapshots: snapshot.NewMemory(snapshot.MemoryOptions{}), DB: wb, Broker: broker.NewLocal(), Now: c.Now})
	t.Cleanup(svc.Close)
	create := func(key string) progress.Snapshot {
		t.Helper()
		s, err := svc.Create(ctx, "alice", jobs.CreateRequest{Project: "p", IdempotencyKey: key})
		if err != nil {
			t.Fatalf("create with key %s: %v", key, err)
		}
		return s
	}

	first := create("k1")
	c.Add(time.Hour)
	other := create("k2")
	c.Add(jobs.IdempotencyTTL - time.Hour - time.Second) // k1 is a second short of a day old
	if again := create("k1"); again.JobID != first.JobID {
		t.Fatalf("within the TTL the key made job %s, want %s", again.JobID, first.JobID)
	}
	if n, err := svc.ExpireKeys(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireKeys before any key expired = %d, %v", n, err)
	}
	c.Add(2 * time.Second)
	if n, err := svc.ExpireKeys(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireKeys with k1 over a day old = %d, %v; want 1", n, err)
	}
	if again := create("k2"); again.JobID != other.JobID {
		t.Fatalf("k2 expired with k1: made job %s", again.JobID)
	}
	if again := create("k1"); again.JobID == first.JobID {
		t.Fatal("an expired key still returned the first job")
	}
	// A conflicting body is refused while the key holds.
	_, err = svc.Create(ctx, "alice", jobs.CreateRequest{Project: "q", IdempotencyKey: "k2"})
	var pe *progress.Error
	if !errors.As(err, &pe) || pe.Code != jobs.CodeIdempotencyConflict {
		t.Fatalf("same key, another body: %v", err)
	}
}
